"""``vgloc demo`` options: the training budget, --no-train, and what the console shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from vgloc.cli import build_parser, main
from vgloc.demo import DEFAULT_DEMO_MODEL, DEFAULT_TRAIN_MINUTES


def test_defaults_match_the_library_and_no_train_excludes_a_budget() -> None:
    args = build_parser().parse_args(["demo"])
    assert args.model == DEFAULT_DEMO_MODEL and args.train_minutes == DEFAULT_TRAIN_MINUTES
    assert not args.no_train
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--no-train", "--train-minutes", "2"])


def test_a_negative_budget_is_an_error_before_any_work(tmp_path: Path) -> None:
    code = main(
        [
            "demo",
            "--train-minutes",
            "-1",
            "--dataset",
            str(tmp_path / "city"),
            "--run-dir",
            str(tmp_path / "r"),
        ]
    )
    assert code != 0 and not (tmp_path / "city").exists()


def test_no_train_prints_the_untrained_rows_and_why(
    tiny_city_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "demo",
            "--size",
            "tiny",
            "--dataset",
            str(tiny_city_root),
            "--no-train",
            "--run-dir",
            str(tmp_path / "run"),
            "--no-progress",
            "--log-level",
            "warning",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "only the untrained model: training skipped" in out
    assert out.count("| untrained (random init) |") == 4 and out.count("| chance |") == 4
    assert "| trained |" not in out
    assert (tmp_path / "run" / "report.html").is_file()
