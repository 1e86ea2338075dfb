"""Speed options of local-feature re-ranking on ``vgloc eval`` and ``vgloc locate``.

``--rerank-workers N`` (threads of the fast path) and ``--rerank-exact-top N`` (its
opt-in early exit) are constructor options of
:class:`~vgloc.rerank.LocalFeatureReranker` (see docs/reranking_speed.md). Without
them, ``--rerank SPEC`` and ``--rerank-cache`` reach :func:`vgloc.api.evaluate` /
:func:`vgloc.api.locate` unchanged; with them, the re-ranker is built here with its
cache and handed over built (both functions accept a built re-ranker).
"""

from __future__ import annotations

import argparse
from typing import Any

from vgloc.cli.options import positive_int

__all__ = ["add_rerank_speed_options", "check_rerank_speed_args", "rerank_from_args"]


def add_rerank_speed_options(p: argparse.ArgumentParser) -> None:
    """Add ``--rerank-workers`` and ``--rerank-exact-top`` (after :func:`~vgloc.cli.options.add_rerank_options`)."""
    g = p.add_argument_group("re-ranking speed (rootsift+mnn+ransac and other extractor+mnn|ratio+verifier)")
    g.add_argument(
        "--rerank-workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="threads that match and verify a query's candidates (default: the usable cores, at most 8); "
        "the result does not depend on it",
    )
    g.add_argument(
        "--rerank-exact-top",
        type=positive_int,
        default=None,
        metavar="N",
        help="early exit: stop verifying once the top N cannot change. Only the first N of the re-ranked "
        "list are then guaranteed identical (skipped candidates follow, in retrieval order); not with "
        "--rerank-fusion or --rerank-sweep, and --rerank-k should stay above N (default: verify all)",
    )


def check_rerank_speed_args(args: argparse.Namespace) -> None:
    """Refuse speed options that would be ignored or that contradict another option (builds nothing).

    Raises:
        ValueError: naming the options.
    """
    given = [
        flag
        for flag, value in (
            ("--rerank-workers", getattr(args, "rerank_workers", None)),
            ("--rerank-exact-top", getattr(args, "rerank_exact_top", None)),
        )
        if value is not None
    ]
    if not given:
        return
    if getattr(args, "rerank", None) is None:
        verb = "apply" if len(given) > 1 else "applies"
        raise ValueError(f"{' and '.join(given)} {verb} to re-ranking: give --rerank SPEC too")
    if args.rerank_exact_top is not None:
        for flag, attr in (("--rerank-fusion", "rerank_fusion"), ("--rerank-sweep", "rerank_sweep")):
            if getattr(args, attr, None) is not None:
                raise ValueError(
                    f"--rerank-exact-top leaves some candidates unscored, but {flag} needs every "
                    "candidate's score: use one or the other"
                )


def rerank_from_args(args: argparse.Namespace) -> tuple[Any, Any]:
    """The ``(rerank, rerank_cache)`` arguments of :func:`vgloc.api.evaluate` / :func:`vgloc.api.locate`.

    Returns:
        ``(args.rerank, args.rerank_cache)`` when no speed option is given (nothing is
        built); otherwise a built re-ranker (its cache opened) and None.

    Raises:
        ValueError: see :func:`check_rerank_speed_args`, or a re-ranker kind without
            these options.
    """
    check_rerank_speed_args(args)
    workers, exact_top = getattr(args, "rerank_workers", None), getattr(args, "rerank_exact_top", None)
    if workers is None and exact_top is None:
        return args.rerank, args.rerank_cache
    from vgloc.rerank import resolve_reranker

    options = {name: v for name, v in (("workers", workers), ("exact_top", exact_top)) if v is not None}
    try:
        return resolve_reranker(args.rerank, cache=args.rerank_cache, **options), None
    except TypeError as exc:  # a registered kind whose constructor has no such keyword
        raise ValueError(
            f"re-ranker {args.rerank!r} does not take --rerank-workers/--rerank-exact-top ({exc})"
        ) from exc
