"""``vgloc rerank-show``: draw a query-candidate pair's verified local matches."""

from __future__ import annotations

import argparse
from pathlib import Path

from vgloc.cli.command import Command, register
from vgloc.cli.options import add_option, add_runtime_options, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``vgloc rerank-show``."""
    p.add_argument("query", type=Path, help="the query image")
    p.add_argument("candidate", type=Path, help="the candidate (database) image")
    add_option(
        p,
        "--rerank",
        metavar="SPEC",
        default="rootsift+mnn+ransac",
        help="re-ranker spec extractor+matcher+verifier (default: rootsift+mnn+ransac)",
    )
    p.add_argument("--out", type=Path, required=True, help="the PNG file to write")
    p.add_argument("--height", type=positive_int, default=480, help="figure height in pixels (default: 480)")
    p.add_argument(
        "--max-outliers",
        type=int,
        default=200,
        help="draw at most this many outliers, evenly subsampled, so inliers stay visible (default: 200)",
    )
    add_runtime_options(p)


def run(args: argparse.Namespace) -> int:
    """Match, verify and draw the pair with :func:`vgloc.rerank.visualize_pair`."""
    from vgloc.rerank import resolve_reranker, visualize_pair

    for path in (args.query, args.candidate):
        if not path.is_file():
            raise FileNotFoundError(f"image not found: {path}")
    if args.max_outliers < 0:
        raise ValueError(f"--max-outliers must be >= 0, got {args.max_outliers}")
    with resolve_reranker(args.rerank) as reranker:
        out, ver = visualize_pair(
            args.query,
            args.candidate,
            args.out,
            reranker,
            height=args.height,
            max_outliers=args.max_outliers,
        )
    print(f"{reranker.spec}: {ver.num_inliers} inliers, score {ver.score:.4g} -> {out}")
    return 0


COMMAND = register(
    Command(
        name="rerank-show",
        help="draw a query-candidate pair's local matches (inliers green, outliers red)",
        description="Match QUERY with CANDIDATE using a re-ranker spec, verify the matches "
        "geometrically and write a side-by-side PNG: inliers green, outliers red, the inlier "
        "count in the title.",
        add_arguments=add_arguments,
        run=run,
    )
)
