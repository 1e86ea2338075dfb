"""``vgloc soup``: average the weights of fine-tuned models (model soups, Wortsman et al. 2022)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from vgloc.cli.command import Command, register
from vgloc.cli.options import (
    add_extraction_options,
    add_option,
    add_runtime_options,
    extraction_options,
    positive_float,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``vgloc soup``."""
    p.add_argument(
        "models",
        type=Path,
        nargs="+",
        metavar="MODEL.pt",
        help="two or more models of one architecture: best_model.pt, snapshots/epoch_*.pt, last.pt/best.pt "
        "(training checkpoints), or authors' state dicts with --model SPEC",
    )
    p.add_argument(
        "--method",
        choices=["uniform", "greedy"],
        default="uniform",
        help="uniform: the mean of all models; greedy: best first, each next model kept only if the soup's "
        "validation R@1 does not drop (the paper's Recipe 1; needs --val) (default: uniform)",
    )
    p.add_argument("--out", type=Path, required=True, help="the soup's model file (e.g. soup.pt)")
    add_option(
        p,
        "--val",
        type=Path,
        default=None,
        help="dataset root with images/<val-split>/{database,queries*}: scores each model and the soup by "
        "R@1 (required for greedy; optional for uniform, for the record)",
    )
    p.add_argument(
        "--val-split",
        default="val",
        choices=["train", "val", "test"],
        help="split of --val to score on (default: val; scoring on test would pick by the test set)",
    )
    p.add_argument(
        "--domains", default=None, help="query folders to score, comma-separated (default: all queries*)"
    )
    p.add_argument(
        "--threshold-m", type=positive_float, default=25.0, help="positive radius in metres (default: 25)"
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="greedy: keep a model only if it raises the soup's R@1 (the authors' code); default: also on "
        "a tie (the paper's >=)",
    )
    p.add_argument(
        "--model",
        default=None,
        help="the architecture of authors' state dicts (a spec), or a published name whose preprocessing "
        "scores the models; vgloc model files and training checkpoints carry their own spec",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_extraction_options(p)
    add_runtime_options(p)


def _load_val(args: argparse.Namespace) -> tuple[Any, dict[str, Any]] | None:
    """The validation database and query domains, or None without ``--val``."""
    if args.val is None:
        return None
    from vgloc.evaluation import load_sets

    db, queries, _ = load_sets(args.val, args.val_split, None, None, progress=not args.no_progress)
    wanted = args.domains.split(",") if args.domains else list(queries)
    unknown = [d for d in wanted if d not in queries]
    if unknown:
        raise ValueError(
            f"query folder(s) {unknown} not in {args.val}/images/{args.val_split}; found: {sorted(queries)}"
        )
    return db, {d: queries[d] for d in wanted}


def run(args: argparse.Namespace) -> int:
    """Check the inputs, cook the soup, write it and print how it was made."""
    from vgloc.training.soup import ValidationScorer, inspect_ingredients, make_soup, save_soup

    # Cheap checks first: nothing is read before the command line is known to make sense.
    if len(args.models) < 2:
        raise ValueError(f"a soup needs at least 2 models, got {len(args.models)}")
    if args.method == "greedy" and args.val is None:
        raise ValueError("--method greedy needs --val DATASET (a root with a val split) to score the models")
    out = args.out.resolve()
    if any(m.resolve() == out for m in args.models):
        raise ValueError(f"--out {args.out} is one of the models; write the soup to another file")
    val = _load_val(args)
    ingredients = inspect_ingredients(args.models, args.model)
    scorer = None
    if val is not None:
        options = extraction_options(args)
        first = ingredients[0]
        scorer = ValidationScorer(
            first.spec, val[0], val[1], options, threshold_m=args.threshold_m, published=first.published
        )
    result = make_soup(ingredients, args.method, score=scorer, strict=args.strict, spec=args.model)
    extra: dict[str, Any] = {}
    if val is not None:
        extra["val"] = {
            "dataset": str(args.val),
            "split": args.val_split,
            "domains": list(val[1]),
            "threshold_m": float(args.threshold_m),
            # (H, W), "auto" or None (native size), as plain types for the model file's metadata
            "image_size": list(args.image_size) if isinstance(args.image_size, tuple) else args.image_size,
        }
    path = save_soup(result, args.out, extra)
    report = {
        "out": str(path),
        "method": result.method,
        "spec": result.spec,
        "score": result.score,
        "models": [
            {
                "path": str(ing.path),
                "r1": None if result.own_scores is None else result.own_scores[i],
                "kept": i in result.kept,
            }
            for i, ing in enumerate(result.ingredients)
        ],
        "greedy": [vars(s) for s in result.steps],
        "rule": ">" if result.strict else ">=",
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(_table(report))
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _table(report: dict[str, Any]) -> str:
    """The human-readable report: each model alone, the greedy trace, the soup."""
    lines = [f"{report['method']} soup of {len(report['models'])} {report['spec']} models -> {report['out']}"]
    if report["greedy"]:
        lines.append(f"greedy (validation R@1, keep if soup R@1 {report['rule']} before):")
        lines.append("  model | R@1 alone | soup without | soup with | kept")
        for s in report["greedy"]:
            lines.append(
                f"  {s['path']} | {_fmt(s['own'])} | {_fmt(s['without'])} | {_fmt(s['with_it'])} | "
                f"{'yes' if s['kept'] else 'no'}"
            )
    elif report["models"][0]["r1"] is not None:
        lines.append("validation R@1 alone:")
        lines += [f"  {m['path']}: {_fmt(m['r1'])}" for m in report["models"]]
    kept = sum(m["kept"] for m in report["models"])
    lines.append(f"soup: {kept} of {len(report['models'])} models, validation R@1 {_fmt(report['score'])}")
    return "\n".join(lines)


COMMAND = register(
    Command(
        name="soup",
        help="average the weights of fine-tuned models into one (uniform or greedy model soup)",
        description="Model soups (Wortsman et al., ICML 2022): one model whose weights are the mean of "
        "several fine-tuned models of one architecture (per-epoch snapshots, runs from the same start). "
        "uniform averages all; greedy sorts the models by validation R@1 on --val and adds each only if "
        "the soup's R@1 does not drop. The soup is a vgloc model file for eval/index build/locate/export "
        "--checkpoint and for training's model.weights.",
        add_arguments=add_arguments,
        run=run,
    )
)
