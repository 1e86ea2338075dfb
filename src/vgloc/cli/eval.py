"""``vgloc eval``: Recall@N on a dataset in the field's layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from vgloc.cli.command import Command, register
from vgloc.cli.options import (
    add_extraction_options,
    add_model_options,
    add_option,
    add_rerank_options,
    add_runtime_options,
    extraction_options,
    parse_int_list,
    positive_float,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``vgloc eval``."""
    add_option(p, "--dataset", type=Path, required=True, help="root with images/<split>/{database,queries*}")
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


def run(args: argparse.Namespace) -> int:
    """Evaluate with :func:`vgloc.api.evaluate` and print the Recall@N table."""
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


COMMAND = register(
    Command(
        name="eval",
        help="Recall@N on a dataset in the field's layout",
        description="Recall@N with the field's protocol: positives are database images within "
        "--threshold-m UTM metres; a query is correct at N when any of its top N is a positive; "
        "the denominator is all queries (queries without positives are counted and reported).",
        add_arguments=add_arguments,
        run=run,
        writes_results=True,
    )
)
