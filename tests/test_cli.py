"""The command line: every command and option has a help text, and bad values are refused."""

import argparse

import pytest

from vgloc.cli import build_parser, main, parse_image_size, parse_int_list


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _all_commands() -> list[tuple[str, argparse.ArgumentParser]]:
    out = []
    for name, p in _subparsers(build_parser()).items():
        nested = _subparsers(p)
        out += [(f"{name} {n}", q) for n, q in nested.items()] if nested else [(name, p)]
    return out


def test_expected_commands_exist() -> None:
    names = {n for n, _ in _all_commands()}
    assert {"models", "index build", "locate", "eval", "synth", "demo"} <= names


@pytest.mark.parametrize(("name", "parser"), _all_commands())
def test_every_option_has_a_help_text(name: str, parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and len(action.help) > 8, (
            f"`vgloc {name}` option {action.option_strings} has no help"
        )


def test_top_level_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("models", "index", "locate", "eval", "synth", "demo"):
        assert command in out


def test_value_parsers() -> None:
    assert parse_int_list("1,5,10") == [1, 5, 10]
    assert parse_image_size("480,640") == (480, 640)
    assert parse_image_size("192x256") == (192, 256)
    assert parse_image_size("native") is None
    for bad in ("0,5", "a,b", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_int_list(bad)
    for bad in ("480", "4,4", "big"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_image_size(bad)


def test_bad_values_exit_with_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--dataset", "x", "--model", "tiny+avg", "--recall", "0"])
    assert exit_info.value.code == 2
    assert "expected positive integers" in capsys.readouterr().err


def test_missing_photo_is_a_clear_error(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["locate", str(tmp_path / "nope.jpg"), "--index", str(tmp_path / "idx")])
    assert code == 1
    assert "nope.jpg" in capsys.readouterr().err
