"""``vgloc eval`` options for world-scale data: km metrics by name and the kde kernel in km."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import vgloc.api
from vgloc.cli import main
from vgloc.evaluation.metrics import DEFAULT_METRICS
from vgloc.predict import DEFAULT_KDE, WORLD_KDE, KDEParams


class _StopError(Exception):
    pass


def _evaluate_kwargs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *extra: str) -> dict[str, Any]:
    """The keyword arguments ``vgloc eval`` passes to ``vgloc.api.evaluate`` (which is not run)."""
    seen: dict[str, Any] = {}

    def fake(*args: Any, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise _StopError

    monkeypatch.setattr(vgloc.api, "evaluate", fake)
    argv = ["eval", "--database", "db.csv", "--queries", "q.csv", "--model", "tiny+gem"]
    with pytest.raises(_StopError):
        main([*argv, "--run-dir", str(tmp_path / "run"), "--log-level", "warning", *extra])
    return seen


def test_eval_passes_metrics_and_kde_in_km(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    plain = _evaluate_kwargs(monkeypatch, tmp_path)
    assert plain["metrics"] == DEFAULT_METRICS and plain["kde"] is DEFAULT_KDE  # world data: chosen later
    world = _evaluate_kwargs(
        monkeypatch, tmp_path, "--method", "kde", "--kde-sigma-km", "16", "--metrics", "recall, accuracy_km"
    )
    assert world["metrics"] == ("recall", "accuracy_km")
    assert world["kde"] == KDEParams(k=WORLD_KDE.k, m=WORLD_KDE.m, sigma_m=16_000.0)
    assert _evaluate_kwargs(monkeypatch, tmp_path, "--kde-k", "5")["kde"] == KDEParams(
        k=5, m=10.0, sigma_m=4_000.0
    )
