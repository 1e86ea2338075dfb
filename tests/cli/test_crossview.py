"""``vgloc crossview train|eval|index|locate`` and the issue's spellings (``vgloc train crossview``,
``vgloc eval crossview``, ``vgloc locate --index AERIAL``) end to end on a tiny city."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from vgloc.cli import build_parser, expand_aliases, main
from vgloc.cli.crossview import AERIAL_INDEX_FILE, is_aerial_index, parse_loss_arg
from vgloc.data.synthetic import generate_city


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_city(
        tmp_path_factory.mktemp("xv-cli") / "city",
        "tiny",
        0,
        image_size=(48, 64),
        aerial_size=32,
        progress=False,
    )


def test_train_then_eval(city: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    rc = main(
        ["crossview", "train", "--dataset", str(city), "--model", "tiny+gem+fc16", "--loss", "triplet",
         "--loss-arg", "margin=0.3", "--loss-arg", "negatives=all", "--steps", "2", "--batch-size", "4",
         "--ground-size", "24,32", "--aerial-size", "16", "--rotation-range", "90", "--orientation-head",
         "--run-dir", str(run), "--log-level", "warning"]
    )  # fmt: skip
    assert rc == 0 and (run / "crossview.pt").is_file()
    assert "checkpoint:" in capsys.readouterr().out
    out = tmp_path / "eval"
    rc = main(
        ["crossview", "eval", "--dataset", str(city), "--checkpoint", str(run / "crossview.pt"),
         "--samples", "2", "--fusion", "mean", "--out", str(out), "--run-dir", str(tmp_path / "log")]
    )  # fmt: skip
    text = capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    assert rc == 0 and "R@1" in text and "median orientation error" in text
    assert res["fusion"] == "mean" and res["train_settings"]["loss_args"] == {
        "margin": 0.3,
        "negatives": "all",
    }


def test_errors(city: Path, tmp_path: Path) -> None:
    assert (
        main(["crossview", "train", "--dataset", str(city), "--loss", "dbl", "--run-dir", str(tmp_path)]) == 1
    )
    assert main(["crossview", "eval", "--dataset", str(city), "--checkpoint", str(tmp_path / "none.pt")]) == 1
    with pytest.raises(SystemExit):
        main(["crossview", "train", "--dataset", str(city), "--rotation-range", "500"])


def test_parse_loss_arg() -> None:
    assert parse_loss_arg("alpha=10") == ("alpha", 10.0)
    assert parse_loss_arg("negatives = all") == ("negatives", "all")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_loss_arg("alpha")


def test_index_then_locate(city: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    args = ["--model", "tiny+gem+fc16", "--steps", "1", "--batch-size", "3", "--ground-size", "24,32"]
    assert (
        main(
            [
                "crossview",
                "train",
                "--dataset",
                str(city),
                *args,
                "--aerial-size",
                "16",
                "--run-dir",
                str(run),
            ]
        )
        == 0
    )
    ckpt = str(run / "crossview.pt")
    assert main(["crossview", "index", "--dataset", str(city), "--checkpoint", ckpt, "--samples", "2",
                 "--out", str(tmp_path / "idx"), "--run-dir", str(tmp_path / "log")]) == 0  # fmt: skip
    photo = sorted((city / "images" / "test" / "queries").iterdir())[0]
    capsys.readouterr()
    assert main(["crossview", "locate", "--index", str(tmp_path / "idx"), str(photo), "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["image"] == str(photo) and 0 <= row["heading_deg"] < 360 and 0 < row["confidence"] <= 1


def test_issue_spellings_parse() -> None:
    parser = build_parser()
    via_train = parser.parse_args(["train", "crossview", "--dataset", "d", "--loss", "infonce"])
    direct = parser.parse_args(["crossview", "train", "--dataset", "d", "--loss", "infonce"])
    assert via_train.func is direct.func and via_train.loss == "infonce" and via_train.writes_results
    assert {k: v for k, v in vars(via_train).items() if k not in ("command", "method", "action")} == {
        k: v for k, v in vars(direct).items() if k not in ("command", "method", "action")
    }
    argv = ["eval", "crossview", "--dataset", "d", "--checkpoint", "c.pt"]
    assert expand_aliases(argv) == ["crossview", "eval", *argv[2:]]
    assert expand_aliases(["eval", "--dataset", "d"]) == ["eval", "--dataset", "d"]
    assert (
        parser.parse_args(expand_aliases(argv)).func
        is parser.parse_args(["crossview", *argv[:1], *argv[2:]]).func
    )
    assert "vgloc eval crossview = vgloc crossview eval" in parser.format_help()


def test_is_aerial_index(tmp_path: Path) -> None:
    from vgloc.crossview.locate import INDEX_FILE

    assert AERIAL_INDEX_FILE == INDEX_FILE
    assert not is_aerial_index(tmp_path)
    (tmp_path / INDEX_FILE).write_bytes(b"")
    assert is_aerial_index(tmp_path) and is_aerial_index(tmp_path / INDEX_FILE)


def test_issue_spellings_end_to_end(city: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, idx, out = tmp_path / "run", tmp_path / "idx", tmp_path / "eval"
    assert main(["train", "crossview", "--dataset", str(city), "--model", "tiny+gem+fc16", "--steps", "1",
                 "--batch-size", "3", "--ground-size", "24,32", "--aerial-size", "16", "--run-dir", str(run),
                 "--log-level", "warning"]) == 0  # fmt: skip
    ckpt = str(run / "crossview.pt")
    assert main(["eval", "crossview", "--dataset", str(city), "--checkpoint", ckpt, "--out", str(out),
                 "--run-dir", str(tmp_path / "log")]) == 0  # fmt: skip
    assert json.loads((out / "results.json").read_text())["checkpoint"] == ckpt
    assert main(["crossview", "index", "--dataset", str(city), "--checkpoint", ckpt, "--samples", "2",
                 "--out", str(idx), "--run-dir", str(tmp_path / "log")]) == 0  # fmt: skip
    photos = sorted((city / "images" / "test" / "queries").iterdir())[:2]
    capsys.readouterr()
    assert main(["locate", "--index", str(idx), *map(str, photos)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "image,lat,lon,heading_deg,confidence" and len(lines) == 3
    image, *_, heading, conf = lines[1].split(",")
    assert image == str(photos[0]) and 0 <= float(heading) < 360 and 0 < float(conf) <= 1
    assert main(["crossview", "locate", "--index", str(idx), *map(str, photos)]) == 0
    assert capsys.readouterr().out.strip().splitlines() == lines  # the same search
    assert main(["locate", "--index", str(idx / "missing"), str(photos[0])]) == 1  # not aerial: as before


def test_pair_classifier_arch(city: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    base = ["--dataset", str(city), "--model", "tiny+gem+fc16", "--steps", "1", "--batch-size", "3",
            "--ground-size", "24,32", "--aerial-size", "16", "--log-level", "warning"]  # fmt: skip
    assert main(["crossview", "train", *base, "--arch", "hybrid", "--run-dir", str(run)]) == 0
    ckpt = run / "crossview.pt"
    assert main(["eval", "crossview", "--dataset", str(city), "--checkpoint", str(ckpt), "--out", str(tmp_path),
                 "--run-dir", str(tmp_path / "log")]) == 0  # fmt: skip
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["arch"] == "hybrid" and res["train_settings"]["loss"] == "bce"  # the pair classifiers' default
    capsys.readouterr()
    # An aerial index needs embeddings; the head needs the embedding network; the loss must be bce.
    assert main(["crossview", "index", "--dataset", str(city), "--checkpoint", str(ckpt),
                 "--out", str(tmp_path / "idx"), "--run-dir", str(tmp_path / "log")]) == 1  # fmt: skip
    for extra in (["--orientation-head"], ["--loss", "infonce"]):
        bad = [
            "crossview",
            "train",
            *base,
            "--arch",
            "classification",
            *extra,
            "--run-dir",
            str(tmp_path / "x"),
        ]
        assert main(bad) == 1
