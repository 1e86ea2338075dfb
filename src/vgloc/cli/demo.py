"""``vgloc demo``: the whole pipeline on the built-in synthetic city."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vgloc.cli.command import Command, register
from vgloc.cli.options import add_extraction_options, add_option, add_runtime_options, extraction_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``vgloc demo``."""
    p.add_argument(
        "--size",
        default="small",
        choices=["tiny", "small", "medium", "large"],
        help="city size (default: small)",
    )
    p.add_argument(
        "--model",
        default="tiny+gem",
        help="model spec, evaluated with random weights and after a short training run (default: tiny+gem)",
    )
    train = p.add_mutually_exclusive_group()
    train.add_argument(
        "--train-minutes",
        type=float,
        default=1.5,
        metavar="M",
        help="budget of the CosPlace training run on the city's train split (checked after each epoch, "
        "the first always runs; default: 1.5, the whole demo then stays under 5 min on 2 cores)",
    )
    train.add_argument(
        "--no-train",
        action="store_true",
        help="skip training: show the untrained model only (--train-minutes 0)",
    )
    add_option(
        p,
        "--dataset",
        type=Path,
        default=None,
        help="dataset root where the city is generated, or reused if it is there (default: the cache folder)",
    )
    add_extraction_options(
        p,
        default_size="native",
        default_batch=32,
        size_note="the rendered images' own size",
        auto_note="auto = bf16 + channels-last on CPUs with native bf16, fp16 on CUDA, else fp32",
    )
    add_runtime_options(p)


def run(args: argparse.Namespace) -> int:
    """Run :func:`vgloc.demo.run_demo` and print its Recall@N table and outputs."""
    from vgloc.demo import run_demo

    t0 = time.perf_counter()
    minutes = 0.0 if args.no_train else args.train_minutes
    if not minutes >= 0:
        raise ValueError(f"--train-minutes must be >= 0 (0: no training), got {args.train_minutes}")
    # precision "auto" is already the hardware's fast path (bf16 + channels-last where bf16 is native).
    options = extraction_options(args)
    precision = options.precision
    demo = run_demo(
        args.run_dir,
        size=args.size,
        seed=args.seed,
        model=args.model,
        dataset_dir=args.dataset,
        options=options,
        progress=not args.no_progress,
        train_minutes=minutes,
    )
    r = demo.result
    print(
        f"\nvgloc demo: {r.model_spec} ({precision}) on the synthetic city [{args.size}, test split], "
        f"{r.num_database} database images, positives within {r.threshold_m:g} m"
    )
    if demo.trained is not None and demo.training is not None:
        print(f"trained: {demo.training.describe()}")
    else:
        print(f"only the untrained model: {demo.note}")
    print("chance = what a random ranking would score for the same positives\n")
    print(demo.table())
    print(f"\ndataset: {demo.dataset}\nindex:   {demo.index}")
    if demo.trained_index is not None:
        print(f"trained index: {demo.trained_index}")
    if demo.training is not None:
        print(f"training run: {demo.training.run_dir}")
    print(f"report:  {demo.report}")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


COMMAND = register(
    Command(
        name="demo",
        help="run the whole pipeline on the built-in synthetic city (the quickest real run)",
        description="Generate (or reuse, from the cache folder) a small synthetic city; index its test "
        "database and geolocate every query domain with a randomly initialised model, then with the same "
        "model after a short CosPlace training run on the train split (best epoch chosen on val); print "
        "Recall@N per domain for both next to the chance level and write an HTML report of both side by side.",
        add_arguments=add_arguments,
        run=run,
        writes_results=True,
    )
)
