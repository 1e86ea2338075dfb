"""CricaVPR: the authors' checkpoint (fixtures), and batch-independent evaluation by default."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.models.fixture_weights import (
    RULES,
    assert_converter_covers_spec,
    assert_matches_fixture,
    fixture_input_for,
    load_published_fixture,
)
from vgloc.models import freeze_early_layers
from vgloc.models.cricavpr import CricaVPRAggregator, _region_cuts, set_cross_image
from vgloc.models.model import GeoLocalizationModel
from vgloc.registry import PUBLISHED_MODELS

FIXTURE = "cricavpr_10752"


@pytest.mark.slow
@pytest.mark.parametrize("rule", RULES)
def test_authors_checkpoint_reproduces_fixture(rule: str, tmp_path: Path) -> None:
    entry = PUBLISHED_MODELS.get("cricavpr")
    model = GeoLocalizationModel(entry.spec).eval()
    assert model.descriptor_dim == entry.descriptor_dim == 10752
    # CricaVPR.pth: {"model_state_dict": {"module." + key: tensor}} (DataParallel).
    load_published_fixture(
        model,
        entry.convert_keys,
        FIXTURE,
        rule,
        tmp_path / entry.filename,
        container="model_state_dict",
        prefix="module.",
    )
    x = fixture_input_for(FIXTURE)
    set_cross_image(model, True)  # the fixture is the authors' batch-of-2 output
    with torch.no_grad():
        assert_matches_fixture(model(x), FIXTURE, rule)
        set_cross_image(model, False)
        alone = model(x)
        # vgloc's default is each image on its own: the authors' output for a batch of one.
        set_cross_image(model, True)
        first_alone = model(x[:1])
    assert torch.allclose(alone[:1], first_alone, atol=1e-6)


def test_converter_maps_every_author_key_onto_the_spec() -> None:
    entry = PUBLISHED_MODELS.get("cricavpr")
    assert_converter_covers_spec(entry.spec, entry.convert_keys, FIXTURE)
    assert entry.batch_dependent and entry.preprocessing.image_size == (224, 224)


def test_regions_are_the_authors_for_a_16_grid() -> None:
    assert _region_cuts(16, 2) == [0, 8, 16]
    assert _region_cuts(16, 3) == [0, 5, 11, 16]
    assert _region_cuts(23, 3) == [0, 8, 15, 23]


def test_batch_independent_by_default_and_cross_image_on_request() -> None:
    torch.manual_seed(0)
    agg = CricaVPRAggregator(64).eval()
    fmap, cls = torch.randn(3, 64, 16, 16), torch.randn(3, 64)
    with torch.no_grad():
        batch = agg((fmap, cls))
        alone = torch.cat([agg((fmap[i : i + 1], cls[i : i + 1])) for i in range(3)])
        agg.cross_image = True
        crossed = agg((fmap, cls))
        crossed_pair = agg((fmap[:2], cls[:2]))
    assert batch.shape == (3, 14 * 64)
    assert torch.allclose(batch, alone, atol=1e-5)
    # The authors' encoder mixes images: a row changes with the rest of the batch.
    assert not torch.allclose(crossed[0], crossed_pair[0], atol=1e-4)
    with pytest.raises(TypeError, match="CricaVPR"):
        set_cross_image(torch.nn.Linear(2, 2))


def test_freezing_leaves_only_adapters_trainable_in_the_backbone() -> None:
    with torch.device("meta"):
        model = GeoLocalizationModel("dinov2_vitb14_adapter+cricavpr")
    frozen = freeze_early_layers(model)
    assert "pos_embed" in frozen and "blocks.0-11 except .adapter" in frozen
    trainable = [n for n, p in model.backbone.named_parameters() if p.requires_grad]
    assert trainable and all(".adapter." in n for n in trainable)
    assert all(p.requires_grad for p in model.aggregator.parameters())
