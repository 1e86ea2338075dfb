"""Every registered backbone x aggregator: forward and backward at 64 px, random init.

Heavy backbones (ResNet-50/101/152, VGG16, EfficientNets) run with every aggregator
only under ``-m slow``; by default each of them runs once (with GeM + fc), except
ResNet-101/152 (ResNet-50's code path, only deeper), and every aggregator runs on the
light backbones.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vgloc.models import create_model, freeze_early_layers, list_models
from vgloc.models.aggregators import CRN, GeM, NetVLAD, gem
from vgloc.registry import AGGREGATORS, BACKBONES

_BACKBONES = [r.name for r in list_models() if r.kind == "backbone"]
# Aggregators reading the CLS token (SALAD, MegaLoc, CricaVPR) pair only with ViT backbones.
_NEEDS_CLS = {a for a in AGGREGATORS.names() if AGGREGATORS.metadata(a).get("needs_cls_token")}
# ViTs larger than ViT-S/14 repeat its code path (wider/deeper): slow runs only, and
# ViT-L/G (0.3-1.1B parameters) once each (GeM + fc), not with every aggregator.
_HUGE = ("dinov2_vitl14", "dinov2_vitg14")


def _arch(bb: str) -> str:
    return bb.split(".")[0]


def _big_vit(bb: str) -> bool:
    return bb.startswith("dinov2_vit") and not bb.startswith("dinov2_vits14")


_LIGHT = {"tiny", "resnet18", "resnet18.conv4"}
# Deeper copies of ResNet-50's code path (same blocks, more of them), ResNet-34 (ResNet-18's
# blocks) and EfficientNet-B1..B7 (B0's blocks, scaled): slow runs only.
_DEEP = {"resnet101", "resnet152", "resnet34", *(f"efficientnet_b{i}" for i in range(1, 8))}
# Small K keeps NetVLAD/CRN cheap; the K=64 default is covered by the fixture tests.
_AGG_TOKEN = {"netvlad": "netvlad8", "crn": "crn8"}


def _cases() -> list[object]:
    """Default: each heavy backbone once (GeM + fc) and each aggregator on the light
    backbones, with and without a head; ``-m slow`` adds the rest of the cross product."""
    cases = []
    for bb in _BACKBONES:
        for agg in AGGREGATORS.names():
            if agg in _NEEDS_CLS and not BACKBONES.metadata(_arch(bb)).get("cls_token"):
                continue  # rejected at build time (tests/models/test_dinov2.py)
            for head in ("fc16", "none"):
                if bb.startswith(_HUGE) and (agg, head) != ("gem", "fc16"):
                    continue
                spec = f"{bb}+{_AGG_TOKEN.get(agg, agg)}+{head}"
                if bb in _LIGHT:
                    fast = head == "fc16" or bb == "tiny"
                else:  # heavy: once each, and conv4 only where a published model uses it
                    main_cut = "." not in bb or bb == "resnet50.conv4"
                    fast = (
                        agg == "gem" and head == "fc16" and main_cut and bb not in _DEEP and not _big_vit(bb)
                    )
                marks = [] if fast else [pytest.mark.slow]
                cases.append(pytest.param(spec, marks=marks, id=spec))
    return cases


def test_every_registered_aggregator_is_covered() -> None:
    assert set(AGGREGATORS.names()) >= {"avg", "max", "gem", "netvlad", "crn", "salad", "megaloc", "cricavpr"}
    assert {"tiny", "resnet18", "resnet18.conv4", "resnet50", "resnet50.conv4", "vgg16"} <= set(_BACKBONES)


@pytest.mark.parametrize("spec", _cases())
def test_forward_backward(spec: str) -> None:
    torch.manual_seed(0)
    model = create_model(spec)
    # ViTs need multiples of their patch size; SALAD needs more patches (9x9) than clusters (64).
    mult = int(BACKBONES.metadata(model.model_spec.backbone).get("multiple_of", 1))
    size = 126 if getattr(model, "needs_cls_token", False) else math.ceil(64 / mult) * mult
    grid = AGGREGATORS.metadata(model.model_spec.aggregator).get("grid")
    if grid:  # MixVPR's weights fit one feature-map size: grid x the backbone's stride
        size = grid[0] * int(BACKBONES.metadata(model.model_spec.backbone)["stride"][model.model_spec.cut])
    x = torch.randn(2, 3, size, size)
    out = model(x)
    assert out.shape == (2, model.descriptor_dim)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))
    # A loss that depends on every output coordinate non-trivially.
    (out * torch.randn_like(out)).sum().backward()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert name.startswith("aggregator.crn.acc_w"), name  # frozen by design
            continue
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize(
    ("spec", "dim"),
    [
        ("resnet18+gem", 512),
        ("resnet18.conv4+netvlad64", 64 * 256),
        ("resnet50.conv4+crn64", 64 * 1024),
        ("resnet50+gem+fc2048", 2048),
        ("vgg16+netvlad16", 16 * 512),
        ("tiny+max", 32),
    ],
)
def test_descriptor_dim_without_forward(spec: str, dim: int) -> None:
    model = create_model(spec)
    assert model.descriptor_dim == dim
    assert model.spec == spec


def test_model_input_validation() -> None:
    model = create_model("tiny+avg").eval()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\), got \(3, 64, 64\)"):
        model(torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match=r"got \(1, 1, 64, 64\)"):
        model(torch.zeros(1, 1, 64, 64))


# -- aggregators against hand-derived answers --------------------------------------------------
def _map(vectors: list[list[float]]) -> torch.Tensor:
    """A (1, C, 1, N) feature map whose N locations are the given C-vectors."""
    return torch.tensor(vectors, dtype=torch.float32).T[None, :, None, :]


def test_pooling_normalises_each_location_first() -> None:
    x = _map([[3.0, 4.0], [0.0, 2.0]])  # unit vectors (0.6, 0.8) and (0, 1)
    avg = AGGREGATORS.get("avg")(2, None)
    mx = AGGREGATORS.get("max")(2, None)
    torch.testing.assert_close(avg(x), torch.tensor([[0.3, 0.9]]))
    torch.testing.assert_close(mx(x), torch.tensor([[0.6, 1.0]]))


def test_gem_values() -> None:
    x = _map([[3.0, 4.0], [0.0, 2.0]])
    g = GeM(2)
    assert g.p.item() == 3.0 and g.eps == 1e-6
    expected = torch.tensor([[((0.6**3 + 1e-18) / 2) ** (1 / 3), ((0.8**3 + 1.0) / 2) ** (1 / 3)]])
    torch.testing.assert_close(g(x), expected)
    # p = 1 is the mean of the clamped map.
    y = torch.rand(2, 4, 3, 3)
    torch.testing.assert_close(gem(y, 1.0), y.clamp(min=1e-6).mean(dim=(-2, -1)))


def test_netvlad_hard_assignment_matches_hand_computation() -> None:
    nv = NetVLAD(2, clusters=2)
    with torch.no_grad():
        nv.centroids.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        nv.conv.weight.copy_(100.0 * torch.eye(2)[:, :, None, None])  # ~hard assignment
    s = 1 / math.sqrt(2)
    x = _map([[1.0, 0.0], [2.0, 1.9], [0.0, 5.0]])
    out = nv(x)
    # Unit locations: a=(1,0) sits on c0 and c=(0,1) on c1 (zero residuals, assignment
    # ~1); b ~ (0.725, 0.689) is split: sigmoid(100*(b0-b1)) to c0, the rest to c1.
    b = F.normalize(torch.tensor([2.0, 1.9]), dim=0)
    w = torch.sigmoid(100.0 * (b[0] - b[1]))
    v0 = w * (b - torch.tensor([1.0, 0.0]))
    v1 = (1 - w) * (b - torch.tensor([0.0, 1.0]))
    expected = torch.cat([F.normalize(v0, dim=0), F.normalize(v1, dim=0)]) * s
    torch.testing.assert_close(out[0], expected, atol=1e-5, rtol=1e-5)
    assert out.shape == (1, 4) and nv.out_dim == 4


def test_crn_handles_odd_feature_maps_and_starts_as_uniform_mask_scale() -> None:
    crn = CRN(8, clusters=4)
    assert not crn.crn.acc_w.weight.requires_grad
    torch.testing.assert_close(crn.crn.acc_w.weight, torch.ones(1, 84, 1, 1))
    out = crn(torch.randn(2, 8, 9, 7))  # odd sizes: the reference's x2 upsample would fail
    assert out.shape == (2, 32)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))


def test_aggregator_rejects_wrong_channels() -> None:
    with pytest.raises(ValueError, match=r"expects a \(B, 8, H, W\) feature map, got shape"):
        GeM(8)(torch.zeros(1, 4, 2, 2))


# -- freezing -----------------------------------------------------------------------------
def test_freeze_early_layers_resnet_freezes_before_layer3() -> None:
    model = create_model("resnet18+gem")
    assert all(p.requires_grad for p in model.parameters())  # nothing frozen by default
    frozen = freeze_early_layers(model)
    assert frozen == ["0", "1", "2", "3", "4", "5"]  # conv1, bn1, relu, maxpool, layer1, layer2
    for name, p in model.backbone.named_parameters():
        assert p.requires_grad == (int(name.split(".")[0]) >= 6), name
    assert all(p.requires_grad for p in model.aggregator.parameters())


def test_freeze_early_layers_vgg16_keeps_last_five() -> None:
    model = create_model("vgg16+gem")
    freeze_early_layers(model.backbone)
    n = len(model.backbone)
    assert n == 29
    for name, p in model.backbone.named_parameters():
        assert p.requires_grad == (int(name.split(".")[0]) >= n - 5), name


def test_freeze_early_layers_efficientnet_keeps_blocks_from_5() -> None:
    model = create_model("efficientnet_b0+gem")
    assert freeze_early_layers(model) == ["0.0", "0.1", "0.2", "0.3", "0.4"]
    for name, p in model.backbone.named_parameters():
        assert p.requires_grad == (int(name.split(".")[1]) >= 5), name


def test_freeze_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="GeoLocalizationModel or a Backbone"):
        freeze_early_layers(torch.nn.Linear(2, 2))  # type: ignore[arg-type]
