"""`vgloc demo` and `vgloc synth` end to end on the tiny synthetic city."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from vgloc.cli import main
from vgloc.demo import DemoResult, cache_dir, run_demo

DOMAINS = {"queries", "queries_night", "queries_fog", "queries_occluded"}
#: One short epoch: the budget stops training after the first (which always runs).
QUICK_TRAINING = ["cosplace.iterations_per_epoch=2", "schedule.epochs=1"]


@pytest.fixture(scope="module")
def trained_demo(tiny_city_root: Path, tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    """The demo with a one-epoch training run on the tiny city."""
    out = tmp_path_factory.mktemp("demo") / "run"
    return run_demo(
        out,
        size="tiny",
        model="tiny+gem",
        dataset_dir=tiny_city_root,
        progress=False,
        train_minutes=0.01,
        train_overrides=QUICK_TRAINING,
    )


def test_demo_trains_and_shows_both_models_side_by_side(trained_demo: DemoResult) -> None:
    demo = trained_demo
    assert demo.trained is not None and demo.training is not None, demo.note
    assert demo.training.checkpoint is not None and demo.training.checkpoint.is_file()
    assert demo.training.epochs == 1 and demo.training.best_epoch == 1
    # trained on this city from random weights, like the untrained row: the run's own config says so
    config = yaml.safe_load((demo.training.run_dir / "config.yaml").read_text())
    assert config["data"]["root"] == str(demo.dataset)
    assert config["model"] == {**config["model"], "spec": "tiny+gem", "pretrained": False}
    assert demo.trained.split == demo.result.split == "test"
    assert set(demo.trained.domains) == set(demo.result.domains) == DOMAINS
    # the trained weights are not the random ones: the similarities of the same queries change
    assert not np.allclose(
        demo.trained.domains["queries"].similarities, demo.result.domains["queries"].similarities
    )
    html = demo.report.read_text()
    assert html.count("<td class='name'>chance</td>") == 4
    assert html.count("<td class='name'>untrained (random init)</td>") == 4
    assert html.count("<td class='name'>trained</td>") == 4
    assert html.count("data:image/png;base64,") == 8  # per domain: both models' maps
    for sub in ("untrained", "trained"):
        assert f"href='{sub}/report.html'" in html
        assert (demo.report.parent / sub / "report.html").is_file()
        assert json.loads((demo.report.parent / sub / "results.json").read_text())["model_spec"] == "tiny+gem"
    # each full report says which weights it evaluated
    trained_report = (demo.report.parent / "trained" / "report.html").read_text()
    assert f"trained weights from {demo.training.checkpoint}" in trained_report
    assert "random initialisation" in (demo.report.parent / "untrained" / "report.html").read_text()
    table = demo.table()
    assert table.count("| trained |") == 4 and table.count("| chance |") == 4


def test_demo_summary_has_every_row_and_the_training_run(trained_demo: DemoResult) -> None:
    summary = json.loads((trained_demo.report.parent / "summary.json").read_text())
    rows = {(r["domain"], r["weights"]): r for r in summary["rows"]}
    assert len(rows) == 12
    assert trained_demo.trained is not None
    for name, d in trained_demo.trained.domains.items():
        assert rows[(name, "trained")]["recall"]["1"] == pytest.approx(d.recalls[1])
    assert summary["training"]["epochs"] == 1 and summary["note"] == ""
    assert Path(summary["training"]["checkpoint"]).is_file()


def test_demo_without_training_shows_the_untrained_model_and_says_so(
    tiny_city_root: Path, tmp_path: Path
) -> None:
    demo = run_demo(
        tmp_path / "run",
        size="tiny",
        model="tiny+gem",
        dataset_dir=tiny_city_root,
        progress=False,
        train_minutes=0,
    )
    assert set(demo.result.domains) == DOMAINS
    assert demo.trained is None and demo.training is None and "skipped" in demo.note
    results = json.loads((tmp_path / "run" / "untrained" / "results.json").read_text())
    assert results["model_spec"] == "tiny+gem"
    html = demo.report.read_text()
    # the recall table, one map per domain, the reason there is no trained row
    assert html.count("<h2>") == 5 and html.count("data:image/png;base64,") == 4
    assert "<td class='name'>trained</td>" not in html and "skipped" in html
    assert (demo.index / "index.faiss").is_file()
    # the untrained model's own full report: example retrievals marked right/wrong
    full = (tmp_path / "run" / "untrained" / "report.html").read_text()
    assert "class='ok'" in full or "class='bad'" in full


def test_demo_still_shows_the_baseline_when_training_fails(
    tiny_city_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vgloc.training

    def broken_train(*args: object, **kwargs: object) -> None:
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(vgloc.training, "train", broken_train)
    demo = run_demo(
        tmp_path / "run", size="tiny", model="tiny+gem", dataset_dir=tiny_city_root, progress=False
    )
    assert demo.trained is None and demo.training is not None and demo.training.checkpoint is None
    assert "out of memory (simulated)" in demo.note
    assert "out of memory (simulated)" in demo.report.read_text()
    assert "untrained (random init)" in demo.table() and "| trained |" not in demo.table()


def test_demo_refuses_a_negative_budget_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="train_minutes"):
        run_demo(tmp_path / "run", dataset_dir=tmp_path / "city", train_minutes=-1)
    assert not (tmp_path / "city").exists() and not (tmp_path / "run").exists()


def test_synth_command_writes_the_standard_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["synth", "--out", str(tmp_path / "city"), "--size", "tiny", "--seed", "3", "--no-progress"])
        == 0
    )
    assert "tiny" in capsys.readouterr().out
    names = list((tmp_path / "city" / "images" / "val" / "database").glob("@*@.jpg"))
    assert names and (tmp_path / "city" / "city.json").is_file()


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VGLOC_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("VGLOC_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "vgloc"
