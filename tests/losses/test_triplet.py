"""Ranking losses: hand-computed values, VG benchmark / PML agreement, gradient direction."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vgloc.losses.triplet import (
    ContrastivePairLoss,
    MultiPositiveSoftLoss,
    SoftTripletLoss,
    TripletLoss,
    create_triplet_loss,
    list_triplet_losses,
)
from vgloc.registry import UnknownNameError

pml = pytest.importorskip("pytorch_metric_learning")


def _unit(angle: float) -> list[float]:
    return [math.cos(angle), math.sin(angle), 0.0]


def _chord(angle: float) -> float:
    """L2 distance between two unit vectors `angle` radians apart."""
    return 2.0 * math.sin(angle / 2.0)


# Two queries on the unit circle; positives/negatives at known angles from their query.
Q_ANGLES = [0.0, 1.0]
P_OFFSETS = [[0.2], [0.5]]
N_OFFSETS = [[0.25, 1.2], [0.4, 2.0]]


def _batch(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    q = torch.tensor([_unit(a) for a in Q_ANGLES], dtype=dtype)
    p = torch.tensor(
        [[_unit(a + o) for o in offs] for a, offs in zip(Q_ANGLES, P_OFFSETS, strict=True)], dtype=dtype
    )
    n = torch.tensor(
        [[_unit(a - o) for o in offs] for a, offs in zip(Q_ANGLES, N_OFFSETS, strict=True)], dtype=dtype
    )
    return q, p, n


def _random_batch(
    b: int = 4, p: int = 1, n: int = 10, d: int = 16, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(b, d, generator=g, dtype=torch.float64), dim=-1)
    pos = F.normalize(q[:, None] + 0.6 * torch.randn(b, p, d, generator=g, dtype=torch.float64), dim=-1)
    neg = F.normalize(q[:, None] + 0.9 * torch.randn(b, n, d, generator=g, dtype=torch.float64), dim=-1)
    return q, pos, neg


# -- triplet --------------------------------------------------------------------------


def test_triplet_hand_computed_value() -> None:
    q, p, n = _batch()
    terms = [
        max(0.0, _chord(po) - _chord(no) + 0.1)
        for pos_offs, neg_offs in zip(P_OFFSETS, N_OFFSETS, strict=True)
        for po in pos_offs
        for no in neg_offs
    ]
    # Query 0: 0.1990 - 0.2487 + 0.1 > 0; the easy negatives contribute 0 but still count.
    assert terms[1] == 0.0 and terms[3] == 0.0
    expected = sum(terms) / len(terms)
    assert TripletLoss()(q, p, n).item() == pytest.approx(expected, rel=1e-12)


def test_triplet_equals_the_vg_benchmark_computation() -> None:
    """VGB: torch TripletMarginLoss(margin=0.1, p=2, reduction='sum') per negative slot, / (B*10)."""
    q, pos, neg = _random_batch(b=4, p=1, n=10)
    vgb = torch.nn.TripletMarginLoss(margin=0.1, p=2, reduction="sum")
    expected = sum(vgb(q, pos[:, 0], neg[:, i]) for i in range(10)) / (4 * 10)
    # torch adds eps=1e-6 inside the norm; PML's distance does not.
    assert TripletLoss(margin=0.1)(q, pos, neg).item() == pytest.approx(float(expected), abs=1e-5)


def test_triplet_matches_pml_on_a_flat_batch() -> None:
    from pytorch_metric_learning.losses import TripletMarginLoss
    from pytorch_metric_learning.reducers import MeanReducer

    q, pos, neg = _random_batch(b=3, p=2, n=4)
    b, p, n = 3, 2, 4
    emb = torch.cat([q, pos.reshape(-1, 16), neg.reshape(-1, 16)])
    a, pp, nn_ = [], [], []
    for i in range(b):
        for j in range(p):
            for k in range(n):
                a.append(i)
                pp.append(b + i * p + j)
                nn_.append(b + b * p + i * n + k)
    ref = TripletMarginLoss(margin=0.1, reducer=MeanReducer())(
        emb, indices_tuple=tuple(map(torch.tensor, (a, pp, nn_)))
    )
    assert TripletLoss()(q, pos, neg).item() == pytest.approx(ref.item(), rel=1e-9)


def test_triplet_zero_when_negatives_are_far_and_2d_positives_accepted() -> None:
    q = torch.tensor([_unit(0.0)], dtype=torch.float64)
    p = torch.tensor([_unit(0.1)], dtype=torch.float64)  # (B, D): one positive
    n = torch.tensor([[_unit(2.0), _unit(-2.5)]], dtype=torch.float64)
    assert TripletLoss()(q, p, n).item() == 0.0


def test_triplet_gradient_pulls_positive_and_pushes_negative() -> None:
    q, p, n = _batch()
    p.requires_grad_(True)
    n.requires_grad_(True)
    q.requires_grad_(True)
    TripletLoss()(q, p, n).backward()
    assert p.grad is not None and n.grad is not None
    # The descent direction of the positive points toward its query ...
    toward_q = q.detach()[:, None] - p.detach()
    assert torch.sum(-p.grad * toward_q, dim=-1).min() > 0
    # ... and the active negative (query 0, first negative) is pushed away from it.
    away = n.detach()[0, 0] - q.detach()[0]
    assert torch.dot(-n.grad[0, 0], away) > 0
    # A small step along -grad lowers d(q, p).
    p2 = p.detach() - 0.01 * p.grad
    assert torch.all(
        (q.detach()[:, None] - p2).norm(dim=-1) < (q.detach()[:, None] - p.detach()).norm(dim=-1)
    )


def test_near_duplicate_positives_keep_float32_precision_and_finite_gradients() -> None:
    """Batches of > 25 rows make torch.cdist use |a|^2 + |b|^2 - 2ab, which loses float32
    precision for near-identical pairs; the wrapped distance computes ||a - b|| directly."""
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(40, 256, generator=g), dim=1)
    n = F.normalize(torch.randn(40, 3, 256, generator=g), dim=-1)
    p = F.normalize(q + 1e-4 * torch.randn(40, 256, generator=g), dim=1)[:, None]
    exact = SoftTripletLoss()(q.double(), p.double(), n.double()).item()
    assert SoftTripletLoss()(q, p, n).item() == pytest.approx(exact, abs=1e-7)
    same = q.clone()[:, None].requires_grad_(True)
    TripletLoss(margin=0.5)(q, same, n).backward()
    assert same.grad is not None and torch.all(torch.isfinite(same.grad))


# -- soft triplet -----------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1.0, 10.0])
def test_soft_triplet_hand_computed(alpha: float) -> None:
    q, p, n = _batch()
    terms = [
        math.log1p(math.exp(alpha * (_chord(po) - _chord(no))))
        for pos_offs, neg_offs in zip(P_OFFSETS, N_OFFSETS, strict=True)
        for po in pos_offs
        for no in neg_offs
    ]
    loss = SoftTripletLoss(alpha=alpha)(q, p, n)
    assert loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-12)


def test_soft_triplet_never_zero_and_pulls() -> None:
    q = torch.tensor([_unit(0.0)], dtype=torch.float64)
    p = torch.tensor([[_unit(0.1)]], dtype=torch.float64, requires_grad=True)
    n = torch.tensor([[_unit(3.0)]], dtype=torch.float64)
    loss = SoftTripletLoss()(q, p, n)
    assert loss.item() > 0
    loss.backward()
    assert p.grad is not None
    assert torch.dot(-p.grad[0, 0], q[0] - p.detach()[0, 0]) > 0


# -- multi-positive soft ------------------------------------------------------------------


def test_multi_soft_hand_computed() -> None:
    q = torch.tensor([_unit(0.0)], dtype=torch.float64)
    p = torch.tensor([[_unit(0.3), _unit(-0.6)]], dtype=torch.float64)
    n = torch.tensor([[_unit(1.0), _unit(2.0), _unit(-1.5)]], dtype=torch.float64)
    t = 0.1
    pos = sum(math.exp(math.cos(a) / t) for a in (0.3, -0.6))
    neg = sum(math.exp(math.cos(a) / t) for a in (1.0, 2.0, -1.5))
    expected = -math.log(pos / (pos + neg))
    assert MultiPositiveSoftLoss(temperature=t)(q, p, n).item() == pytest.approx(expected, rel=1e-12)


def test_multi_soft_default_temperature_equals_sare_joint() -> None:
    """With one positive and T=0.5 the loss is the VG benchmark's sare_joint."""
    q, pos, neg = _random_batch(b=4, p=1, n=10)
    d2 = torch.cat([((q[:, None] - pos) ** 2).sum(-1), ((q[:, None] - neg) ** 2).sum(-1)], 1)
    sare = (-F.log_softmax(-d2, dim=1)[:, 0]).mean()
    assert MultiPositiveSoftLoss()(q, pos, neg).item() == pytest.approx(sare.item(), rel=1e-10)


def test_multi_soft_is_stable_at_low_temperature_and_pulls_positive() -> None:
    q, p, n = _batch()
    p.requires_grad_(True)
    loss = MultiPositiveSoftLoss(temperature=1e-3)(q, p, n)
    assert torch.isfinite(loss)
    MultiPositiveSoftLoss()(q, p, n).backward()
    assert p.grad is not None
    assert torch.sum(-p.grad * (q[:, None] - p.detach()), dim=-1).min() > 0


# -- contrastive --------------------------------------------------------------------------


def test_contrastive_hand_computed() -> None:
    q, p, n = _batch()
    pos_terms = [_chord(o) for offs in P_OFFSETS for o in offs]
    neg_terms = [max(0.0, 1.0 - _chord(o)) for offs in N_OFFSETS for o in offs]
    expected = sum(pos_terms) / len(pos_terms) + sum(neg_terms) / len(neg_terms)
    assert ContrastivePairLoss()(q, p, n).item() == pytest.approx(expected, rel=1e-12)
    nonzero = [t for t in neg_terms if t > 0]
    expected_nz = sum(pos_terms) / len(pos_terms) + sum(nonzero) / len(nonzero)
    loss_nz = ContrastivePairLoss(reduction="avg_nonzero")(q, p, n)
    assert loss_nz.item() == pytest.approx(expected_nz, rel=1e-12)


def test_contrastive_single_pair_is_not_silently_zero() -> None:
    """PML returns 0 when every index list has one entry; the wrapper must not."""
    q = torch.tensor([_unit(0.0)], dtype=torch.float64)
    p = torch.tensor([[_unit(0.4)]], dtype=torch.float64)
    n = torch.tensor([[_unit(0.5)]], dtype=torch.float64)
    expected = _chord(0.4) + (1.0 - _chord(0.5))
    assert ContrastivePairLoss()(q, p, n).item() == pytest.approx(expected, rel=1e-12)


def test_contrastive_matches_pml_with_labels() -> None:
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.losses import ContrastiveLoss
    from pytorch_metric_learning.reducers import MeanReducer

    # One query: PML's label-based pairs from (q, p, n) include p-n and p-q pairs, so
    # compare with explicit query-anchored pairs on a flat batch instead.
    q, pos, neg = _random_batch(b=2, p=2, n=3)
    emb = torch.cat([q, pos.reshape(-1, 16), neg.reshape(-1, 16)])
    a1 = torch.tensor([0, 0, 1, 1])
    pp = torch.tensor([2, 3, 4, 5])
    a2 = torch.tensor([0, 0, 0, 1, 1, 1])
    nn_ = torch.tensor([6, 7, 8, 9, 10, 11])
    ref = ContrastiveLoss(distance=LpDistance(normalize_embeddings=False), reducer=MeanReducer())(
        emb, indices_tuple=(a1, pp, a2, nn_)
    )
    assert ContrastivePairLoss()(q, pos, neg).item() == pytest.approx(ref.item(), rel=1e-9)


# -- factory and validation ---------------------------------------------------------------


def test_factory() -> None:
    assert list_triplet_losses() == ["contrastive", "multi_soft", "soft_triplet", "triplet"]
    assert isinstance(create_triplet_loss("triplet"), TripletLoss)
    assert create_triplet_loss("triplet", margin=0.3).margin == 0.3
    assert create_triplet_loss("multi_soft", temperature=0.07).temperature == 0.07
    with pytest.raises(UnknownNameError, match="soft_triplet"):
        create_triplet_loss("soft_tripplet")
    with pytest.raises(TypeError, match="triplet"):
        create_triplet_loss("triplet", temperature=0.1)


@pytest.mark.parametrize("name", ["triplet", "soft_triplet", "multi_soft", "contrastive"])
def test_input_validation(name: str) -> None:
    loss = create_triplet_loss(name)
    q, p, n = _batch()
    with pytest.raises(ValueError, match="query must be"):
        loss(q[0], p, n)
    with pytest.raises(ValueError, match="does not match"):
        loss(q, p[:1], n)
    with pytest.raises(ValueError, match="at least one"):
        loss(q, p, n[:, :0])
    with pytest.raises(ValueError, match="does not match"):
        loss(q, p, n[..., :2])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision_dtypes_run_and_agree(dtype: torch.dtype) -> None:
    q, p, n = _batch()
    for name in list_triplet_losses():
        loss = create_triplet_loss(name)
        low = loss(q.to(dtype), p.to(dtype), n.to(dtype))
        assert low.dtype == dtype and torch.isfinite(low)
        assert low.item() == pytest.approx(loss(q, p, n).item(), abs=0.02)


def test_losses_pickle_and_resolve_from_the_package() -> None:
    import pickle

    import vgloc.losses

    q, p, n = _batch()
    for name in vgloc.losses.list_triplet_losses():
        loss = vgloc.losses.create_triplet_loss(name)
        clone = pickle.loads(pickle.dumps(loss))
        assert clone(q, p, n).item() == pytest.approx(loss(q, p, n).item())
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        vgloc.losses.nope  # noqa: B018
