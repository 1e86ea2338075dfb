"""``vgloc models``: list the registered model components."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from vgloc.cli.command import EXIT_ERROR, Command, register
from vgloc.cli.options import add_runtime_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``vgloc models``."""
    p.add_argument("pattern", nargs="?", default="*", help="glob over names, e.g. 'resnet*' (default: all)")
    add_runtime_options(p)


def run(args: argparse.Namespace) -> int:
    """Print one table row per matching backbone, aggregator, head and classical method."""
    import fnmatch

    from vgloc.models import list_models
    from vgloc.models.classical import classical_rows

    rows: list[Any] = list(list_models(args.pattern))
    rows += [r for r in classical_rows() if fnmatch.fnmatch(r["name"], args.pattern)]
    if not rows:
        print(f"no registered component matches {args.pattern!r}")
        return EXIT_ERROR
    print(format_rows(rows))
    return 0


def format_rows(rows: Sequence[Any]) -> str:
    """Dataclasses or dicts -> an aligned plain-text table (the keys of the first row)."""
    import dataclasses

    dicts = [r if isinstance(r, dict) else dataclasses.asdict(r) for r in rows]
    keys = list(dicts[0])
    widths = {k: max(len(k), *(len(str(d.get(k, ""))) for d in dicts)) for k in keys}
    lines = ["  ".join(k.ljust(widths[k]) for k in keys)]
    lines += ["  ".join(str(d.get(k, "")).ljust(widths[k]) for k in keys) for d in dicts]
    return "\n".join(line.rstrip() for line in lines)


COMMAND = register(
    Command(
        name="models",
        help="list registered backbones, aggregators and heads",
        add_arguments=add_arguments,
        run=run,
    )
)
