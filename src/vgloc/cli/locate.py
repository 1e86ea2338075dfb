"""``vgloc locate``: predict the GPS position of photos against an index."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from vgloc.cli.cells import add_cell_options
from vgloc.cli.command import Command, register
from vgloc.cli.crossview import is_aerial_index, print_locations
from vgloc.cli.ensemble import add_ensemble_options, ensemble_requested, locate_with_ensemble
from vgloc.cli.options import (
    add_jpeg_draft_option,
    add_option,
    add_precision_option,
    add_rerank_options,
    add_runtime_options,
    add_scale_options,
    parse_image_size,
    positive_float,
    positive_int,
)
from vgloc.cli.rerank_speed import add_rerank_speed_options, check_rerank_speed_args, rerank_from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``vgloc locate``."""
    p.add_argument("photos", nargs="+", type=Path, help="query photo(s)")
    p.add_argument(
        "--index",
        type=Path,
        default=None,
        action="append",
        help="index directory from `vgloc index build` (or --cells RUN with --method geocell); repeat with "
        "--ensemble: one per model; an aerial index of `vgloc crossview index` gives tile centre, heading "
        "and confidence (only --json and --device apply)",
    )
    p.add_argument(
        "--top-k",
        type=positive_int,
        default=5,
        help="matches (geocell: cells) to list per photo (default: 5)",
    )
    p.add_argument(
        "--method",
        default="nearest",
        choices=["nearest", "kde", "geocell"],
        help="nearest: position of the top match (default); kde: im2gps kNN kernel density "
        "(see BENCHMARKS.md for when it helps); geocell: the most probable cell of the --cells run's "
        "classifiers (no index)",
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
    p.add_argument("--model", action="append", help="override the model recorded in the index (same spec)")
    p.add_argument("--checkpoint", type=Path, action="append", help="override the index's weights")
    add_option(
        p,
        "--image-size",
        metavar="H,W",
        type=parse_image_size,
        default=None,
        help="resize queries to H,W, or 'native' to keep full resolution (default: the index's image size)",
    )
    add_precision_option(p)
    add_jpeg_draft_option(p)
    add_scale_options(p)
    add_rerank_options(p)
    add_rerank_speed_options(p)
    add_ensemble_options(p)
    add_runtime_options(p)
    add_cell_options(p, top_k=False)


def run(args: argparse.Namespace) -> int:
    """Locate every photo with :func:`vgloc.api.locate` (or a geocell run's classifiers) and print text or JSON."""
    if args.index and len(args.index) == 1 and is_aerial_index(args.index[0]):  # issue 15: cross-view
        return print_locations(args.index[0], args.photos, args.device, args.json)
    check_rerank_speed_args(args)
    ensemble = ensemble_requested(args)  # several --index/--model with --ensemble; else single values
    if args.method == "geocell" or args.cells is not None:
        return _run_geocell(args)
    if args.index is None:
        raise ValueError("give --index IDX (or --cells RUN --method geocell)")
    from vgloc.api import ExtractionOptions, locate
    from vgloc.predict import KDEParams

    kde = KDEParams(k=args.kde_k, m=args.kde_m, sigma_m=args.kde_sigma)
    options = None
    scaled = args.scales is not None or args.scale_fusion is not None  # checked against the index's
    custom = (
        args.image_size is not None
        or args.device != "cpu"
        or args.precision != "auto"
        or scaled
        or not args.jpeg_draft
    )
    if custom and not ensemble:  # (an ensemble sets each model's options itself)
        from vgloc.index import GeoIndex

        size = (
            args.image_size if args.image_size is not None else GeoIndex.read_metadata(args.index).image_size
        )
        options = ExtractionOptions(
            image_size=size,
            device=args.device,
            precision=args.precision,
            jpeg_draft=args.jpeg_draft,
            scales=args.scales,
            scale_fusion=args.scale_fusion,
            progress=False,
        )
    # --rerank-workers/--rerank-exact-top: the re-ranker is built here (an ensemble refuses --rerank)
    rerank, rerank_cache = (None, None) if ensemble else rerank_from_args(args)
    predictions = (
        locate_with_ensemble(args, kde)
        if ensemble
        else locate(
            args.photos,
            args.index,
            model=args.model,
            checkpoint=args.checkpoint,
            top_k=args.top_k,
            method=args.method,
            kde=kde,
            search_params=args.search_params,
            options=options,
            rerank=rerank,
            rerank_k=args.rerank_k,
            rerank_cache=rerank_cache,
            rerank_fusion=args.rerank_fusion,
        )
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


def _run_geocell(args: argparse.Namespace) -> int:
    """``--method geocell``: each photo's top-k cells with probabilities and the predicted position."""
    from vgloc.cli.cells import cell_settings

    if args.method != "geocell":
        raise ValueError(
            "--cells RUN locates with its classifiers: add --method geocell (for retrieval with the run's "
            "network, build an index with --checkpoint RUN/best_model.pt)"
        )
    if args.index is not None:
        raise ValueError("--method geocell predicts with the run's classifiers: leave --index out")
    settings = cell_settings(args, args.top_k)
    from vgloc.describers import ExtractionOptions
    from vgloc.localizer import check_photo_files
    from vgloc.predict.cells import GeoCellClassifier

    check_photo_files(args.photos)
    clf = GeoCellClassifier.load(settings.run)
    options = ExtractionOptions(
        image_size=args.image_size if args.image_size is not None else "auto",
        device=args.device,
        precision=args.precision,
        jpeg_draft=args.jpeg_draft,
        progress=False,
    )
    pred = clf.predict(args.photos, **settings.predict_args(), options=options)
    part = clf.partitions[settings.partition]
    where = part.cell_latlon(settings.position)
    rows: list[dict[str, Any]] = []
    for i, photo in enumerate(args.photos):
        cells = [
            {
                "rank": r + 1,
                "cell": int(c),
                "probability": float(p),
                "lat": float(where[c, 0]),
                "lon": float(where[c, 1]),
            }
            for r, (c, p) in enumerate(zip(pred.cells[i], pred.probabilities[i], strict=True))
        ]
        rows.append(
            {
                "query": str(photo),
                "lat": float(pred.latlon[i, 0]),
                "lon": float(pred.latlon[i, 1]),
                "confidence": float(pred.probabilities[i, 0]),
                "method": "geocell",
                "cells": cells,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['query']}\n  position   {row['lat']:.6f}, {row['lon']:.6f}")
        print(f"  confidence {row['confidence']:.2f} (geocell: probability of the cell)")
        for c in row["cells"]:
            print(
                f"  #{c['rank']:<2} cell {c['cell']:<5} p {c['probability']:.3f}  {c['lat']:.4f}, {c['lon']:.4f}"
            )
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
