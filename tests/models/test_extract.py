"""Descriptor extraction: order, dtype, precision, channels_last, bad datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from vgloc.models import create_model, extract_descriptors
from vgloc.models.extract import autocast_dtype


class _Images(Dataset):
    """Random images; item i is (image_i, index_fn(i))."""

    def __init__(self, n: int, size: int = 64, index_fn=lambda i: i) -> None:
        g = torch.Generator().manual_seed(3)
        self.images = torch.randn(n, 3, size, size, generator=g)
        self.index_fn = index_fn

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], self.index_fn(i)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("tiny+netvlad8+fc32")


def _reference(model: torch.nn.Module, ds: _Images) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.stack([model(img[None])[0].numpy() for img in ds.images])


def test_rows_follow_dataset_order(model: torch.nn.Module) -> None:
    ds = _Images(11)
    out = extract_descriptors(model, ds, batch_size=4, progress=False)  # 4 + 4 + 3
    assert out.shape == (11, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out, _reference(model, ds), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_rows_are_placed_by_the_reported_index(model: torch.nn.Module) -> None:
    perm = [3, 0, 4, 1, 2]  # item i holds image i but reports it as row perm[i]
    ds = _Images(5, index_fn=lambda i: perm[i])
    out = extract_descriptors(model, ds, batch_size=2, progress=False)
    ref = _reference(model, ds)
    for i, row in enumerate(perm):
        np.testing.assert_allclose(out[row], ref[i], atol=1e-5)


def test_float16_output(model: torch.nn.Module) -> None:
    ds = _Images(6)
    out = extract_descriptors(model, ds, batch_size=4, progress=False, out_dtype=np.float16)
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.astype(np.float32), _reference(model, ds), atol=2e-3)


@pytest.mark.parametrize("spec", ["tiny+netvlad8+fc32", "tiny+gem", "resnet18.conv4+gem+fc64"])
def test_bf16_autocast_stays_close_to_fp32(spec: str) -> None:
    torch.manual_seed(0)
    m = create_model(spec)
    ds = _Images(6)
    fp32 = extract_descriptors(m, ds, batch_size=3, progress=False)
    bf16 = extract_descriptors(m, ds, batch_size=3, progress=False, precision="bf16")
    assert not np.array_equal(fp32, bf16)  # it really ran in lower precision
    cos = (fp32 * bf16).sum(axis=1) / np.linalg.norm(bf16, axis=1)
    assert cos.min() > 0.99, cos


def test_auto_precision_and_validation() -> None:
    from vgloc.models.extract import cpu_has_fast_bf16

    assert autocast_dtype("auto", torch.device("cpu")) is (torch.bfloat16 if cpu_has_fast_bf16() else None)
    assert autocast_dtype("auto", torch.device("cuda")) is torch.float16
    assert autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        autocast_dtype("fp8", torch.device("cpu"))


def test_channels_last_gives_same_result_and_restores_model(model: torch.nn.Module) -> None:
    ds = _Images(5)
    model.train()
    out = extract_descriptors(model, ds, batch_size=2, progress=False, channels_last=True)
    np.testing.assert_allclose(out, _reference(model, ds), atol=1e-5)
    model.train()
    extract_descriptors(model, ds, batch_size=2, progress=False, channels_last=True)
    assert model.training  # mode restored
    assert model.backbone[0].weight.is_contiguous()  # memory format restored


def test_bad_arguments_and_indices(model: torch.nn.Module) -> None:
    ds = _Images(4)
    with pytest.raises(ValueError, match="out_dtype must be float32 or float16"):
        extract_descriptors(model, ds, out_dtype=np.float64, progress=False)
    with pytest.raises(ValueError, match="batch_size must be positive"):
        extract_descriptors(model, ds, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="index repeated"):
        extract_descriptors(model, _Images(4, index_fn=lambda i: 0), batch_size=2, progress=False)
    with pytest.raises(ValueError, match=r"out of range 0..3"):
        extract_descriptors(model, _Images(4, index_fn=lambda i: i + 1), progress=False)


def test_bare_image_datasets_and_empty_datasets(model: torch.nn.Module) -> None:
    class Bare(Dataset):
        def __init__(self) -> None:
            self.inner = _Images(3)

        def __len__(self) -> int:
            return 3

        def __getitem__(self, i: int) -> torch.Tensor:
            return self.inner.images[i]

    out = extract_descriptors(model, Bare(), batch_size=2, progress=False)
    np.testing.assert_allclose(out, _reference(model, Bare().inner), atol=1e-5)
    empty = extract_descriptors(model, _Images(0), progress=False)
    assert empty.shape == (0, 32)


def test_auto_fast_path_follows_the_hardware() -> None:
    from vgloc.models.extract import cpu_has_fast_bf16, resolve_fast_path

    cpu = torch.device("cpu")
    expected = torch.bfloat16 if cpu_has_fast_bf16() else None
    assert resolve_fast_path("auto", False, cpu) == (expected, True)
    assert resolve_fast_path("fp32", None, cpu) == (None, False)
    assert resolve_fast_path("fp32", False, cpu) == (None, False)
    assert resolve_fast_path("fp32", True, cpu) == (None, True)
    assert resolve_fast_path("auto", None, torch.device("cuda")) == (torch.float16, True)


def test_auto_num_workers() -> None:
    from vgloc.models.extract import auto_num_workers

    assert auto_num_workers(10, 16) == 0
    assert 0 <= auto_num_workers(1000, 16) <= 4


def test_gpu_machines_decode_with_every_core_but_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from vgloc.models.extract import auto_num_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(16)), raising=False)
    assert auto_num_workers(1000, 16, "cuda") == 15
    assert auto_num_workers(1000, 16, "cpu") == 4
    assert auto_num_workers(20, 16, "cuda") == 0  # two batches or less: no workers
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(64)), raising=False)
    assert auto_num_workers(1000, 16, "cuda") == 16


def test_cudnn_autotune_is_set_for_the_extraction_only() -> None:
    from vgloc.models.extract import _cudnn_autotune

    before = torch.backends.cudnn.benchmark
    with _cudnn_autotune(torch.device("cuda")):
        assert torch.backends.cudnn.benchmark is True
    assert torch.backends.cudnn.benchmark == before
    with _cudnn_autotune(torch.device("cpu")):
        assert torch.backends.cudnn.benchmark == before


@pytest.mark.slow
def test_compiled_extraction_gives_the_eager_descriptors(model: torch.nn.Module) -> None:
    ds = _Images(6)
    eager = extract_descriptors(model, ds, batch_size=3, progress=False)
    compiled = extract_descriptors(model, ds, batch_size=3, progress=False, compile=True)
    np.testing.assert_allclose(compiled, eager, atol=1e-5)


def test_auto_precision_gives_the_fp32_descriptors(model: torch.nn.Module) -> None:
    """The automatic fast path: fp32 channels_last, or bf16 (cosine >= 0.999) only where bf16 is native."""
    from vgloc.models.extract import cpu_has_fast_bf16

    ds = _Images(6)
    ref = extract_descriptors(model, ds, batch_size=4, progress=False)
    out = extract_descriptors(model, ds, batch_size=4, progress=False, precision="auto", channels_last=None)
    cos = (ref * out).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(out, axis=1)
    assert cos.min() >= (0.999 if cpu_has_fast_bf16() else 0.99999)


def test_workers_and_explicit_batches_give_identical_rows(model: torch.nn.Module) -> None:
    ds = _Images(9)
    ref = extract_descriptors(model, ds, batch_size=4, progress=False)
    workers = extract_descriptors(model, ds, batch_size=4, progress=False, num_workers=2)
    np.testing.assert_array_equal(workers, ref)
    grouped = extract_descriptors(model, ds, batches=[[8, 0], [3, 1, 2], [4, 5, 6, 7]], progress=False)
    np.testing.assert_allclose(grouped, ref, atol=1e-5)


def test_uint8_batches_are_normalised_in_the_model_step(model: torch.nn.Module) -> None:
    from vgloc.data.transforms import NormalizeUint8

    g = torch.Generator().manual_seed(1)
    u8 = torch.randint(0, 256, (5, 3, 64, 64), dtype=torch.uint8, generator=g)

    class U8(Dataset):
        def __len__(self) -> int:
            return 5

        def __getitem__(self, i: int):
            return u8[i], i

    class F32(U8):
        def __getitem__(self, i: int):
            return NormalizeUint8(0.5)(u8[i : i + 1])[0], i

    ref = extract_descriptors(model, F32(), batch_size=2, progress=False)
    out = extract_descriptors(model, U8(), batch_size=2, progress=False, preprocess=NormalizeUint8(0.5))
    np.testing.assert_allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("spec", ["tiny+netvlad8+fc32", "resnet18+gem+fc512"])
def test_onnxruntime_engine_gives_the_torch_descriptors(spec: str) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    net = create_model(spec)
    ds = _Images(3, size=96)
    ref = extract_descriptors(net, ds, batch_size=2, progress=False, engine="torch")
    out = extract_descriptors(net, ds, batch_size=2, progress=False, engine="onnxruntime")
    cos = (ref * out).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(out, axis=1)
    assert cos.min() >= 0.9999


def test_unknown_engine_is_refused(model: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="engine"):
        extract_descriptors(model, _Images(2), progress=False, engine="tensorrt")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_workers_start_under_the_start_methods_of_newer_pythons(method: str, tmp_path: Path) -> None:
    """Python 3.14 starts DataLoader workers with forkserver by default (macOS: spawn), which
    pickles the dataset and collate function: the workers must give the in-process rows."""
    import subprocess
    import sys

    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(tmp_path / f"{i}.jpg")
    script = f"""
import multiprocessing as mp, sys
import numpy as np, torch
if __name__ == "__main__":
    mp.set_start_method({method!r}, force=True)
    from pathlib import Path
    from vgloc.describers import ExtractionOptions
    from vgloc.describers.net import NetDescriber
    torch.manual_seed(0)
    describer = NetDescriber.from_spec("tiny+gem")
    photos = sorted(Path({str(tmp_path)!r}).glob("*.jpg"))
    common = dict(image_size=(48, 64), batch_size=2, progress=False)
    inline = describer.describe(photos, ExtractionOptions(num_workers=0, **common))
    workers = describer.describe(photos, ExtractionOptions(num_workers=2, **common))
    assert mp.get_start_method() == {method!r}
    np.testing.assert_allclose(workers, inline, atol=1e-6)
    print("ok")
"""
    (tmp_path / "run.py").write_text(script)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "run.py")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
