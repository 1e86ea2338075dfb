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
    p.add_argument(
        "--world",
        action="store_true",
        help="a synthetic world: one city of --size per continent, merged (vgloc.data.synthetic.world)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_runtime_options(p)


def run(args: argparse.Namespace) -> int:
    """Render the city with :func:`vgloc.data.synthetic.generate_city`."""
    from vgloc.data.synthetic import generate_city

    if args.world:
        from vgloc.data.synthetic.world import WORLD_PLACES, generate_world

        root = generate_world(args.out, size=args.size, seed=args.seed, progress=not args.no_progress)
        places = ", ".join(p[0] for p in WORLD_PLACES)
        print(f"synthetic world ({args.size} cities: {places}; seed {args.seed}) at {root}")
        return 0
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
