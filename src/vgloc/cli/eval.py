"""``vgloc eval``: Recall@N on a benchmark split, or on any geotagged database and queries."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vgloc.cli.cells import add_cell_options, cells_evaluator
from vgloc.cli.command import Command, register
from vgloc.cli.ensemble import add_ensemble_options, check_ensemble_args, ensemble_requested
from vgloc.cli.options import (
    add_extraction_options,
    add_model_options,
    add_option,
    add_rerank_options,
    add_runtime_options,
    extraction_options,
    parse_int_list,
    positive_float,
    positive_int,
)
from vgloc.cli.rerank_speed import add_rerank_speed_options, check_rerank_speed_args, rerank_from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``vgloc eval``."""
    add_option(
        p,
        "--dataset",
        type=Path,
        default=None,
        help="root with images/<split>/{database,queries*} (or give --database and --queries)",
    )
    p.add_argument(
        "--database",
        type=Path,
        default=None,
        help="database images in any layout: an @UTM@ or EXIF-GPS folder, or a CSV/Parquet manifest",
    )
    p.add_argument(
        "--queries",
        type=Path,
        nargs="+",
        default=None,
        help="query images in any layout (one or more; each is a domain named after its file/folder)",
    )
    p.add_argument(
        "--index",
        type=Path,
        default=None,
        action="append",
        help="a built index of the database (from `vgloc index build`): the database is not described "
        "again and the index's own network describes the queries (repeat for an ensemble: one per model)",
    )
    p.add_argument(
        "--method",
        choices=["nearest", "kde", "geocell"],
        default="nearest",
        help="position predictor for predictions.csv and the error in metres (default: nearest; "
        "geocell: the classifiers of the --cells run, see docs/world.md)",
    )
    p.add_argument("--kde-k", type=positive_int, default=None, help="kde: neighbours in the density")
    p.add_argument("--kde-m", type=float, default=None, help="kde: weight = similarity^m")
    p.add_argument(
        "--kde-sigma-km",
        type=positive_float,
        default=None,
        help="kde: kernel sigma in km. Unset kde values default to the world-scale ones (k 100, m 10, "
        "sigma 4 km, Vo et al. 2017) once any --kde-* is given; with none, world-wide data gets those "
        "and other data the city ones (k 10, m 4, sigma 25 m)",
    )
    p.add_argument(
        "--metrics",
        default=None,
        help="registered metrics, comma-separated (default: recall,median_error_m; world-wide data adds "
        "accuracy_km,median_error_km automatically; name them to get them on any data)",
    )
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
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
    p.add_argument(
        "--test-contrast",
        type=positive_float,
        default=None,
        help="change query contrast by this factor (torchvision adjust_contrast: 1 unchanged, <1 flatter)",
    )
    p.add_argument(
        "--test-saturation",
        type=positive_float,
        default=None,
        help="change query saturation by this factor (torchvision adjust_saturation: 1 unchanged, <1 greyer)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for results.json, predictions.csv and report.html (default: the run folder)",
    )
    add_model_options(p, required=False, multiple=True)
    add_ensemble_options(p)
    add_extraction_options(p)
    add_rerank_options(p, evaluation=True)
    add_rerank_speed_options(p)
    add_runtime_options(p)
    add_cell_options(p)


def run(args: argparse.Namespace) -> int:
    """Evaluate with :func:`vgloc.api.evaluate` and print the Recall@N table."""
    from vgloc.api import evaluate

    check_rerank_speed_args(args)
    if ensemble_requested(args):  # --ensemble, or several --model/--checkpoint/--index
        return _run_ensemble(args)
    evaluate = cells_evaluator(args, evaluate)  # --cells RUN: its network; --method geocell: its classifiers
    check_sets(args)
    if args.model is None and args.index is None:
        raise ValueError("give --model SPEC (or --index IDX built with one)")
    common = _common_kwargs(args)
    rerank, rerank_cache = rerank_from_args(args)  # built here with --rerank-workers/--rerank-exact-top
    result = evaluate(
        args.dataset,
        args.split,
        args.model,
        index=args.index,
        checkpoint=args.checkpoint,
        rerank=rerank,
        rerank_k=args.rerank_k,
        rerank_cache=rerank_cache,
        rerank_fusion=args.rerank_fusion,
        rerank_fusion_weight=args.rerank_fusion_weight,
        rerank_sweep=args.rerank_sweep,
        **common,
    )
    out_dir = common["out_dir"]
    _print_result(args, result, out_dir)
    if out_dir and args.rerank_sweep:
        from vgloc.rerank.sweep import SWEEP_STEM

        stem = Path(out_dir) / SWEEP_STEM
        print(f"K sweep: {stem}.md, {stem}.csv, {stem}.png")
    return 0


def check_sets(args: argparse.Namespace) -> None:
    """Refuse a missing or doubled choice of database and queries."""
    if args.dataset is None and (args.database is None or args.queries is None):
        raise ValueError("give --dataset ROOT, or both --database and --queries")
    if args.dataset is not None and (args.database is not None or args.queries is not None):
        raise ValueError("--dataset cannot be combined with --database/--queries")


def _common_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments single-model and ensemble evaluation share (sets, metrics, kde...)."""
    queries = None
    if args.queries is not None:
        queries = {(q.stem or q.name): q for q in args.queries}
        if len(queries) != len(args.queries):
            raise ValueError("two --queries share a name; rename one")
    from vgloc.evaluation.metrics import DEFAULT_METRICS

    metrics = (
        tuple(m.strip() for m in args.metrics.split(",") if m.strip()) if args.metrics else DEFAULT_METRICS
    )
    from dataclasses import replace

    from vgloc.predict import DEFAULT_KDE, WORLD_KDE

    given = {"k": args.kde_k, "m": args.kde_m}
    if args.kde_sigma_km is not None:
        given["sigma_m"] = args.kde_sigma_km * 1000.0
    given = {k: v for k, v in given.items() if v is not None}
    return {
        "database": args.database,
        "queries": queries,
        "method": args.method,
        "kde": replace(WORLD_KDE, **given) if given else DEFAULT_KDE,
        "metrics": metrics,
        "report": not args.no_report,
        "pretrained": args.pretrained,
        "recall_values": args.recall,
        "threshold_m": args.threshold_m,
        "domains": args.domains.split(",") if args.domains else None,
        "factory": args.factory,
        "search_params": args.search_params,
        "options": extraction_options(
            args,
            brightness=args.test_brightness,
            contrast=args.test_contrast,
            saturation=args.test_saturation,
        ),
        "out_dir": args.out or args.run_dir,
        "seed": args.seed,
    }


def _print_result(args: argparse.Namespace, result: Any, out_dir: Path | None) -> None:
    """The summary line, the Recall@N table and where the outputs are."""
    source = f"{args.dataset} [{args.split}]" if args.dataset is not None else str(args.database)
    print(
        f"{result.model_spec} on {source}, {result.num_database} database images, "
        f"positives within {result.threshold_m:g} m"
    )
    print(result.table())
    if out_dir:
        out = Path(out_dir)
        print(f"results: {out / 'results.json'}, {out / 'predictions.csv'}")
        if not args.no_report:
            print(f"report: {out / 'report.html'}")


def _run_ensemble(args: argparse.Namespace) -> int:
    """``--ensemble``: :func:`vgloc.evaluation.ensemble.evaluate_ensemble`, then the same printout."""
    from vgloc.evaluation.ensemble import evaluate_ensemble

    check_sets(args)
    check_ensemble_args(args, what="eval")
    common = _common_kwargs(args)
    result = evaluate_ensemble(
        args.dataset,
        args.split,
        args.model,
        ensemble=args.ensemble,
        checkpoints=args.checkpoint,
        indexes=args.index,
        lead=args.ensemble_lead - 1,
        **({} if args.rrf_k is None else {"rrf_k": args.rrf_k}),
        **common,
    )
    out_dir = common["out_dir"]
    _print_result(args, result, out_dir)
    for m, member in enumerate(result.settings["ensemble"]["models"], start=1):
        recalls = "; ".join(
            f"{d} " + " ".join(f"{n} {v:.1f}" for n, v in r.items()) for d, r in member["recalls"].items()
        )
        weights = member["checkpoint"] or member["index"]
        print(f"model {m}: {member['model']}{f' {weights}' if weights else ''}: {recalls}")
    return 0


COMMAND = register(
    Command(
        name="eval",
        help="Recall@N on a benchmark split, or on your own geotagged database and queries",
        description="Recall@N with the field's protocol: positives are database images within "
        "--threshold-m metres (UTM for data in one zone, great-circle otherwise); a query is correct at N when any of its top N is a positive; "
        "the denominator is all queries (queries without positives are counted and reported).",
        add_arguments=add_arguments,
        run=run,
        writes_results=True,
    )
)
