"""Conv-AP aggregator (GSV-Cities): the authors' computation, spec names, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.models._train_check import check_trains
from vgloc.models import ModelSpec
from vgloc.models.convap import ConvAP


def test_convap_is_conv1x1_then_2x2_average_then_l2() -> None:
    torch.manual_seed(0)
    agg = ConvAP(16, 32)
    x = torch.randn(2, 16, 6, 8)
    # Independent computation: per-channel linear map, then the mean of each 3x4 quadrant.
    y = torch.einsum("oc,bchw->bohw", agg.channel_pool.weight[:, :, 0, 0], x)
    y = y + agg.channel_pool.bias[None, :, None, None]
    quads = y.unflatten(2, (2, 3)).unflatten(4, (2, 4)).mean(dim=(3, 5))  # (B, 8, 2, 2)
    expected = F.normalize(quads.flatten(1), dim=1)
    torch.testing.assert_close(agg(x), expected)
    assert list(agg.state_dict()) == ["channel_pool.weight", "channel_pool.bias"]


def test_convap_spec_and_errors() -> None:
    assert str(ModelSpec.parse("resnet50.conv4+convap")) == "resnet50.conv4+convap2048"
    with pytest.raises(ValueError, match="multiple of 4"):
        ConvAP(16, 30)


def test_convap_trains_with_frozen_early_layers() -> None:
    check_trains("tiny+convap512", size=32)
