"""Walk the ``vgloc`` parser: its sub-commands, nested ones included."""

from __future__ import annotations

import argparse

from vgloc.cli import build_parser


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-command parsers of ``parser`` by name ({} when it has none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def all_commands() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every leaf command as ("index build", its parser), nested levels flattened."""
    out = []
    for name, p in subparsers(build_parser()).items():
        nested = subparsers(p)
        out += [(f"{name} {n}", q) for n, q in nested.items()] if nested else [(name, p)]
    return out
