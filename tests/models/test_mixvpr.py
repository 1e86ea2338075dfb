"""MixVPR aggregator and the ``mixvpr`` published entry against the authors' fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.models._published_check import check_fixture_output, check_published_wrappings
from tests.models._train_check import check_trains
from vgloc.models import GeoLocalizationModel
from vgloc.models.mixvpr import MixVPR, convert_mixvpr_keys
from vgloc.registry import PUBLISHED_MODELS


@pytest.fixture(scope="module")
def mixvpr() -> GeoLocalizationModel:
    return GeoLocalizationModel(PUBLISHED_MODELS.get("mixvpr").spec)


@pytest.mark.parametrize("rule", ["A", "B"])
def test_mixvpr_matches_authors_forward(mixvpr: GeoLocalizationModel, rule: str) -> None:
    check_fixture_output("mixvpr", "mixvpr_resnet50_4096", rule, mixvpr)


def test_mixvpr_loads_published_wrappings(tmp_path: Path, mixvpr: GeoLocalizationModel) -> None:
    check_published_wrappings("mixvpr", "mixvpr_resnet50_4096", tmp_path, mixvpr)


def test_mixvpr_entry_and_converter() -> None:
    entry = PUBLISHED_MODELS.get("mixvpr")
    assert entry.spec == "resnet50.conv4+mixvpr4096" and entry.descriptor_dim == 4096
    assert entry.preprocessing.image_size == (320, 320)
    sd = {"backbone.model.layer3.5.bn3.bias": torch.zeros(1), "backbone.model.conv1.weight": torch.zeros(1)}
    assert set(convert_mixvpr_keys(sd)) == {"backbone.6.5.bn3.bias", "backbone.0.weight"}
    with pytest.raises(ValueError, match="layer4 is cropped"):
        convert_mixvpr_keys({"backbone.model.layer4.0.conv1.weight": torch.zeros(1)})


def test_mixvpr_registry_grid_gives_the_input_size() -> None:
    from vgloc.registry import AGGREGATORS, BACKBONES

    grid = AGGREGATORS.metadata("mixvpr")["grid"]
    stride = BACKBONES.metadata("resnet50")["stride"]["conv4"]
    assert (grid[0] * stride, grid[1] * stride) == PUBLISHED_MODELS.get("mixvpr").preprocessing.image_size
    assert MixVPR(8, 64).in_hw == tuple(grid)


def test_mixvpr_shapes_and_input_size_error() -> None:
    agg = MixVPR(64, 512, in_hw=(4, 5)).eval()
    out = agg(torch.randn(3, 64, 4, 5))
    assert out.shape == (3, 512)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    # Mixer layers start near identity (trunc-normal 0.02, zero bias, as the authors).
    assert agg.mix[0].mix[1].bias.abs().max() == 0 and agg.mix[0].mix[1].weight.std() < 0.03
    with pytest.raises(ValueError, match="sized for a 4x5 feature map, got 8x8"):
        agg(torch.randn(1, 64, 8, 8))
    with pytest.raises(ValueError, match="multiple of 4"):
        MixVPR(64, 510)


def test_mixvpr_trains_with_frozen_early_layers() -> None:
    # tiny has stride 8: 160x160 images give the 20x20 map the mixer is sized for.
    check_trains("tiny+mixvpr512", size=160)
