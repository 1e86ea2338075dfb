"""The ``vgloc`` command line: parse arguments, set up logging, call the Python API.

Every command is a thin layer over a public function (``vgloc.api`` and friends),
so scripts and notebooks get exactly the behaviour the CLI documents.

Each command lives in its own module (:mod:`vgloc.cli.models`, :mod:`vgloc.cli.locate`,
...) and registers a :class:`~vgloc.cli.command.Command` in
:data:`vgloc.registry.COMMANDS` when imported; :func:`build_parser` imports the
modules named in :data:`COMMAND_MODULES` and adds one sub-command per registered
command. A new command is a new module plus its name in that list. Shared options
live in :mod:`vgloc.cli.options`.

Run it as ``vgloc ...``, ``python -m vgloc.cli ...`` or, for distributed training,
``torchrun ... -m vgloc.cli train ...``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from vgloc._version import __version__
from vgloc.cli.command import EXIT_ERROR, EXIT_USAGE, Command, SuggestingArgumentParser
from vgloc.cli.options import (
    default_run_dir,
    launcher_rank,
    parse_image_size,
    parse_int_list,
    positive_float,
    positive_int,
    setup_logging,
)
from vgloc.registry import COMMANDS

__all__ = [
    "ALIASES",
    "COMMAND_MODULES",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "Command",
    "build_parser",
    "expand_aliases",
    "main",
    "parse_image_size",
    "parse_int_list",
    "positive_float",
    "positive_int",
]

log = logging.getLogger("vgloc")

# The command modules, in the order `vgloc --help` lists them. Importing one
# registers its command; the modules import only argparse-level code at the top, so
# this stays cheap (torch, faiss and the API load inside each command's run()).
COMMAND_MODULES: tuple[str, ...] = (
    "vgloc.cli.models",
    "vgloc.cli.index",
    "vgloc.cli.locate",
    "vgloc.cli.eval",
    "vgloc.cli.rerank_show",
    "vgloc.cli.synth",
    "vgloc.cli.split",
    "vgloc.cli.demo",
    "vgloc.cli.train",
    "vgloc.cli.serve",
    "vgloc.cli.export",
    "vgloc.cli.soup",
    "vgloc.cli.crossview",
)


# Spellings that name a command's sub-command the other way round, rewritten before
# parsing: `vgloc eval crossview ...` runs `vgloc crossview eval ...` (issue 15's
# spelling; `vgloc eval` itself has no sub-commands). Listed in `vgloc --help`.
ALIASES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("eval", "crossview"): ("crossview", "eval"),
}


def expand_aliases(argv: Sequence[str]) -> list[str]:
    """``argv`` with a leading alias of :data:`ALIASES` replaced by what it stands for."""
    argv = list(argv)
    for alias, target in ALIASES.items():
        if tuple(argv[: len(alias)]) == alias:
            return [*target, *argv[len(alias) :]]
    return argv


def registered_commands() -> list[Command]:
    """Every registered command: those of :data:`COMMAND_MODULES` in that order, then
    any registered elsewhere (e.g. by a plugin) in name order."""
    ordered = [importlib.import_module(m).COMMAND.name for m in COMMAND_MODULES]
    names = ordered + [n for n in COMMANDS.names() if n not in ordered]
    return [COMMANDS.get(n) for n in names]


def build_parser() -> argparse.ArgumentParser:
    """The ``vgloc`` parser, with one sub-command per registered command."""
    parser = SuggestingArgumentParser(
        prog="vgloc",
        description="Visual geo-localization: map photos to GPS by retrieval against geotagged images.",
        epilog="aliases: "
        + "; ".join(f"vgloc {' '.join(a)} = vgloc {' '.join(t)}" for a, t in ALIASES.items()),
    )
    parser.add_argument("--version", action="version", version=f"vgloc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in registered_commands():
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vgloc`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(expand_aliases(sys.argv[1:] if argv is None else argv))
    # getattr: a command that skips the runtime options still runs (console logging at
    # info, no run folder unless it writes results).
    run_dir = getattr(args, "run_dir", None)
    log_dir = run_dir
    rank = launcher_rank()
    if run_dir is None and getattr(args, "writes_results", False):
        run_dir = default_run_dir(args.command)
        # Under torchrun the ranks start at different seconds, so their default folders
        # differ: only rank 0 makes one (the others log to the console).
        log_dir = run_dir if rank == 0 else None
    args.run_dir = run_dir
    handlers = setup_logging(getattr(args, "log_level", "info"), log_dir, rank)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except (ValueError, FileNotFoundError, KeyError, RuntimeError, OSError) as err:
        # Expected failures (bad input, missing files, offline downloads) get one clear
        # line; the traceback goes to the debug log for whoever needs it.
        log.debug("error details", exc_info=True)
        log.error("%s", err)
        return EXIT_ERROR
    finally:
        # Leave logging as we found it (main() may be called from Python, e.g. in tests).
        for handler in handlers:
            logging.getLogger("vgloc").removeHandler(handler)
            handler.close()
