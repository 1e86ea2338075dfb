"""Options shared by ``vgloc eval`` and ``vgloc locate`` for geo-cell classification runs.

A ``vgloc train geocell`` run folder (``--cells RUN``) brings its network (the
descriptor for retrieval) and its classifiers (``--method geocell``: the position is
the most probable cell). This module is imported by the command modules, so it holds
argparse-level code only.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vgloc.cli.options import positive_int

__all__ = ["add_cell_options", "cell_settings", "cells_evaluator"]


def add_cell_options(p: argparse.ArgumentParser, top_k: bool = True) -> None:
    """``--cells RUN`` and how its classifiers predict (``--cell-*``, ``--hierarchical``)."""
    g = p.add_argument_group("geo-cell classification (a `vgloc train geocell` run)")
    g.add_argument(
        "--cells",
        type=Path,
        default=None,
        metavar="RUN",
        help="a `vgloc train geocell` run folder: with --method geocell its classifiers predict the position "
        "(the most probable cell)"
        + ("; with another --method its network is the retrieval descriptor" if top_k else ""),
    )
    g.add_argument(
        "--cell-position",
        choices=["mean", "centre"],
        default="mean",
        help="a cell's position: the mean of its training images (default) or its centre (rectangle or hexagon)",
    )
    g.add_argument(
        "--hierarchical",
        action="store_true",
        help="multiply each cell's probability by those of the coarser cells holding it",
    )
    g.add_argument(
        "--cell-partition",
        type=int,
        default=-1,
        help="which of the run's partitions predicts: 0 = coarsest ... -1 = finest (default)",
    )
    if top_k:
        g.add_argument(
            "--cell-k",
            type=positive_int,
            default=5,
            help="top cells with probabilities in cells.csv (default: 5)",
        )


def cell_settings(args: argparse.Namespace, k: int) -> Any:
    """The :class:`vgloc.evaluation.geocell.CellSettings` of parsed arguments (``--cells`` is required).

    Without ``--cells``, a ``--checkpoint`` inside a geocell run folder (next to its
    ``cells.npz``) names the run.
    """
    from vgloc.evaluation.geocell import CellSettings

    run = args.cells
    checkpoint = getattr(args, "checkpoint", None)
    if run is None and checkpoint is not None and (Path(checkpoint).parent / "cells.npz").is_file():
        run = Path(checkpoint).parent
    if run is None:
        raise ValueError("--method geocell needs --cells RUN (a `vgloc train geocell` run folder)")
    settings = CellSettings(
        run=Path(run),
        k=k,
        position=args.cell_position,
        hierarchical=args.hierarchical,
        partition=args.cell_partition,
    )
    settings.check()
    return settings


def cells_evaluator(args: argparse.Namespace, evaluate: Callable[..., Any]) -> Callable[..., Any]:
    """The evaluation ``vgloc eval`` runs: ``evaluate`` itself, or geocell evaluation.

    ``--cells RUN`` alone puts the run's network in ``--model``/``--checkpoint`` (retrieval
    with a classification-trained descriptor, any ``--method``); ``--method geocell``
    returns :func:`vgloc.evaluation.geocell.evaluate_geocell` bound to the run.
    """
    if args.method == "geocell":
        from vgloc.evaluation.geocell import evaluate_geocell

        settings = cell_settings(args, args.cell_k)
        args.model = args.model or _run_spec(settings.run)
        return functools.partial(evaluate_geocell, cells=settings)
    if args.cells is not None:
        args.model = args.model or _run_spec(args.cells)
        args.checkpoint = args.checkpoint or Path(args.cells) / "best_model.pt"
    return evaluate


def _run_spec(run: Path) -> str:
    """The model spec a training run recorded (``best.pt``)."""
    import torch

    path = Path(run) / "best.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{run} is not a finished training run: no best.pt")
    return str(torch.load(path, map_location="cpu", weights_only=True)["model_spec"])
