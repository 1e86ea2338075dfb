"""Records of checked exports by checkpoint file: keys, staleness, pruning."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")

from vgloc.models import create_model, engines
from vgloc.models.checkpoint_exports import checkpoint_key, export_for_checkpoint, remember_checkpoint_export


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VGLOC_CACHE", str(tmp_path))
    return tmp_path


def test_the_key_follows_the_file_and_how_it_was_loaded() -> None:
    a = checkpoint_key("0" * 64, "spec 'tiny+gem'")
    assert a == checkpoint_key("0" * 64, "spec 'tiny+gem'")
    assert a != checkpoint_key("1" * 64, "spec 'tiny+gem'")
    assert a != checkpoint_key("0" * 64, "spec 'tiny+avg'")


def test_only_a_checked_cached_export_is_recorded_and_found(cache: Path) -> None:
    torch.manual_seed(0)
    model = create_model("tiny+gem").eval()
    key = checkpoint_key("2" * 64, "test")
    # No engine yet: nothing to record.
    assert not remember_checkpoint_export(key, model, spec="tiny+gem", needs_data_init=False)
    engine = engines.select_engine(model, "auto", torch.device("cpu"), None, torch.rand(1, 3, 32, 48))
    assert engine is not None and engine.cache_path.is_file()
    assert remember_checkpoint_export(key, model, spec="tiny+gem", needs_data_init=False)
    facts = export_for_checkpoint(key)
    assert facts is not None
    assert facts["export"] == engine.cache_path and facts["descriptor_dim"] == model.descriptor_dim
    # Weights changed in place since: the engine no longer matches, nothing recorded.
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert not remember_checkpoint_export(
        checkpoint_key("3" * 64, "test"), model, spec="x", needs_data_init=False
    )
    # The export evicted: the record is void, and pruning removes it.
    engine.cache_path.unlink()
    assert export_for_checkpoint(key) is None
    engines._prune(engine.cache_path.parent, keep=engines.CACHE_KEEP)
    assert not list(engine.cache_path.parent.glob("checkpoint-*.json"))
