"""NetVLAD cluster initialisation from data (PROTOCOLS §1.3)."""

from __future__ import annotations

import math

import faiss
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from vgloc.models import create_model, initialize_netvlad
from vgloc.models.aggregators import NetVLAD, netvlad_alpha, sample_local_descriptors


def _clustered(n_per: int = 200, k: int = 4, c: int = 16, noise: float = 0.05) -> tuple:
    """Unit descriptors around k orthogonal directions."""
    g = torch.Generator().manual_seed(0)
    centres = torch.eye(c)[:k]
    pts = centres.repeat_interleave(n_per, 0) + noise * torch.randn(k * n_per, c, generator=g)
    return F.normalize(pts, dim=1), centres


def test_alpha_matches_hand_computation() -> None:
    centroids = np.array([[2.0, 0.0], [0.0, 3.0]], dtype=np.float32)  # normalised: e1, e2
    desc = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    # gaps: 1 - 0 = 1 and 0.8 - 0.6 = 0.2 -> mean 0.6
    assert netvlad_alpha(centroids, desc) == pytest.approx(-math.log(0.01) / 0.6, rel=1e-6)


def test_init_from_features_sets_centroids_conv_and_alpha() -> None:
    desc, centres = _clustered()
    nv = NetVLAD(16, clusters=4)
    alpha = nv.init_from_features(desc)
    # Same k-means as the VG benchmark: faiss.Kmeans(dim, K, niter=100), faiss defaults.
    km = faiss.Kmeans(16, 4, niter=100, seed=1234)
    km.train(desc.numpy())
    ref = km.centroids.reshape(4, 16)
    np.testing.assert_array_equal(nv.centroids.detach().numpy(), ref)  # raw centroids
    # Independent alpha: -ln(0.01) / mean(top1 - top2) with the normalised centroids.
    normed = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    dots = np.sort(desc.numpy() @ normed.T, axis=1)[:, ::-1]
    expected_alpha = -np.log(0.01) / np.mean(dots[:, 0] - dots[:, 1])
    assert alpha == pytest.approx(expected_alpha, rel=1e-5)
    assert nv.alpha == alpha
    np.testing.assert_allclose(nv.conv.weight.detach().numpy()[:, :, 0, 0], alpha * normed, rtol=1e-6)
    assert nv.conv.bias is None
    # The found centres are the true ones (in some order).
    match = (F.normalize(nv.centroids.detach(), dim=1) @ centres.T).max(dim=1).values
    assert (match > 0.99).all()


def test_init_is_deterministic_and_seeded() -> None:
    desc, _ = _clustered(noise=0.3)
    a, b = NetVLAD(16, 4), NetVLAD(16, 4)
    a.init_from_features(desc)
    b.init_from_features(desc.numpy())
    torch.testing.assert_close(a.centroids, b.centroids, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("desc", "match"),
    [
        (torch.randn(3, 16), "at least 4 local descriptors"),
        (torch.randn(10, 8), r"shape \(N, 16\)"),
        (torch.full((10, 16), float("nan")), "NaN"),
    ],
)
def test_init_from_features_rejects_bad_input(desc: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NetVLAD(16, 4).init_from_features(desc)


class _Images(Dataset):
    def __init__(self, n: int, size: int = 64) -> None:
        g = torch.Generator().manual_seed(1)
        self.images = torch.randn(n, 3, size, size, generator=g)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], i


def test_sample_local_descriptors_counts_and_normalisation() -> None:
    model = create_model("tiny+netvlad4")
    # tiny at 64 px -> 8x8 = 64 locations: fewer than 100, so all are kept.
    desc = sample_local_descriptors(model.backbone, _Images(10), num_images=6, per_image=100)
    assert desc.shape == (6 * 64, 32)
    torch.testing.assert_close(desc.norm(dim=1), torch.ones(len(desc)))
    few = sample_local_descriptors(model.backbone, _Images(10), num_images=3, per_image=5)
    assert few.shape == (15, 32)
    # From a DataLoader: its first num_images images, in order.
    dl = DataLoader(_Images(10), batch_size=4)
    assert sample_local_descriptors(model.backbone, dl, num_images=5, per_image=7).shape == (35, 32)


def test_initialize_netvlad_on_a_model() -> None:
    model = create_model("tiny+netvlad4").train()
    alpha = initialize_netvlad(model, _Images(12), num_images=8, per_image=20)
    assert alpha > 0 and model.aggregator.alpha == alpha
    assert model.training  # mode restored
    w = model.aggregator.conv.weight.detach()[:, :, 0, 0]
    torch.testing.assert_close(w, alpha * F.normalize(model.aggregator.centroids.detach(), dim=1))
    again = create_model("tiny+netvlad4")
    again.backbone.load_state_dict(model.backbone.state_dict())
    initialize_netvlad(again, _Images(12), num_images=8, per_image=20)
    torch.testing.assert_close(again.aggregator.centroids, model.aggregator.centroids)


def test_initialized_flag_follows_data_init_and_checkpoint_loads() -> None:
    fresh = create_model("tiny+netvlad4")
    assert fresh.aggregator.requires_data_init and not fresh.aggregator.initialized
    gem = create_model("tiny+gem")
    assert not gem.aggregator.requires_data_init and gem.aggregator.initialized
    initialize_netvlad(fresh, _Images(4), num_images=4, per_image=10)
    assert fresh.aggregator.initialized
    loaded = create_model("tiny+netvlad4")
    loaded.load_state_dict(fresh.state_dict())
    assert loaded.aggregator.initialized
    partial = create_model("tiny+netvlad4")
    partial.backbone.load_state_dict(fresh.backbone.state_dict())  # clusters not loaded
    assert not partial.aggregator.initialized


def test_initialize_netvlad_needs_a_netvlad_model() -> None:
    with pytest.raises(TypeError, match="NetVLAD/CRN aggregator, got GeM"):
        initialize_netvlad(create_model("tiny+gem"), _Images(2))
