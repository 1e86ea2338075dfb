"""The run cache of the study scripts (benchmarks/_study.py): its key and its reuse of finished runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import _study as st  # benchmarks/ is not a package: imported from its path


def test_key_ignores_order_paths_and_logging_but_not_values() -> None:
    a = ["optim.name=adam", "optim.lr=0.001", "data.root=/x", "runtime.progress=false"]
    b = ["runtime.progress=true", "optim.lr=0.001", "data.root=/elsewhere", "optim.name=adam"]
    assert st.run_key("cosplace", "medium-seed0", a) == st.run_key("cosplace", "medium-seed0", b)
    assert st.run_key("cosplace", "medium-seed0", a) != st.run_key(
        "cosplace", "medium-seed0", [*a, "optim.lr=0.01"]
    )
    assert st.run_key("cosplace", "medium-seed0", a) != st.run_key("triplet", "medium-seed0", a)
    assert st.run_key("cosplace", "medium-seed0", a) != st.run_key("cosplace", "medium-seed1", a)


def test_key_counts_a_repeated_setting_with_its_last_value() -> None:
    base = st.base_settings(st.Budget())
    # A study that restates a base value trains the same model, so it must hit the same cache entry.
    assert st.run_key("cosplace", "c", [*base, "optim.lr=0.001"]) == st.run_key("cosplace", "c", base)
    assert st.run_key("cosplace", "c", [*base, "optim.lr=0.002", "optim.lr=0.001"]) == st.run_key(
        "cosplace", "c", base
    )


def test_budget_changes_the_key() -> None:
    one = st.base_settings(st.Budget(epochs=2, iterations=10))
    two = st.base_settings(st.Budget(epochs=2, iterations=20))
    assert st.run_key("cosplace", "c", one) != st.run_key("cosplace", "c", two)
    assert st.Budget(epochs=3, iterations=7).steps == 21


def test_bad_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="key=value"):
        st.effective_settings(["optim.lr"])


def test_finished_run_is_reused_without_training(tmp_path: Path) -> None:
    settings = ["optim.lr=0.5"]  # would fail to train on a missing root: reuse must not train
    key = st.run_key("cosplace", "c", settings)
    record = {"key": key, "global_step": 7, "train_seconds": 1.0, "history": []}
    (tmp_path / "runs" / key).mkdir(parents=True)
    (tmp_path / "runs" / key / "study_run.json").write_text(json.dumps(record))
    assert st._train_one("cosplace", "c", str(tmp_path / "no-city"), settings, str(tmp_path)) == record


def test_best_val_picks_the_highest_epoch() -> None:
    history = [{"epoch": 0, "val/R@1": 5.0}, {"epoch": 1, "val/R@1": 9.0}, {"epoch": 2, "val/R@1": 8.0}]
    assert st.best_val({"history": history}) == (1, 9.0)
