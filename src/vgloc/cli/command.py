"""The contract between the ``vgloc`` parser and its command modules.

A command is one module under :mod:`vgloc.cli` that builds a :class:`Command` and
registers it in :data:`vgloc.registry.COMMANDS` with :func:`register`::

    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("pattern", nargs="?", default="*", help="...")
        add_runtime_options(p)

    def run(args: argparse.Namespace) -> int:
        ...
        return 0

    COMMAND = register(Command("models", "list registered components", add_arguments, run))

:func:`vgloc.cli.build_parser` turns every registered command into a sub-command, and
:func:`vgloc.cli.main` calls its ``run`` with the parsed arguments. Commands import
their heavy dependencies (torch, faiss, the API) inside ``run`` so that
``vgloc --help`` stays fast.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from vgloc.registry import COMMANDS

__all__ = [
    "EXIT_ERROR",
    "EXIT_USAGE",
    "AliasHelpFormatter",
    "Command",
    "SuggestingArgumentParser",
    "close_matches",
    "register",
]

EXIT_USAGE = 2
EXIT_ERROR = 1


@dataclass(frozen=True)
class Command:
    """One ``vgloc`` sub-command.

    Attributes:
        name: The word typed after ``vgloc`` (``"rerank-show"``).
        help: One line for the ``vgloc --help`` listing.
        add_arguments: Adds the command's options (and nested sub-commands, if any)
            to the parser that :meth:`add_parser` created for it.
        run: Runs the command with the parsed arguments and returns the exit status.
        description: The longer text of ``vgloc NAME --help`` (default: ``help``).
        writes_results: The command writes files worth keeping, so :func:`vgloc.cli.main`
            gives it a run folder (``runs/<time>-<name>``) when ``--run-dir`` is not given.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None
    writes_results: bool = False

    def add_parser(self, subparsers: Any) -> argparse.ArgumentParser:
        """Add this command to ``subparsers`` (from ``parser.add_subparsers()``).

        Returns:
            The command's parser; parsed arguments carry ``func`` (this command's
            ``run``) and ``writes_results``.
        """
        p: argparse.ArgumentParser = subparsers.add_parser(
            self.name, help=self.help, description=self.description or self.help
        )
        # Defaults first: a command with nested sub-commands may set more specific
        # ones on those, and argparse lets the innermost parser win.
        p.set_defaults(func=self.run, writes_results=self.writes_results)
        self.add_arguments(p)
        return p


def register(command: Command) -> Command:
    """Register ``command`` in :data:`vgloc.registry.COMMANDS` and return it.

    Raises:
        ValueError: Another command already has this name.
    """
    COMMANDS.register(command.name, command, description=command.help)
    return command


def close_matches(word: str, choices: Sequence[str]) -> list[str]:
    """Up to three of ``choices`` that look like ``word`` (for "did you mean" hints)."""
    return difflib.get_close_matches(word, list(choices), n=3, cutoff=0.5)


class AliasHelpFormatter(argparse.HelpFormatter):
    """Writes ``--image-size, --resize H,W`` instead of repeating the metavar per alias."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if len(action.option_strings) < 2 or action.nargs == 0:
            return super()._format_action_invocation(action)
        args = self._format_args(action, self._get_default_metavar_for_optional(action))
        return f"{', '.join(action.option_strings)} {args}"


class SuggestingArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose sub-commands answer a typo with the closest names.

    argparse's own message lists every choice but does not say which one was
    probably meant; with a dozen commands the hint is what saves a look at
    ``--help``. Sub-parsers are created with the parent's class, so every nesting
    level (``vgloc index ACTION``, ``vgloc train METHOD``) gets the same hint.
    Help lists an option's aliases once, with its metavar (:class:`AliasHelpFormatter`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", AliasHelpFormatter)
        super().__init__(*args, **kwargs)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # argparse validates a sub-command name here, before the sub-parsers action
        # runs, so this is the one place to replace its "invalid choice" message.
        if isinstance(action, argparse._SubParsersAction) and value not in action.choices:
            names = [str(c) for c in action.choices]
            close = close_matches(str(value), names)
            hint = f"; did you mean: {', '.join(close)}?" if close else ""
            what = str(action.metavar or action.dest or "command").lower()
            raise argparse.ArgumentError(
                action, f"unknown {what} {value!r}{hint} (known: {', '.join(names)})"
            )
        super()._check_value(action, value)
