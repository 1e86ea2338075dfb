"""Ensemble options shared by the commands that retrieve (``eval``; see docs/ensembles.md).

``--model``/``--checkpoint``/``--index`` are repeatable in those commands; with
``--ensemble nif|sif|rrf`` every model retrieves and the fusion merges their lists.
Without ``--ensemble`` exactly one model is allowed and the lists become plain
values again, so the single-model code path sees what it always saw.
"""

from __future__ import annotations

import argparse
from typing import Any

from vgloc.cli.options import positive_int

__all__ = [
    "add_ensemble_options",
    "check_ensemble_args",
    "ensemble_requested",
    "locate_with_ensemble",
    "num_members",
]

_MEMBER_OPTIONS = ("model", "checkpoint", "index")


def add_ensemble_options(p: argparse.ArgumentParser) -> None:
    """``--ensemble``, ``--ensemble-lead`` and ``--rrf-k``."""
    # No import of vgloc.ensemble here: building the parser must not load numpy
    # (`vgloc --help` stays fast); the name is checked with the others before any work.
    g = p.add_argument_group("ensemble (several models: repeat --model/--checkpoint/--index)")
    g.add_argument(
        "--ensemble",
        default=None,
        metavar="{nif,sif,rrf}",
        help="fuse the ranked lists of every --model/--index: nif (all candidates by descriptor "
        "distance, duplicates at their closest), sif (candidates all models share first, in the lead "
        "model's order, then the lead's list, then the others'), rrf (reciprocal-rank fusion, "
        "sum of 1/(k+rank)), or any fusion registered in vgloc.registry.ENSEMBLES (default: off, one model)",
    )
    g.add_argument(
        "--ensemble-lead",
        type=positive_int,
        default=1,
        metavar="N",
        help="sif: the lead ('stronger') model, 1 = the first given (default: 1)",
    )
    g.add_argument(
        "--rrf-k",
        type=positive_int,
        default=None,
        metavar="K",
        help="rrf: the constant k of 1/(k+rank) (default: 60, Cormack et al. 2009)",
    )


def _as_list(value: Any) -> list[Any]:
    return [] if value is None else list(value) if isinstance(value, list) else [value]


def num_members(args: argparse.Namespace) -> int:
    """How many models the repeated ``--model``/``--checkpoint``/``--index`` name."""
    return max(len(_as_list(getattr(args, name, None))) for name in _MEMBER_OPTIONS)


def ensemble_requested(args: argparse.Namespace) -> bool:
    """True with ``--ensemble``; else refuse several models and turn the lists into single values."""
    if args.ensemble is not None:
        return True
    if num_members(args) > 1:
        raise ValueError(
            "several --model/--checkpoint/--index make an ensemble: add --ensemble nif, sif or rrf "
            "(see docs/ensembles.md), or give one model"
        )
    for name in _MEMBER_OPTIONS:
        if hasattr(args, name):
            values = _as_list(getattr(args, name))
            setattr(args, name, values[0] if values else None)
    return False


def check_ensemble_args(args: argparse.Namespace, what: str) -> None:
    """Refuse, before any work, what an ensemble cannot do (yet) and a single model."""
    from vgloc.ensemble import check_ensemble

    if getattr(args, "rerank", None) is not None:
        raise ValueError(f"{what} --ensemble does not re-rank (yet): leave out --rerank")
    if getattr(args, "method", "nearest") not in ("nearest", "kde"):
        raise ValueError(f"{what} --ensemble predicts positions with --method nearest or kde")
    if getattr(args, "cells", None) is not None:
        raise ValueError(f"{what} --ensemble does not combine with --cells")
    check_ensemble(args.ensemble, num_members(args), args.ensemble_lead - 1)


def locate_with_ensemble(args: argparse.Namespace, kde: Any) -> list[Any]:
    """``vgloc locate --index A --index B --ensemble ...``: the fused predictions of every photo."""
    from vgloc.describers import ExtractionOptions
    from vgloc.ensemble.localizer import locate_ensemble

    check_ensemble_args(args, what="locate")
    options = ExtractionOptions(
        image_size=args.image_size if args.image_size is not None else "auto",  # auto: each index's own
        device=args.device,
        precision=args.precision,
        jpeg_draft=args.jpeg_draft,
        scales=args.scales,
        scale_fusion=args.scale_fusion,
        progress=False,
    )
    return locate_ensemble(
        args.photos,
        _as_list(args.index),
        ensemble=args.ensemble,
        models=args.model,
        checkpoints=args.checkpoint,
        lead=args.ensemble_lead - 1,
        **({} if args.rrf_k is None else {"rrf_k": args.rrf_k}),
        top_k=args.top_k,
        method=args.method,
        kde=kde,
        search_params=args.search_params,
        options=options,
    )
