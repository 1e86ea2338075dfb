"""``vgloc train``: options with help texts, config resolution, a run and its resumption from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
import yaml

from tests.training._helpers import small_overrides
from vgloc.cli.train import add_train_parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vgloc")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    return parser


def _methods(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    train = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    return dict(next(a for a in train._actions if isinstance(a, argparse._SubParsersAction)).choices)


@pytest.mark.parametrize("method", ["triplet", "cosplace"])
def test_every_option_has_a_help_text(method: str) -> None:
    p = _methods(_parser())[method]
    for action in p._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and len(action.help) > 8, f"`vgloc train {method}` option {action.option_strings}"
    assert p.get_default("writes_results") is False  # the command picks its own run folder


def test_print_config_applies_file_shorthands_and_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text("optim:\n  lr: 0.5\n  name: sgd\nschedule:\n  epochs: 7\n")
    args = _parser().parse_args(
        ["train", "cosplace", "--dataset", "/data/city", "--config", str(f), "--epochs", "9", "--seed", "3",
         "--set", "optim.lr=0.25", "--set", "cosplace.M=20", "--image-size", "96,128", "--print-config"]
    )  # fmt: skip
    assert args.func(args) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["method"] == "cosplace" and cfg["data"]["root"] == "/data/city"
    assert cfg["optim"] == {**cfg["optim"], "lr": 0.25, "name": "sgd"}
    assert cfg["schedule"]["epochs"] == 9  # the shorthand beats the file
    assert cfg["cosplace"]["M"] == 20.0 and cfg["runtime"]["seed"] == 3
    assert cfg["data"]["image_size"] == [96, 128]
    assert cfg["runtime"]["device"] == "auto"  # not given: the config's default, not the shared option's


def test_bad_key_is_reported(tmp_path: Path) -> None:
    from vgloc.config import ConfigError

    args = _parser().parse_args(["train", "triplet", "--set", "optim.lrr=1", "--print-config"])
    with pytest.raises(ConfigError, match=r"did you mean optim\.lr"):
        args.func(args)


def test_train_and_resume_from_the_command_line(
    train_city: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    argv = ["train", "cosplace", "--run-dir", str(run)]
    for item in [*small_overrides(train_city, "cosplace"), "schedule.epochs=1"]:
        argv += ["--set", item]
    args = _parser().parse_args(argv)
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert f"--checkpoint {run / 'best_model.pt'} --image-size 48,64" in out
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1
    # Continue the same run for one more epoch: only the run folder and the new length are given.
    args = _parser().parse_args(["train", "cosplace", "--resume", str(run), "--epochs", "2", "--no-progress"])
    assert args.func(args) == 0
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 2
    assert len((run / "steps.csv").read_text().splitlines()) == 1 + 6
    # A changed recipe is refused.
    args = _parser().parse_args(["train", "cosplace", "--resume", str(run), "--model", "tiny+gem+fc32"])
    from vgloc.training.checkpoint import CheckpointMismatchError

    with pytest.raises(CheckpointMismatchError, match=r"model\.spec"):
        args.func(args)
    # A resumed run may get a time budget: it stops after one more epoch and says why.
    capsys.readouterr()
    args = _parser().parse_args(
        ["train", "cosplace", "--resume", str(run), "--epochs", "5", "--set", "schedule.max_minutes=0.001"]
    )
    assert args.func(args) == 0
    assert "(stopped by schedule.max_minutes)" in capsys.readouterr().out
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 3


@pytest.mark.parametrize("method", ["triplet", "cosplace"])
def test_the_tiny_city_trains_with_only_a_time_budget(
    method: str, tiny_city: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The documented command, with no other override: the recipe adapts to the city and says so."""
    run = tmp_path / method
    argv = ["train", method, "--dataset", str(tiny_city), "--model", "tiny+gem"]
    argv += ["--set", "schedule.max_minutes=0.01", "--run-dir", str(run), "--no-progress"]
    args = _parser().parse_args(argv)
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "(stopped by schedule.max_minutes)" in out
    assert "--image-size 72,96" in out  # the images' own size, not the preset's
    info = (run / "info.log").read_text()
    assert f"{method} settings adapted to the data" in info
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["image_size"] == [72, 96]
    if method == "cosplace":
        assert "cosplace.M 10 -> " in info and saved["cosplace"]["M"] > 10
    else:
        assert "triplet.cache_refresh_rate 1000 -> " in info and saved["triplet"]["cache_refresh_rate"] < 1000
    # The run resumes with its saved (adapted) configuration.
    args = _parser().parse_args(["train", method, "--resume", str(run), "--epochs", "2", "--no-progress"])
    assert args.func(args) == 0
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 2
