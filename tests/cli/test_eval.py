"""``vgloc eval`` on a benchmark split, on any geotagged folders, and with a built index."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from vgloc.cli import main

SMALL = ["--image-size", "96,128", "--batch-size", "8", "--log-level", "warning"]


def test_eval_own_photos_as_database_and_queries(lund_dir: Path, tmp_path: Path, capsys) -> None:
    frames = sorted(lund_dir.glob("*.jpg"))
    for i, f in enumerate(frames):
        folder = tmp_path / ("db" if i % 2 == 0 else "walk")
        folder.mkdir(exist_ok=True)
        shutil.copy(f, folder / f.name)
    out = tmp_path / "out"
    code = main(
        [
            "eval",
            "--database",
            str(tmp_path / "db"),
            "--queries",
            str(tmp_path / "walk"),
            "--model",
            "tiny+gem",
            "--recall",
            "1,5",
            "--out",
            str(out),
            "--run-dir",
            str(tmp_path / "run"),
            *SMALL,
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| walk |" in printed and "predictions.csv" in printed
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == len(frames) // 2 and all(r["domain"] == "walk" for r in rows)
    assert (out / "report.html").is_file() and (out / "results.json").is_file()


@pytest.mark.parametrize("quiet", [True, False])
def test_no_progress_silences_the_validation_of_folders(
    tiny_city_root: Path, tmp_path: Path, capsys, quiet: bool
) -> None:
    test = tiny_city_root / "images" / "test"
    argv = ["eval", "--database", str(test / "database"), "--queries", str(test / "queries")]
    argv += ["--model", "tiny+gem", "--no-report", "--run-dir", str(tmp_path / "run"), *SMALL]
    assert main(argv + (["--no-progress"] if quiet else [])) == 0
    assert ("validating images" in capsys.readouterr().err) is not quiet


def test_eval_reuses_an_index_and_refuses_bad_combinations(
    tiny_city_root: Path, tmp_path: Path, capsys
) -> None:
    from vgloc.data import load_split

    run = ["--run-dir", str(tmp_path / "run")]
    db = load_split(tiny_city_root, "test").database
    assert (
        main(
            [
                "index",
                "build",
                "--images",
                str(db.paths[0].parent),
                "--model",
                "tiny+gem",
                "--out",
                str(tmp_path / "idx"),
                *SMALL,
                *run,
            ]
        )
        == 0
    )
    code = main(
        [
            "eval",
            "--dataset",
            str(tiny_city_root),
            "--index",
            str(tmp_path / "idx"),
            "--no-report",
            "--out",
            str(tmp_path / "out"),
            *SMALL,
            *run,
        ]
    )
    assert code == 0
    assert "tiny+gem" in capsys.readouterr().out
    assert not (tmp_path / "out" / "report.html").exists()
    assert (tmp_path / "out" / "predictions.csv").is_file()
    for argv, message in [
        (["eval", "--model", "tiny+gem"], "give --dataset ROOT, or both --database and --queries"),
        (["eval", "--dataset", str(tiny_city_root)], "give --model SPEC"),
        (
            ["eval", "--dataset", str(tiny_city_root), "--database", "x", "--model", "tiny+gem"],
            "cannot be combined",
        ),
    ]:
        assert main(argv + run) != 0
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("alias", ["--resize", "--image-size"])
def test_eval_options_keep_their_documented_aliases(alias: str) -> None:
    from vgloc.cli import build_parser

    args = build_parser().parse_args(["eval", "--dataset", "d", "--model", "m", alias, "96,128"])
    assert args.image_size == (96, 128)
