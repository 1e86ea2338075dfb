"""The ``vgloc`` command line: parse arguments, set up logging, call the Python API.

Every command is a thin layer over a public function (``vgloc.api`` and friends),
so scripts and notebooks get exactly the behaviour the CLI documents.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vgloc._version import __version__

log = logging.getLogger("vgloc")

EXIT_USAGE = 2
EXIT_ERROR = 1


# --------------------------------------------------------------------------- parsing helpers


def parse_int_list(text: str) -> list[int]:
    """``"1,5,10"`` -> ``[1, 5, 10]`` (argparse type)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def parse_image_size(text: str) -> tuple[int, int] | None:
    """``"480,640"`` -> (480, 640); ``"native"`` -> None (argparse type)."""
    if text.lower() in ("native", "none", "full"):
        return None
    parts = text.replace("x", ",").split(",")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H,W (e.g. 480,640) or 'native', got {text!r}") from None
    if h < 16 or w < 16:
        raise argparse.ArgumentTypeError(f"image size {h}x{w} is too small (at least 16x16)")
    return h, w


def positive_float(text: str) -> float:
    """argparse type for a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type for an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


# --------------------------------------------------------------------------- shared options


def add_runtime_options(p: argparse.ArgumentParser) -> None:
    """Options every command shares: device, seed, logging, run folder."""
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 ... (default: cpu)")
    g.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed for random initialisation and sampling (default: 0)",
    )
    g.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="console log level (default: info); the run folder always gets debug",
    )
    g.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="folder for this run's log and outputs (default: runs/<time>-<command> for "
        "commands that write results; none for `locate` and `models`)",
    )


def add_model_options(p: argparse.ArgumentParser, required: bool = True, default: str | None = None) -> None:
    """Model spec, checkpoint and pretrained-weight options."""
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        required=required and default is None,
        default=default,
        help="model spec backbone+aggregator+head, e.g. resnet18+gem+fc512 or "
        "resnet50.conv4+netvlad64 (see `vgloc models`)",
    )
    g.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="weights: a vgloc checkpoint or an authors' state dict (CosPlace, VG benchmark)",
    )
    g.add_argument(
        "--pretrained",
        action="store_true",
        help="start from ImageNet backbone weights (downloads once; offline it needs a cached file)",
    )


def add_extraction_options(
    p: argparse.ArgumentParser,
    default_size: str = "480,640",
    default_batch: int = 16,
    size_note: str = "the VG benchmark's",
    auto_note: str = "auto = fp16 on CUDA, fp32 on CPU",
) -> None:
    """How images become descriptors."""
    g = p.add_argument_group("descriptor extraction")
    g.add_argument(
        "--resize",
        type=parse_image_size,
        default=parse_image_size(default_size),
        help=f"resize every image to H,W before description, or 'native' to keep full "
        f"resolution (default: {default_size}, {size_note})",
    )
    g.add_argument(
        "--batch-size",
        type=positive_int,
        default=default_batch,
        help=f"images per forward pass (default: {default_batch})",
    )
    g.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="autocast precision: bf16 is ~2.5x faster on CPUs with AVX-512 BF16; fp16 on CUDA; "
        f"{auto_note} (default: auto)",
    )
    g.add_argument(
        "--channels-last", action="store_true", help="NHWC memory format (faster with bf16 on CPU)"
    )
    g.add_argument("--workers", type=int, default=0, help="image-decoding worker processes (default: 0)")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")


def extraction_options(args: argparse.Namespace, brightness: float | None = None) -> Any:
    from vgloc.api import ExtractionOptions

    return ExtractionOptions(
        image_size=args.resize,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        channels_last=args.channels_last,
        num_workers=args.workers,
        brightness=brightness,
        progress=not args.no_progress,
    )


def add_rerank_options(p: argparse.ArgumentParser, evaluation: bool = False) -> None:
    """Local-feature re-ranking of the retrieved candidates (``locate`` and ``eval``)."""
    g = p.add_argument_group("re-ranking (local features + geometric verification)")
    g.add_argument(
        "--rerank",
        metavar="SPEC",
        default=None,
        help="re-rank the top candidates with extractor+matcher+verifier, e.g. rootsift+mnn+ransac, "
        "sift+ratio+fundamental, orb+mnn+ransac, akaze+mnn+ransac, rootsift+mnn+rss (default: off)",
    )
    g.add_argument(
        "--rerank-k",
        type=positive_int,
        default=100,
        metavar="K",
        help="candidates to re-rank per query, clipped to the database size (default: 100)",
    )
    g.add_argument(
        "--rerank-cache",
        type=Path,
        default=None,
        metavar="FILE.h5",
        help="HDF5 cache of local features, so database features are extracted once across runs",
    )
    g.add_argument(
        "--rerank-fusion",
        default=None,
        choices=["zscore", "linear"],
        help="also weigh in the global similarity (default: rank by the verification score alone)",
    )
    if evaluation:
        g.add_argument(
            "--rerank-fusion-weight",
            type=float,
            default=0.5,
            metavar="W",
            help="weight of the global similarity in the fusion (default: 0.5)",
        )
        g.add_argument(
            "--rerank-sweep",
            type=parse_int_list,
            default=None,
            metavar="K1,K2,...",
            help="also sweep K (e.g. 1,5,10,20,50,100): the top-max(K) are verified once and "
            "re-ordered for each K using only the first K scores; the time at K is the query's "
            "feature extraction plus the measured verification time of its first K candidates. "
            "Writes rerank_sweep.csv/.md/.png (Recall@N and ms/query against K) to the output folder",
        )


# --------------------------------------------------------------------------- logging


def setup_logging(level: str, run_dir: Path | None) -> list[logging.Handler]:
    """Console logging at ``level``; a debug log file in ``run_dir`` when given.

    Configured here (the CLI entry point), never at import, so library users keep
    control of logging. Returns the handlers so :func:`main` can remove them again.
    """
    root = logging.getLogger("vgloc")
    root.setLevel(logging.DEBUG)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(getattr(logging, level.upper()))
    console.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root.addHandler(console)
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(run_dir / "log.txt")
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(fh)
    return list(root.handlers)


def default_run_dir(command: str) -> Path:
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{command}"


# --------------------------------------------------------------------------- commands


def cmd_models(args: argparse.Namespace) -> int:
    import fnmatch

    from vgloc.models import list_models
    from vgloc.models.classical import classical_rows

    rows: list[Any] = list(list_models(args.pattern))
    rows += [r for r in classical_rows() if fnmatch.fnmatch(r["name"], args.pattern)]
    if not rows:
        print(f"no registered component matches {args.pattern!r}")
        return EXIT_ERROR
    print(_format_rows(rows))
    return 0


def _format_rows(rows: Sequence[Any]) -> str:
    import dataclasses

    dicts = [r if isinstance(r, dict) else dataclasses.asdict(r) for r in rows]
    keys = list(dicts[0])
    widths = {k: max(len(k), *(len(str(d.get(k, ""))) for d in dicts)) for k in keys}
    lines = ["  ".join(k.ljust(widths[k]) for k in keys)]
    lines += ["  ".join(str(d.get(k, "")).ljust(widths[k]) for k in keys) for d in dicts]
    return "\n".join(line.rstrip() for line in lines)


def cmd_index_build(args: argparse.Namespace) -> int:
    from vgloc.api import build_index

    index = build_index(
        args.images,
        args.model,
        args.out,
        checkpoint=args.checkpoint,
        pretrained=args.pretrained,
        factory=args.factory,
        search_params=args.search_params,
        options=extraction_options(args),
        descriptor_dtype="float16" if args.fp16_descriptors else "float32",
        validate=not args.no_validate,
        seed=args.seed,
    )
    print(f"indexed {len(index.images)} images -> {args.out} ({index.metadata.model_spec}, {args.factory})")
    return 0


def cmd_locate(args: argparse.Namespace) -> int:
    from vgloc.api import ExtractionOptions, locate
    from vgloc.predict import KDEParams

    kde = KDEParams(k=args.kde_k, m=args.kde_m, sigma_m=args.kde_sigma)
    options = None
    if args.resize_override is not None or args.device != "cpu" or args.precision != "auto":
        from vgloc.index import GeoIndex

        size = (
            args.resize_override
            if args.resize_override is not None
            else GeoIndex.read_metadata(args.index).image_size
        )
        options = ExtractionOptions(
            image_size=size, device=args.device, precision=args.precision, progress=False
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


def cmd_eval(args: argparse.Namespace) -> int:
    from vgloc.api import evaluate

    out_dir = args.out or args.run_dir
    result = evaluate(
        args.dataset,
        args.split,
        args.model,
        checkpoint=args.checkpoint,
        pretrained=args.pretrained,
        recall_values=args.recall,
        threshold_m=args.threshold_m,
        domains=args.domains.split(",") if args.domains else None,
        factory=args.factory,
        search_params=args.search_params,
        options=extraction_options(args, brightness=args.test_brightness),
        out_dir=out_dir,
        seed=args.seed,
        rerank=args.rerank,
        rerank_k=args.rerank_k,
        rerank_cache=args.rerank_cache,
        rerank_fusion=args.rerank_fusion,
        rerank_fusion_weight=args.rerank_fusion_weight,
        rerank_sweep=args.rerank_sweep,
    )
    print(
        f"{result.model_spec} on {args.dataset} [{args.split}], {result.num_database} database images, "
        f"positives within {result.threshold_m:g} m"
    )
    print(result.table())
    if out_dir:
        print(f"results: {Path(out_dir) / 'results.json'}")
        if args.rerank_sweep:
            from vgloc.rerank.pipeline import SWEEP_STEM

            stem = Path(out_dir) / SWEEP_STEM
            print(f"K sweep: {stem}.md, {stem}.csv, {stem}.png")
    return 0


def cmd_rerank_show(args: argparse.Namespace) -> int:
    from vgloc.rerank import Reranker, visualize_pair

    for path in (args.query, args.candidate):
        if not path.is_file():
            raise FileNotFoundError(f"image not found: {path}")
    if args.max_outliers < 0:
        raise ValueError(f"--max-outliers must be >= 0, got {args.max_outliers}")
    with Reranker(args.spec) as reranker:
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


def cmd_synth(args: argparse.Namespace) -> int:
    from vgloc.data.synthetic import generate_city

    root = generate_city(args.out, size=args.size, seed=args.seed, progress=not args.no_progress)
    print(f"synthetic city ({args.size}, seed {args.seed}) at {root}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from vgloc.demo import cpu_has_fast_bf16, run_demo

    t0 = time.perf_counter()
    options = extraction_options(args)
    if args.precision == "auto" and args.device == "cpu" and cpu_has_fast_bf16():
        options.precision, options.channels_last = "bf16", True  # the CPU fast path (BENCHMARKS.md)
    precision = options.precision
    demo = run_demo(
        args.run_dir,
        size=args.size,
        seed=args.seed,
        model=args.model,
        dataset_dir=args.dataset_dir,
        options=options,
        progress=not args.no_progress,
    )
    r = demo.result
    print(
        f"\nvgloc demo: {r.model_spec} (random initialisation, {precision}) on the synthetic city "
        f"[{args.size}, test split], {r.num_database} database images, positives within {r.threshold_m:g} m"
    )
    print(r.table())
    print(f"\ndataset: {demo.dataset}\nindex:   {demo.index}\nreport:  {demo.report}")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vgloc",
        description="Visual geo-localization: map photos to GPS by retrieval against geotagged images.",
    )
    parser.add_argument("--version", action="version", version=f"vgloc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("models", help="list registered backbones, aggregators and heads")
    p.add_argument("pattern", nargs="?", default="*", help="glob over names, e.g. 'resnet*' (default: all)")
    add_runtime_options(p)
    p.set_defaults(func=cmd_models, writes_results=False)

    p_index = sub.add_parser("index", help="build search indexes of geotagged images")
    index_sub = p_index.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    p = index_sub.add_parser(
        "build",
        help="describe a geotagged image collection and write a FAISS index",
        description="Describe every image of DIR (a folder of @UTM_east@UTM_north@...@.jpg files, a "
        "folder of photos with EXIF GPS, or a CSV/Parquet manifest with path,lat,lon[,heading]) "
        "and write an index directory (FAISS index, descriptors, coordinates, metadata).",
    )
    p.add_argument("--images", type=Path, required=True, help="image folder or CSV/Parquet manifest")
    p.add_argument("--out", type=Path, required=True, help="index directory to write (atomically)")
    p.add_argument(
        "--factory",
        default="Flat",
        help="FAISS factory string: Flat (exact), IVF4096,PQ32, HNSW32, ... (default: Flat)",
    )
    p.add_argument("--search-params", default=None, help="default FAISS search parameters, e.g. nprobe=16")
    p.add_argument(
        "--fp16-descriptors",
        action="store_true",
        help="store descriptors as float16 (half the disk)",
    )
    p.add_argument("--no-validate", action="store_true", help="skip opening every image up front")
    add_model_options(p)
    add_extraction_options(p)
    add_runtime_options(p)
    p.set_defaults(func=cmd_index_build, writes_results=True)

    p = sub.add_parser(
        "locate",
        help="predict the GPS position of photos against an index",
        description="Predict latitude/longitude for each photo with a confidence, and list its top-K "
        "matches. Confidence is the share of the similarity-weighted top neighbours that agree with "
        "the predicted point (1 = all agree); it ranks predictions, it is not a probability.",
    )
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
    p.add_argument(
        "--resize",
        dest="resize_override",
        type=parse_image_size,
        default=None,
        help="query resize H,W or 'native' (default: the index's image size)",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="autocast precision",
    )
    add_rerank_options(p)
    add_runtime_options(p)
    p.set_defaults(func=cmd_locate, writes_results=False)

    p = sub.add_parser(
        "eval",
        help="Recall@N on a dataset in the field's layout",
        description="Recall@N with the field's protocol: positives are database images within "
        "--threshold-m UTM metres; a query is correct at N when any of its top N is a positive; "
        "the denominator is all queries (queries without positives are counted and reported).",
    )
    p.add_argument("--dataset", type=Path, required=True, help="root with images/<split>/{database,queries*}")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="split (default: test)")
    p.add_argument(
        "--recall",
        type=parse_int_list,
        default=[1, 5, 10, 20],
        help="N values (default: 1,5,10,20)",
    )
    p.add_argument(
        "--threshold-m",
        type=positive_float,
        default=25.0,
        help="positive radius in metres (default: 25)",
    )
    p.add_argument(
        "--domains",
        default=None,
        help="query folders to evaluate, comma-separated (default: all queries*)",
    )
    p.add_argument("--factory", default="Flat", help="FAISS factory for the search (default: Flat, exact)")
    p.add_argument("--search-params", default=None, help="FAISS search parameters, e.g. nprobe=16")
    p.add_argument(
        "--test-brightness",
        type=positive_float,
        default=None,
        help="scale query brightness by this factor (night simulation, e.g. 0.15)",
    )
    p.add_argument("--out", type=Path, default=None, help="folder for results.json (default: the run folder)")
    add_model_options(p)
    add_extraction_options(p)
    add_rerank_options(p, evaluation=True)
    add_runtime_options(p)
    p.set_defaults(func=cmd_eval, writes_results=True)

    p = sub.add_parser(
        "rerank-show",
        help="draw a query-candidate pair's local matches (inliers green, outliers red)",
        description="Match QUERY with CANDIDATE using a re-ranker spec, verify the matches "
        "geometrically and write a side-by-side PNG: inliers green, outliers red, the inlier "
        "count in the title.",
    )
    p.add_argument("query", type=Path, help="the query image")
    p.add_argument("candidate", type=Path, help="the candidate (database) image")
    p.add_argument(
        "--spec",
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
    p.set_defaults(func=cmd_rerank_show, writes_results=False)

    p = sub.add_parser("synth", help="generate the synthetic city benchmark")
    p.add_argument("--out", type=Path, required=True, help="dataset root to write")
    p.add_argument("--size", default="small", choices=["tiny", "small", "medium", "large"], help="city size")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_runtime_options(p)
    p.set_defaults(func=cmd_synth, writes_results=False)

    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on the built-in synthetic city (the quickest real run)",
        description="Generate (or reuse, from the cache folder) a small synthetic city, index its test "
        "database, geolocate every query domain, print Recall@N per domain and write an HTML report.",
    )
    p.add_argument(
        "--size",
        default="small",
        choices=["tiny", "small", "medium", "large"],
        help="city size (default: small)",
    )
    p.add_argument("--model", default="resnet18+gem", help="model spec (default: resnet18+gem, random init)")
    p.add_argument(
        "--dataset-dir",
        type=Path,
        default=None,
        help="where the city is generated (default: cache)",
    )
    add_extraction_options(
        p,
        default_size="native",
        default_batch=32,
        size_note="the rendered images' own size",
        auto_note="auto = bf16 + channels-last on CPUs with native bf16, fp16 on CUDA, else fp32",
    )
    add_runtime_options(p)
    p.set_defaults(func=cmd_demo, writes_results=True)

    from vgloc.training.cli import add_train_parser

    add_train_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vgloc`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    run_dir = args.run_dir
    if run_dir is None and getattr(args, "writes_results", False):
        run_dir = default_run_dir(args.command)
        args.run_dir = run_dir
    handlers = setup_logging(args.log_level, run_dir)
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


if __name__ == "__main__":
    sys.exit(main())
