"""The demo's training run: budget checked up front, failures reported instead of raised."""

from __future__ import annotations

from pathlib import Path

import pytest

from vgloc.demo_training import DemoTraining, train_demo_model


@pytest.mark.parametrize("minutes", [0, -1.0, float("nan")])
def test_a_budget_that_is_not_positive_is_refused(tmp_path: Path, minutes: float) -> None:
    with pytest.raises(ValueError, match="budget"):
        train_demo_model(tmp_path, tmp_path / "run", model="tiny+gem", minutes=minutes)
    assert not (tmp_path / "run").exists()


def test_a_failed_run_returns_the_reason_instead_of_raising(tmp_path: Path) -> None:
    # No images/train here: the configuration or the data loading refuses it.
    out = train_demo_model(tmp_path / "no-city", tmp_path / "run", model="tiny+gem", minutes=0.1)
    assert out.checkpoint is None
    assert out.note.startswith("training failed") and "no-city" in out.note
    assert out.describe().startswith("no trained model: training failed")


def test_describe_says_what_was_trained_and_how_it_was_chosen(tmp_path: Path) -> None:
    run = DemoTraining(
        checkpoint=tmp_path / "best_model.pt",
        model_spec="tiny+gem",
        run_dir=tmp_path,
        minutes=1.5,
        seconds=88.0,
        epochs=4,
        best_epoch=3,
        select_metric="R@1",
        best_val=31.25,
        stopped_by_time=True,
    )
    line = run.describe()
    assert "4 epoch(s) in 88 s" in line and "budget 1.5 min, reached" in line
    assert "epoch 3 selected by validation R@1 = 31.2 %" in line
