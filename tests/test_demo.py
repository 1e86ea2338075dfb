"""`vgloc demo` and `vgloc synth` end to end on the tiny synthetic city."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vgloc.cli import main
from vgloc.demo import cache_dir, run_demo


def test_demo_writes_index_results_and_report(tiny_city_root: Path, tmp_path: Path) -> None:
    demo = run_demo(
        tmp_path / "run", size="tiny", model="tiny+gem", dataset_dir=tiny_city_root, progress=False
    )
    assert set(demo.result.domains) == {"queries", "queries_night", "queries_fog", "queries_occluded"}
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["model_spec"] == "tiny+gem"
    html = demo.report.read_text()
    # the report shows the recall table, one map per domain and example retrievals marked right/wrong
    assert html.count("<h2>") == 5 and html.count("data:image/png;base64,") == 4
    assert "class='ok'" in html or "class='bad'" in html
    assert (demo.index / "index.faiss").is_file()


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
