"""``vgloc locate``: predict the GPS position of photos against an index."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vgloc.cli.command import Command, register
from vgloc.cli.options import (
    add_option,
    add_precision_option,
    add_rerank_options,
    add_runtime_options,
    add_scale_options,
    parse_image_size,
    positive_float,
    positive_int,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``vgloc locate``."""
    p.add_argument("photos", nargs="+", type=Path, help="query photo(s)")
    p.add_argument("--index", type=Path, required=True, help="index directory from `vgloc index build`")
    p.add_argument("--top-k", type=positive_int, default=5, help="matches to list per photo (default: 5)")
    p.add_argument(
        "--method",
        default="nearest",
        choices=["nearest", "kde"],
        help="nearest: position of the top match (default); kde: im2gps kNN kernel density "
        "(see BENCHMARKS.md for when it helps)",
    )
    p.add_argument("--kde-k", type=positive_int, default=10, help="neighbours in the density (default: 10)")
    p.add_argument("--kde-m", type=float, default=4.0, help="weight = similarity^m (default: 4)")
    p.add_argument(
        "--kde-sigma",
        type=positive_float,
        default=25.0,
        help="kernel sigma in metres (default: 25)",
    )
    p.add_argument("--search-params", default=None, help="FAISS search parameters, e.g. nprobe=32")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--model", default=None, help="override the model recorded in the index (same spec)")
    p.add_argument("--checkpoint", type=Path, default=None, help="override the index's weights")
    add_option(
        p,
        "--image-size",
        metavar="H,W",
        type=parse_image_size,
        default=None,
        help="resize queries to H,W, or 'native' to keep full resolution (default: the index's image size)",
    )
    add_precision_option(p)
    add_scale_options(p)
    add_rerank_options(p)
    add_runtime_options(p)


def run(args: argparse.Namespace) -> int:
    """Locate every photo with :func:`vgloc.api.locate` and print text or JSON."""
    from vgloc.api import ExtractionOptions, locate
    from vgloc.predict import KDEParams

    kde = KDEParams(k=args.kde_k, m=args.kde_m, sigma_m=args.kde_sigma)
    options = None
    scaled = args.scales is not None or args.scale_fusion is not None  # checked against the index's
    if args.image_size is not None or args.device != "cpu" or args.precision != "auto" or scaled:
        from vgloc.index import GeoIndex

        size = (
            args.image_size if args.image_size is not None else GeoIndex.read_metadata(args.index).image_size
        )
        options = ExtractionOptions(
            image_size=size,
            device=args.device,
            precision=args.precision,
            scales=args.scales,
            scale_fusion=args.scale_fusion,
            progress=False,
        )
    predictions = locate(
        args.photos,
        args.index,
        model=args.model,
        checkpoint=args.checkpoint,
        top_k=args.top_k,
        method=args.method,
        kde=kde,
        search_params=args.search_params,
        options=options,
        rerank=args.rerank,
        rerank_k=args.rerank_k,
        rerank_cache=args.rerank_cache,
        rerank_fusion=args.rerank_fusion,
    )
    if args.json:
        print(json.dumps([p.to_dict() for p in predictions], indent=2))
        return 0
    for p in predictions:
        where = (
            f"{p.lat:.6f}, {p.lon:.6f}"
            if p.lat == p.lat
            else f"UTM {p.utm_east:.1f} E, {p.utm_north:.1f} N (no lat/lon in the index)"
        )
        print(f"{p.query}\n  position   {where}\n  confidence {p.confidence:.2f} ({p.method})")
        for m in p.matches:
            verified = "" if m.inliers is None else f"  {m.inliers:>4} inliers"
            print(f"  #{m.rank:<2} sim {m.similarity:.3f}{verified}  {m.lat:.6f}, {m.lon:.6f}  {m.path}")
    return 0


COMMAND = register(
    Command(
        name="locate",
        help="predict the GPS position of photos against an index",
        description="Predict latitude/longitude for each photo with a confidence, and list its top-K "
        "matches. Confidence is the share of the similarity-weighted top neighbours that agree with "
        "the predicted point (1 = all agree); it ranks predictions, it is not a probability.",
        add_arguments=add_arguments,
        run=run,
    )
)
