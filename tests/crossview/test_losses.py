"""Cross-view losses against values computed by hand from the study's formulas."""

from __future__ import annotations

import math

import pytest
import torch

from vgloc.crossview.losses import create_crossview_loss, negative_pairs
from vgloc.registry import CROSSVIEW_LOSSES, UnknownNameError

# Two pairs of 2-D unit vectors with easy distances:
#   D(g0, a0) = sqrt(0.8), D(g1, a1) = 0, D(g0, a1) = sqrt(2), D(g1, a0) = sqrt(0.4).
G = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
A = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
D00, D11, D01, D10 = math.sqrt(0.8), 0.0, math.sqrt(2.0), math.sqrt(0.4)


def _sp(x: float) -> float:
    return math.log1p(math.exp(x))


def test_negative_pairs_one_and_all() -> None:
    i, j = negative_pairs(3, "one")
    assert i.tolist() == [0, 1, 2] and j.tolist() == [1, 2, 0]
    i, j = negative_pairs(3, "all")
    assert sorted(zip(i.tolist(), j.tolist(), strict=True)) == [
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 2),
        (2, 0),
        (2, 1),
    ]
    with pytest.raises(ValueError, match="negatives"):
        negative_pairs(3, "some")


def test_contrastive() -> None:
    m = 1.2
    # Positives: mean of D; negatives (g0, a1), (g1, a0): mean of [m - D]+.
    want = (D00 + D11) / 2 + (max(0.0, m - D01) + max(0.0, m - D10)) / 2
    got = create_crossview_loss("contrastive", margin=m)(G, A)
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_triplet_hinge() -> None:
    m = 0.5
    want = (max(0.0, m + D00 - D01) + max(0.0, m + D11 - D10)) / 2
    assert create_crossview_loss("triplet", margin=m)(G, A).item() == pytest.approx(want, rel=1e-5)


def test_dbl_pair_matches_probability_formula() -> None:
    m = 1.0

    def p(d: float) -> float:
        return (1 + math.exp(-m)) / (1 + math.exp(d - m))

    want = -(math.log(p(D00)) + math.log(p(D11))) / 2 - (math.log(1 - p(D01)) + math.log(1 - p(D10))) / 2
    assert create_crossview_loss("dbl_pair", margin=m)(G, A).item() == pytest.approx(want, rel=1e-5)


def test_dbl_and_soft_triplet() -> None:
    want = (_sp(D00 - D01) + _sp(D11 - D10)) / 2
    assert create_crossview_loss("dbl_triplet")(G, A).item() == pytest.approx(want, rel=1e-5)
    want10 = (_sp(10 * (D00 - D01)) + _sp(10 * (D11 - D10))) / 2
    assert create_crossview_loss("soft_triplet")(G, A).item() == pytest.approx(want10, rel=1e-5)


def test_exhaustive_dbl_uses_both_directions() -> None:
    g = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2], [0.1, 1.0], [-1.0, 0.3]]), dim=1)
    a = torch.nn.functional.normalize(torch.tensor([[0.8, 0.5], [0.0, 1.0], [-0.7, -0.6]]), dim=1)
    d = [[(g[i] - a[j]).norm().item() for j in range(3)] for i in range(3)]
    ground_anchor = [_sp(d[i][i] - d[i][j]) for i in range(3) for j in range(3) if i != j]
    aerial_anchor = [_sp(d[j][j] - d[i][j]) for j in range(3) for i in range(3) if i != j]
    want = (sum(ground_anchor) / 6 + sum(aerial_anchor) / 6) / 2
    assert create_crossview_loss("exhaustive_dbl")(g, a).item() == pytest.approx(want, rel=1e-5)


def test_infonce_symmetric() -> None:
    t = 0.5
    s = [[(G[i] @ A[j]).item() / t for j in range(2)] for i in range(2)]
    rows = [-s[i][i] + math.log(sum(math.exp(x) for x in s[i])) for i in range(2)]
    cols = [-s[j][j] + math.log(sum(math.exp(s[i][j]) for i in range(2))) for j in range(2)]
    want = (sum(rows) / 2 + sum(cols) / 2) / 2
    assert create_crossview_loss("infonce", temperature=t)(G, A).item() == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("name", CROSSVIEW_LOSSES.names())
def test_every_loss_has_gradients_and_rejects_bad_batches(name: str) -> None:
    torch.manual_seed(0)
    g = torch.nn.functional.normalize(torch.randn(5, 8), dim=1).requires_grad_()
    a = torch.nn.functional.normalize(torch.randn(5, 8), dim=1).requires_grad_()
    loss = create_crossview_loss(name)
    out = loss(g, a)
    out.backward()
    assert out.ndim == 0 and torch.isfinite(out)
    assert g.grad is not None and g.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="at least 2"):
        loss(g[:1], a[:1])
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        loss(g, a[:, :4])


def test_unknown_loss_suggests() -> None:
    with pytest.raises(UnknownNameError, match="dbl_pair"):
        create_crossview_loss("dbl_pairs")
