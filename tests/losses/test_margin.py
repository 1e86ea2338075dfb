"""Margin heads: analytic values on angle-constructed embeddings and agreement with PML."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vgloc.losses.margin import MarginHead, SphereFaceAnnealing, create_margin_head, list_margin_heads
from vgloc.registry import UnknownNameError

pml_losses = pytest.importorskip("pytorch_metric_learning.losses")

# PML's LargeMarginSoftmaxLoss builds binomials from a tensor, which NumPy 2 flags.
pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")


def _head_with_axes(head: MarginHead) -> MarginHead:
    """Class c's weight = the c-th axis (scaled, to check that weights are normalised)."""
    with torch.no_grad():
        head.weight.zero_()
        for c in range(head.num_classes):
            head.weight[c, c] = 3.0 + c
    return head


def _at_angle(theta: float, norm: float = 1.0) -> torch.Tensor:
    """A 3-D embedding at angle theta from axis 0 and orthogonal to axis 1 (class 1)."""
    return norm * torch.tensor([[math.cos(theta), 0.0, math.sin(theta)]], dtype=torch.float64)


def _two_class_head(name: str, **kw: object) -> MarginHead:
    return _head_with_axes(create_margin_head(name, 3, 2, **kw).double())


# -- analytic target logits -------------------------------------------------------------


@pytest.mark.parametrize("theta", [0.0, 0.3, math.pi / 3, 2.0, 3.0])
def test_cosface_logits_and_loss_at_known_angle(theta: float) -> None:
    head = _two_class_head("cosface")
    logits = head(_at_angle(theta), torch.tensor([0]))
    target = 30.0 * (math.cos(theta) - 0.40)
    torch.testing.assert_close(logits, torch.tensor([[target, 0.0]], dtype=torch.float64))
    # Two classes: CE = log(1 + exp(other - target)).
    expected = math.log1p(math.exp(-target))
    assert head.loss(_at_angle(theta), torch.tensor([0])).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("theta", [0.1, math.pi / 3, 1.5, math.pi - 0.5 - 1e-3])
def test_arcface_target_logit_is_s_cos_theta_plus_m(theta: float) -> None:
    head = _two_class_head("arcface")
    logits = head(_at_angle(theta), torch.tensor([0]))
    assert logits[0, 0].item() == pytest.approx(64.0 * math.cos(theta + 0.5), abs=1e-9)
    assert logits[0, 1].item() == pytest.approx(0.0, abs=1e-12)


def test_arcface_beyond_pi_minus_m_uses_the_monotonic_fallback() -> None:
    head = _two_class_head("arcface")
    theta = 3.0  # > pi - 0.5
    logit = head(_at_angle(theta), torch.tensor([0]))[0, 0].item()
    assert logit == pytest.approx(64.0 * (math.cos(theta) - 0.5 * math.sin(0.5)), abs=1e-9)
    thetas = np.linspace(0.0, math.pi, 721)
    x = torch.cat([_at_angle(t) for t in thetas])
    target = head(x, torch.zeros(len(thetas), dtype=torch.long))[:, 0]
    assert torch.all(target[1:] <= target[:-1] + 1e-9), "ArcFace target logit must not increase with theta"


@pytest.mark.parametrize(
    ("theta", "psi"),
    [
        (0.1, math.cos(0.4)),  # k = 0
        (math.pi / 8, 0.0),  # k = 0, cos(pi/2)
        (math.pi / 3, -math.cos(4 * math.pi / 3) - 2.0),  # k = 1: 0.5 - 2
        (2.0, math.cos(8.0) - 4.0),  # k = floor(8/pi) = 2
        (3.0, -math.cos(12.0) - 6.0),  # k = 3
    ],
)
def test_sphereface_psi_and_norm_scaling(theta: float, psi: float) -> None:
    head = _two_class_head("sphereface")
    r = 2.5
    logits = head(_at_angle(theta, norm=r), torch.tensor([0]))
    assert logits[0, 0].item() == pytest.approx(r * psi, abs=1e-9)
    # Non-target logit: ||x|| * cos(pi/2) = 0; an embedding along class 1 gets ||x|| * 1.
    assert logits[0, 1].item() == pytest.approx(0.0, abs=1e-9)
    along_1 = torch.tensor([[0.0, r, 0.0]], dtype=torch.float64)
    assert head(along_1, torch.tensor([0]))[0, 1].item() == pytest.approx(r)


def test_sphereface_psi_is_monotonic_and_continuous() -> None:
    head = _two_class_head("sphereface")
    thetas = np.linspace(0.0, math.pi, 4001)
    x = torch.cat([_at_angle(t) for t in thetas])
    psi = head(x, torch.zeros(len(thetas), dtype=torch.long))[:, 0]
    assert torch.all(psi[1:] <= psi[:-1] + 1e-9)
    assert psi[0].item() == pytest.approx(1.0) and psi[-1].item() == pytest.approx(-7.0)
    assert torch.max(torch.abs(psi[1:] - psi[:-1])).item() < 0.05  # no jumps at k*pi/4


def test_sphereface_annealing_follows_the_caffe_schedule() -> None:
    ann = SphereFaceAnnealing()
    assert ann.value(1) == pytest.approx(1000.0 / 1.12)
    assert ann.value(10_000) == 5.0
    head = _two_class_head("sphereface", annealing=True)
    theta, r = math.pi / 3, 2.0
    x, y = _at_angle(theta, norm=r), torch.tensor([0])
    psi = -math.cos(4 * theta) - 2.0
    head.train()
    first = head(x, y)[0, 0].item()
    lam = 1000.0 / (1.0 + 0.12 * 1)  # the counter is incremented before lambda is computed
    assert first == pytest.approx(r * (lam * math.cos(theta) + psi) / (1 + lam), rel=1e-9)
    assert int(head.iteration) == 1
    head.eval()
    head(x, y)
    assert int(head.iteration) == 1, "evaluation passes must not advance the schedule"
    head.train()
    head.iteration.fill_(100_000)
    late = head(x, y)[0, 0].item()
    assert late == pytest.approx(r * (5.0 * math.cos(theta) + psi) / 6.0, rel=1e-9)
    assert "iteration" in head.state_dict()


def test_without_labels_logits_are_scaled_cosines_and_weight_scale_is_irrelevant() -> None:
    torch.manual_seed(0)
    head = MarginHead(6, 4, s=30.0, m3=0.4).double()
    x = torch.randn(5, 6, dtype=torch.float64)
    expected = 30.0 * F.normalize(x, dim=1) @ F.normalize(head.weight, dim=1).T
    torch.testing.assert_close(head(x), expected)
    before = head(x, torch.tensor([0, 1, 2, 3, 0]))
    with torch.no_grad():
        head.weight.mul_(7.0)
    torch.testing.assert_close(head(x, torch.tensor([0, 1, 2, 3, 0])), before)


def test_arcface_gradient_is_finite_when_embedding_equals_weight() -> None:
    head = _two_class_head("arcface")
    x = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    head.loss(x, torch.tensor([0])).backward()
    assert x.grad is not None and torch.all(torch.isfinite(x.grad))


def test_xavier_init_and_checkpoint_layout() -> None:
    head = create_margin_head("cosface", 512, 100)
    assert head.weight.shape == (100, 512)  # CosPlace MarginCosineProduct: (out, in)
    bound = math.sqrt(6.0 / (512 + 100))
    assert head.weight.abs().max().item() <= bound
    assert head.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)


# -- agreement with pytorch-metric-learning --------------------------------------------


def _pml_pair(name: str, d: int, c: int) -> tuple[MarginHead, Any]:
    if name == "cosface":
        ours = create_margin_head("cosface", d, c, s=64.0, m=0.35)
        theirs = pml_losses.CosFaceLoss(c, d)  # defaults margin=0.35, scale=64
    elif name == "cosface_cosplace":
        ours = create_margin_head("cosface", d, c)
        theirs = pml_losses.CosFaceLoss(c, d, margin=0.40, scale=30)
    elif name == "arcface":
        # PML v2.x takes the ArcFace margin in degrees (28.6 by default).
        ours = create_margin_head("arcface", d, c, m=math.radians(28.6))
        theirs = pml_losses.ArcFaceLoss(c, d)
        assert theirs.margin == pytest.approx(math.radians(28.6)), "PML ArcFace margin unit changed"
    else:
        ours = create_margin_head("sphereface", d, c)
        theirs = pml_losses.SphereFaceLoss(c, d)  # margin=4, scale=1
    ours, theirs = ours.double(), theirs.double()
    with torch.no_grad():
        theirs.W.copy_(ours.weight.T)  # PML's W is (embedding_size, num_classes)
    return ours, theirs


@pytest.mark.parametrize("name", ["cosface", "cosface_cosplace", "arcface", "sphereface"])
def test_loss_and_gradient_match_pml(name: str) -> None:
    torch.manual_seed(1)
    d, c, b = 16, 7, 40
    ours, theirs = _pml_pair(name, d, c)
    x = (torch.randn(b, d, dtype=torch.float64) * 1.7).requires_grad_(True)
    y = torch.randint(0, c, (b,))
    x2 = x.detach().clone().requires_grad_(True)
    loss_ours = ours.loss(x, y)
    loss_pml = theirs(x2, y)
    assert loss_ours.item() == pytest.approx(loss_pml.item(), rel=1e-10)
    loss_ours.backward()
    loss_pml.backward()
    assert x.grad is not None and x2.grad is not None
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-7, atol=1e-10)


def test_arcface_matches_pml_in_the_fallback_region() -> None:
    ours, theirs = _pml_pair("arcface", 3, 2)
    with torch.no_grad():
        ours.weight.copy_(torch.eye(3)[:2])
        theirs.W.copy_(ours.weight.T)
    x = torch.cat([_at_angle(t) for t in (2.8, 3.0, 3.1)])
    y = torch.zeros(3, dtype=torch.long)
    assert ours.loss(x, y).item() == pytest.approx(theirs(x, y).item(), rel=1e-10)


# -- presets, factory, errors -------------------------------------------------------------


def test_presets_and_overrides() -> None:
    assert list_margin_heads() == ["arcface", "cosface", "sphereface"]
    cos = create_margin_head("cosface", 8, 3)
    assert (cos.s, cos.m1, cos.m2, cos.m3) == (30.0, 1, 0.0, 0.40)
    arc = create_margin_head("arcface", 8, 3)
    assert (arc.s, arc.m2, arc.m3) == (64.0, 0.5, 0.0)
    sph = create_margin_head("sphereface", 8, 3)
    assert (sph.s, sph.m1, sph.scale_by_norm, sph.annealing) == (1.0, 4, True, None)
    eigen = create_margin_head("cosface", 8, 3, s=100, m=0.4)  # EigenPlaces
    assert (eigen.s, eigen.m3) == (100.0, 0.4)
    assert create_margin_head("sphereface", 8, 3, m=2).m1 == 2


def test_factory_errors() -> None:
    with pytest.raises(UnknownNameError, match="cosface"):
        create_margin_head("cosfce", 8, 3)
    with pytest.raises(TypeError, match="margin"):
        create_margin_head("cosface", 8, 3, margin=0.3)
    with pytest.raises(TypeError, match="not both"):
        create_margin_head("cosface", 8, 3, m=0.3, m3=0.2)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"s": 0.0}, "s must be > 0"),
        ({"m1": 2.5}, "m1"),
        ({"m2": -0.1}, "m2"),
        ({"m3": -0.1}, "m3"),
        ({"m1": 2, "m2": 0.2}, "not supported"),
    ],
)
def test_bad_parameters_are_named(kw: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MarginHead(4, 3, **kw)


def test_bad_inputs_are_named() -> None:
    head = MarginHead(4, 3)
    with pytest.raises(ValueError, match=r"label 3 is outside \[0, 3\)"):
        head(torch.randn(2, 4), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"shape \(B, 4\)"):
        head(torch.randn(2, 5))
    with pytest.raises(ValueError, match="integer"):
        head(torch.randn(2, 4), torch.tensor([0.0, 1.0]))
