"""The ONNX Runtime engine's on-disk export cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from vgloc.models import create_model
from vgloc.models.engines import OnnxRuntimeEngine, _cache_path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VGLOC_CACHE", str(tmp_path))
    return tmp_path


def test_a_second_process_with_the_same_weights_skips_the_export(cache: Path, monkeypatch) -> None:
    torch.manual_seed(0)
    model = create_model("tiny+gem").eval()
    example = torch.rand(2, 3, 32, 48)
    first = OnnxRuntimeEngine(model, example)
    assert not first.from_cache and not first.cache_path.exists()  # cached once checked
    first.save_to_cache()
    assert first.cache_path.is_file() and first.cache_path.parent == cache / "onnx"

    # Same weights in a new module object (as in a new process): loaded, never exported.
    twin = create_model("tiny+gem").eval()
    twin.load_state_dict(model.state_dict())

    def no_export(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("exported although the cache holds this model")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    second = OnnxRuntimeEngine(twin, example)
    assert second.from_cache
    torch.testing.assert_close(second(example), first(example))


def test_other_weights_get_another_cache_file_and_a_damaged_file_is_replaced(cache: Path) -> None:
    torch.manual_seed(0)
    model = create_model("tiny+gem").eval()
    path = _cache_path(model)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert _cache_path(model) != path
    path = _cache_path(model)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an onnx graph")
    example = torch.rand(1, 3, 32, 48)
    engine = OnnxRuntimeEngine(model, example)
    engine.save_to_cache()
    assert not engine.from_cache and path.read_bytes() != b"not an onnx graph"
    with torch.no_grad():
        torch.testing.assert_close(engine(example), model(example), atol=1e-5, rtol=1e-4)


def test_only_checked_exports_are_cached_and_a_cached_one_skips_the_torch_check(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vgloc.models import engines

    torch.manual_seed(0)
    model = create_model("tiny+gem").eval()
    example = torch.rand(1, 3, 32, 48)
    # An export whose output differs from torch's: refused, and never written to the cache.
    real_call = OnnxRuntimeEngine.__call__
    monkeypatch.setattr(OnnxRuntimeEngine, "__call__", lambda self, x: -real_call(self, x))
    assert engines.select_engine(model, "auto", torch.device("cpu"), None, example) is None
    assert not _cache_path(model).exists()
    monkeypatch.setattr(OnnxRuntimeEngine, "__call__", real_call)
    assert engines.select_engine(model, "auto", torch.device("cpu"), None, example) is not None
    assert _cache_path(model).is_file()

    # A new process (a new module object, same weights) trusts the cached file: torch never runs.
    twin = create_model("tiny+gem").eval()
    twin.load_state_dict(model.state_dict())
    monkeypatch.setattr(twin, "forward", lambda x: (_ for _ in ()).throw(AssertionError("torch ran")))
    runner = engines.select_engine(twin, "auto", torch.device("cpu"), None, example)
    assert runner is not None and runner.from_cache


def test_a_graph_traced_at_a_fixed_size_runs_other_sizes_through_torch(cache: Path) -> None:
    from torch import nn

    from vgloc.models.extract import extract_descriptors

    class FixedSize(nn.Module):
        """Like DINOv2: the traced graph keeps the example's size (here a reshape to it)."""

        onnx_fixed_image_size = True
        descriptor_dim = 4

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h, w = int(x.shape[-2]), int(x.shape[-1])  # int(): constants in the trace
            pooled = x.reshape(x.shape[0], 3, h * w).mean(-1)
            return nn.functional.normalize(torch.cat([pooled, pooled[:, :1] * w / h], 1), dim=1)

    model = FixedSize()
    small, large = torch.rand(1, 3, 8, 12), torch.rand(1, 3, 16, 12)
    engine = OnnxRuntimeEngine(model, small)
    assert engine.fixed_hw == (8, 12) and engine.accepts(small) and not engine.accepts(large)
    assert _cache_path(model, (8, 12)) != _cache_path(model, (16, 12))

    images = [small[0], small[0] * 0.5, large[0], large[0] * 0.5]
    dataset = [(img, i) for i, img in enumerate(images)]
    out = extract_descriptors(
        model, dataset, batches=[[0, 1], [2, 3]], precision="auto", engine="auto", progress=False
    )
    with torch.no_grad():
        ref = torch.cat([model(torch.stack(images[:2])), model(torch.stack(images[2:]))]).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-6)


@pytest.mark.slow
def test_dinov2_extracts_at_two_sizes_on_the_fast_path(cache: Path) -> None:
    from vgloc.models.extract import extract_descriptors

    torch.manual_seed(0)
    model = create_model("dinov2_vits14+gem").eval()
    images = [torch.rand(3, 42, 56), torch.rand(3, 42, 56), torch.rand(3, 56, 42), torch.rand(3, 56, 42)]
    dataset = [(img, i) for i, img in enumerate(images)]
    out = extract_descriptors(
        model, dataset, batches=[[0, 1], [2, 3]], precision="auto", engine="auto", progress=False
    )
    with torch.no_grad():
        ref = torch.cat([model(torch.stack(images[:2])), model(torch.stack(images[2:]))]).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4)


@pytest.mark.parametrize("cores", [1, 2, 3])
def test_a_batch_split_across_cores_gives_the_descriptors_of_one_run(cache: Path, cores: int) -> None:
    torch.manual_seed(0)
    model = create_model("tiny+gem").eval()
    images = torch.rand(5, 3, 32, 48)
    engine = OnnxRuntimeEngine(model, images, cores=cores)
    with torch.no_grad():
        expected = model(images)
    one_run = torch.from_numpy(engine.session.run(None, {"images": images.numpy()})[0])
    for batch in (images, images[:1], images[:2]):  # more, fewer and as many images as cores
        got = engine(batch)
        assert got.shape == (batch.shape[0], expected.shape[1])
        torch.testing.assert_close(got, one_run[: batch.shape[0]], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got, expected[: batch.shape[0]], rtol=1e-4, atol=1e-5)
    # One image on several cores runs with intra-op threads instead of slices.
    assert sorted(engine._sessions) == sorted({1, cores})


def test_a_cached_export_is_loaded_through_its_optimized_form(cache: Path) -> None:
    from vgloc.models.engines import _optimized_path

    torch.manual_seed(0)
    model = create_model("tiny+gem").eval()
    images = torch.rand(3, 3, 32, 48)
    first = OnnxRuntimeEngine(model, images, cores=2)
    first.save_to_cache()
    optimized = _optimized_path(first.cache_path)
    assert not optimized.exists()  # written by the first process that loads the cached file

    second = OnnxRuntimeEngine(model, images, cores=2)
    assert second.from_cache and optimized.is_file() and not second._optimized
    third = OnnxRuntimeEngine(model, images, cores=2)
    assert third._optimized and third._source == str(optimized)
    expected = first(images)
    for engine in (second, third):
        torch.testing.assert_close(engine(images), expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(engine(images[:1]), expected[:1], rtol=1e-5, atol=1e-6)

    optimized.write_bytes(b"not a graph")  # damaged: ignored, and written again
    fourth = OnnxRuntimeEngine(model, images, cores=2)
    assert not fourth._optimized
    torch.testing.assert_close(fourth(images), expected, rtol=1e-5, atol=1e-6)
    assert OnnxRuntimeEngine(model, images, cores=2)._optimized
