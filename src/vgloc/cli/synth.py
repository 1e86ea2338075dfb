"""``vgloc synth``: generate the synthetic city benchmark."""

from __future__ import annotations

import argparse
from pathlib import Path

from vgloc.cli.command import Command, register
from vgloc.cli.options import add_runtime_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``vgloc synth``."""
    p.add_argument("--out", type=Path, required=True, help="dataset root to write")
    p.add_argument("--size", default="small", choices=["tiny", "small", "medium", "large"], help="city size")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_runtime_options(p)


def run(args: argparse.Namespace) -> int:
    """Render the city with :func:`vgloc.data.synthetic.generate_city`."""
    from vgloc.data.synthetic import generate_city

    root = generate_city(args.out, size=args.size, seed=args.seed, progress=not args.no_progress)
    print(f"synthetic city ({args.size}, seed {args.seed}) at {root}")
    return 0


COMMAND = register(
    Command(
        name="synth",
        help="generate the synthetic city benchmark",
        add_arguments=add_arguments,
        run=run,
    )
)
