"""Descriptor extraction: order, dtype, precision, channels_last, bad datasets."""

from __future__ import annotations

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
    assert autocast_dtype("auto", torch.device("cpu")) is None
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
