"""The ``vgloc`` parser: commands come from the registry, every option has a help
text, typos get a suggestion, and ``--help`` loads nothing heavy."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.cli._helpers import all_commands, subparsers
from vgloc.cli import COMMAND_MODULES, Command, build_parser, main, registered_commands
from vgloc.cli.command import register
from vgloc.registry import COMMANDS


def test_expected_commands_exist() -> None:
    names = {n for n, _ in all_commands()}
    assert {
        "models",
        "index build",
        "locate",
        "eval",
        "rerank-show",
        "synth",
        "demo",
        "train triplet",
        "train cosplace",
    } <= names


def test_every_module_registers_one_command() -> None:
    names = [c.name for c in registered_commands()]
    assert len(names) >= len(COMMAND_MODULES)
    assert names[: len(COMMAND_MODULES)] == [
        "models",
        "index",
        "locate",
        "eval",
        "rerank-show",
        "synth",
        "split",
        "demo",
        "train",
        "serve",
        "export",
        "soup",
        "crossview",
    ]
    assert set(names) <= set(COMMANDS.names())


@pytest.mark.parametrize(("name", "parser"), all_commands())
def test_every_option_has_a_help_text(name: str, parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and len(action.help) > 8, (
            f"`vgloc {name}` option {action.option_strings} has no help"
        )


def test_top_level_help_lists_every_registered_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in registered_commands():
        assert f"    {command.name}" in out, command.name
        # The one-line help starts on the command's line or the next (long names wrap).
        assert command.help.split()[0] in out


@pytest.fixture
def hello_command() -> Iterator[list[str]]:
    """A throwaway command registered the way a new command module would."""
    calls: list[str] = []

    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--who", default="world", help="whom to greet (default: world)")

    def run(args: argparse.Namespace) -> int:
        calls.append(args.who)
        return 0

    register(Command("hello-test", "greet someone (test command)", add_arguments, run))
    try:
        yield calls
    finally:
        COMMANDS.unregister("hello-test")


def test_a_registered_command_is_parsed_listed_and_run(
    hello_command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert "hello-test" in subparsers(build_parser())
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "greet someone" in capsys.readouterr().out
    # It has no runtime options (--log-level, --run-dir): main() must cope.
    assert main(["hello-test", "--who", "vgloc"]) == 0
    assert hello_command == ["vgloc"]


def test_a_command_name_is_registered_once() -> None:
    def noop(args: argparse.Namespace) -> int:
        return 0

    with pytest.raises(ValueError, match="already registered"):
        register(Command("locate", "a second locate", lambda p: None, noop))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["lcoate", "x.jpg"], "unknown command 'lcoate'; did you mean: locate?"),
        (["rerank-shw"], "did you mean: rerank-show?"),
        (["index", "biuld"], "unknown action 'biuld'; did you mean: build?"),
        (["train", "cosplac"], "unknown method 'cosplac'; did you mean: cosplace?"),
    ],
)
def test_unknown_command_suggests_close_matches(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert expected in capsys.readouterr().err


def test_unknown_command_without_close_match_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["xyzzy"])
    err = capsys.readouterr().err
    assert "unknown command 'xyzzy' (known: models, index, locate" in err
    assert "did you mean" not in err


def test_python_m_vgloc_cli_runs_the_cli_without_loading_torch() -> None:
    # `python -m vgloc.cli` is also how torchrun starts `vgloc train`; --help must stay
    # fast, so building the parser may not import torch, faiss or the API.
    code = (
        "import runpy, sys\n"
        "sys.argv = ['vgloc', '--help']\n"
        "try:\n"
        "    runpy.run_module('vgloc.cli', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "heavy = [m for m in ('torch', 'faiss', 'numpy', 'vgloc.api') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: vgloc" in done.stdout and "train" in done.stdout


def test_bad_values_exit_with_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--dataset", "x", "--model", "tiny+avg", "--recall", "0"])
    assert exit_info.value.code == 2
    assert "expected positive integers" in capsys.readouterr().err
