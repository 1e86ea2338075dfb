"""fc head initialised by PCA-whitening, and the penultimate (pre-head) embedding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vgloc.models import GeoLocalizationModel
from vgloc.models.heads import FCHead, init_fc_whitening, penultimate_embedding


def _correlated(n: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) * torch.logspace(0, -2, d)  # very unequal variances
    return torch.randn(n, d, generator=g) @ mix.T + 3.0


def test_whitening_init_gives_zero_mean_identity_covariance() -> None:
    x = _correlated(500, 24)
    head = FCHead(24, 8)
    lam = init_fc_whitening(head, x.numpy(), eps=0.0)
    assert lam.shape == (8,) and bool((lam[:-1] >= lam[1:]).all())
    with torch.no_grad():
        y = head(x).double()
    torch.testing.assert_close(y.mean(0), torch.zeros(8, dtype=torch.float64), atol=1e-4, rtol=0)
    cov = torch.cov(y.T)
    torch.testing.assert_close(cov, torch.eye(8, dtype=torch.float64), atol=1e-3, rtol=0)
    # The kept directions are the leading principal components (same subspace as SVD's).
    xc = (x - x.mean(0)).double()
    top = torch.linalg.svd(xc, full_matrices=False).Vh[:8]
    w = F.normalize(head.fc.weight.double(), dim=1)
    assert torch.linalg.svdvals(w @ top.T).min() > 0.999


def test_whitening_eps_limits_small_components_and_errors() -> None:
    x = torch.cat([_correlated(50, 6), torch.full((50, 2), 1.0)], dim=1)  # 2 constant dims
    head = torch.nn.Linear(8, 8)
    init_fc_whitening(head, x, eps=1e-4)
    assert torch.isfinite(head.weight).all() and head.weight.abs().max() < 1e4
    with pytest.raises(ValueError, match="more than 8 sample descriptors"):
        init_fc_whitening(head, x[:8])
    with pytest.raises(ValueError, match=r"shape \(N, 8\)"):
        init_fc_whitening(head, x[:, :5])
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        init_fc_whitening(head, bad)
    with pytest.raises(TypeError):
        init_fc_whitening(torch.nn.Conv2d(8, 8, 1), x)  # type: ignore[arg-type]


def test_penultimate_embedding_is_the_heads_input() -> None:
    torch.manual_seed(0)
    model = GeoLocalizationModel("tiny+gem+fc16").eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        raw = penultimate_embedding(model, x, normalize=False)
        emb = penultimate_embedding(model, x)
        out = model(x)
    assert raw.shape == emb.shape == (3, 32)
    torch.testing.assert_close(emb, F.normalize(raw, dim=1))
    torch.testing.assert_close(out, F.normalize(model.head(raw), dim=1))
    # Whitening from penultimate samples then feeds the same model.
    init_fc_whitening(model.head, penultimate_embedding(model, torch.randn(40, 3, 32, 32), normalize=False))
    assert np.isfinite(model(x).detach().numpy()).all()
