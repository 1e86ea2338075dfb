"""Load the checkpoint fixtures through a published entry's converter (shared by the
BoQ / MixVPR tests): strict loading, the authors' file wrappings, and the fixture match."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.models.fixture_weights import (
    assert_matches_fixture,
    fixture_input_for,
    fixture_state_dict,
    wrap_as_published,
)
from vgloc.models import GeoLocalizationModel
from vgloc.models.checkpoints import extract_state_dict, read_weights_file
from vgloc.registry import PUBLISHED_MODELS

__all__ = ["check_fixture_output", "check_published_wrappings"]


def check_fixture_output(published: str, fixture: str, rule: str, model: GeoLocalizationModel) -> None:
    """Convert the rule's authors' state dict, load it strictly into ``model``, run the
    fixture input and compare with the authors' output (README tolerance)."""
    entry = PUBLISHED_MODELS.get(published)
    model.load_state_dict(entry.convert_keys(fixture_state_dict(fixture, rule)), strict=True)
    model.eval()
    with torch.no_grad():
        out = model(fixture_input_for(fixture))
    assert out.shape[1] == entry.descriptor_dim == model.descriptor_dim
    assert_matches_fixture(out, fixture, rule)


def check_published_wrappings(
    published: str, fixture: str, tmp_path: Path, model: GeoLocalizationModel
) -> None:
    """Every way the authors' file may come (plain, container + ``module.``, safetensors)
    unwraps, converts and loads strictly into ``model``, with the plain state dict's tensors."""
    entry = PUBLISHED_MODELS.get(published)
    sd = fixture_state_dict(fixture, "B")
    # The plain state dict is what check_fixture_output loads.
    files = {"container.pth": wrap_as_published(sd, container="model_state_dict", prefix="module.")}
    paths = []
    for name, obj in files.items():
        torch.save(obj, tmp_path / name)
        paths.append(tmp_path / name)
    paths.append(wrap_as_published(sd, prefix="module.", safetensors_path=tmp_path / "w.safetensors"))
    expected = entry.convert_keys(sd)
    for path in paths:
        converted = entry.convert_keys(extract_state_dict(read_weights_file(path)))
        assert sorted(converted) == sorted(expected), path.name  # safetensors sorts its keys
        model.load_state_dict(converted, strict=True)
        got = model.state_dict()
        for key, value in expected.items():
            assert torch.equal(got[key], value), (path.name, key)
