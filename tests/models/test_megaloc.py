"""MegaLoc: the authors' safetensors checkpoint layout and forward pass (fixtures)."""

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
from vgloc.models.megaloc import MegaLocAggregator
from vgloc.models.model import GeoLocalizationModel
from vgloc.registry import PUBLISHED_MODELS

FIXTURE = "megaloc_8448"


@pytest.mark.slow
@pytest.mark.parametrize("rule", RULES)
def test_authors_checkpoint_reproduces_fixture(rule: str, tmp_path: Path) -> None:
    entry = PUBLISHED_MODELS.get("megaloc")
    model = GeoLocalizationModel(entry.spec).eval()
    assert model.descriptor_dim == entry.descriptor_dim == 8448
    # MegaLoc publishes model.safetensors (a plain state dict).
    load_published_fixture(model, entry.convert_keys, FIXTURE, rule, tmp_path / entry.filename)
    with torch.no_grad():
        assert_matches_fixture(model(fixture_input_for(FIXTURE)), FIXTURE, rule)


def test_converter_maps_every_author_key_onto_the_spec() -> None:
    entry = PUBLISHED_MODELS.get("megaloc")
    assert_converter_covers_spec(entry.spec, entry.convert_keys, FIXTURE)
    assert entry.filename.endswith(".safetensors") and entry.preprocessing.image_size == (322, 322)


def test_aggregator_is_salad_256_then_linear() -> None:
    torch.manual_seed(0)
    agg = MegaLocAggregator(48, out_dim=100).eval()
    assert agg.agg.out_dim == 64 * 256 + 256 and agg.out_dim == 100
    fmap, cls = torch.randn(2, 48, 9, 9), torch.randn(2, 48)
    with torch.no_grad():
        out = agg((fmap, cls))
        expected = agg.linear(agg.agg((fmap, cls)))
    assert torch.equal(out, expected)
    # The SALAD part is L2-normalised before the projection, as in MegaLoc.
    with torch.no_grad():
        assert torch.allclose(agg.agg((fmap, cls)).norm(dim=1), torch.ones(2), atol=1e-5)
