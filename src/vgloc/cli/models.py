"""``vgloc models``: list the registered model components and the published weights."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from vgloc.cli.command import EXIT_ERROR, Command, register
from vgloc.cli.options import add_runtime_options

#: Columns of the published-weights table (the parts table shows the first four).
PART_COLUMNS = ("kind", "name", "dim", "description")
WEIGHT_COLUMNS = ("name", "dim", "eval_size", "normalize", "spec", "source")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``vgloc models``."""
    p.add_argument("pattern", nargs="?", default="*", help="glob over names, e.g. 'resnet*' (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object per row (a JSON list)")
    add_runtime_options(p)


def run(args: argparse.Namespace) -> int:
    """Print the architecture parts (backbones, aggregators, heads, classical methods), then
    the published weight sets with descriptor dim, evaluation size, normalisation and source."""
    import dataclasses
    import fnmatch
    import json

    from vgloc.models import list_models
    from vgloc.models.classical import classical_rows

    rows: list[dict[str, Any]] = [dataclasses.asdict(r) for r in list_models(args.pattern)]
    rows += [dict(r) for r in classical_rows() if fnmatch.fnmatch(r["name"], args.pattern)]
    if not rows:
        print(f"no registered component matches {args.pattern!r}")
        return EXIT_ERROR
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    parts = [{k: r.get(k, "") for k in PART_COLUMNS} for r in rows if r.get("kind") != "weights"]
    weights = [{k: r.get(k, "") for k in WEIGHT_COLUMNS} for r in rows if r.get("kind") == "weights"]
    blocks = []
    if parts:
        blocks.append(
            "architecture parts (combine as backbone[.cut]+aggregator[+head])\n" + format_rows(parts)
        )
    if weights:
        blocks.append(
            "published weights (--model NAME; eval_size and normalize are used automatically)\n"
            + format_rows(weights)
        )
    print("\n\n".join(blocks))
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
        help="list registered backbones, aggregators, heads and published weights",
        add_arguments=add_arguments,
        run=run,
    )
)
