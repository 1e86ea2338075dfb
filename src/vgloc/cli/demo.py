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
    p.add_argument("--model", default="resnet18+gem", help="model spec (default: resnet18+gem, random init)")
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
        dataset_dir=args.dataset,
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


COMMAND = register(
    Command(
        name="demo",
        help="run the whole pipeline on the built-in synthetic city (the quickest real run)",
        description="Generate (or reuse, from the cache folder) a small synthetic city, index its test "
        "database, geolocate every query domain, print Recall@N per domain and write an HTML report.",
        add_arguments=add_arguments,
        run=run,
        writes_results=True,
    )
)
