"""ResNet-34 and EfficientNet-B1..B7 backbones: torchvision layout, channels, freezing."""

from __future__ import annotations

import pytest
import torch
import torchvision

from tests.models._train_check import check_trains
from vgloc.models.backbones import build_backbone


@pytest.mark.parametrize("arch", ["resnet34", *[f"efficientnet_b{i}" for i in (1, 3)]])
def test_backbone_matches_torchvision_features(arch: str) -> None:
    torch.manual_seed(0)
    net = getattr(torchvision.models, arch)(weights=None).eval()
    bb = build_backbone(arch).eval()
    # Same module objects by state-dict key layout: load torchvision's weights, compare.
    ref_sd = {k: v for k, v in net.state_dict().items() if not k.startswith(("fc.", "classifier."))}
    ours = bb.state_dict()
    assert len(ours) == len(ref_sd)
    bb.load_state_dict(dict(zip(ours, ref_sd.values(), strict=True)), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        body = net.features if arch.startswith("eff") else torch.nn.Sequential(*list(net.children())[:-2])
        expected = body(x)
        got = bb(x)
    assert got.shape[1] == bb.out_channels
    torch.testing.assert_close(got, expected)


def test_efficientnet_freezes_cosplace_blocks() -> None:
    bb = build_backbone("efficientnet_b2")
    assert bb.freeze_early_layers() == [f"0.{i}" for i in range(5)]
    assert not any(p.requires_grad for p in bb[0][4].parameters())
    assert all(p.requires_grad for p in bb[0][5].parameters())


def test_resnet34_conv4_trains() -> None:
    check_trains("resnet34.conv4+gemfixed3", size=32)
