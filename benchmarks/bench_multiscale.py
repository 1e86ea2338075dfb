"""Extraction cost of multi-scale testing (``--scales``), scale sets timed interleaved (issue 13).

One network (default ResNet-18+GeM+FC512, random weights: speed does not depend on the
weights) describes the same real photos (the shared Lund set, 1024x768 JPEGs) at
``--image-size`` (default 480,640) once per scale set; every round runs every set once,
so load from other jobs hits them alike. Prints img/s per set and round, the median
time relative to the single scale, and the compute ratio sum(s^2) that a network whose
cost grows with pixels would give.

    nice python benchmarks/bench_multiscale.py --rounds 3 --out benchmarks/results/multiscale_cost.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from _machine import command_line, describe_machine, machine_info, write_results

from vgloc.describers import ExtractionOptions, MultiScaleDescriber, resolve_describer

SCALE_SETS = ("1", "0.5,1", "0.5,1,1.5", "0.526,0.588,1,1.7,1.9")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", default="resnet18+gem+fc512")
    ap.add_argument(
        "--images", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/lund-exif-gps"
    )
    ap.add_argument("--count", type=int, default=16, help="photos described per set and round")
    ap.add_argument("--size", default="480,640", help="H,W (the scale-1 size)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--scale-sets", nargs="+", default=list(SCALE_SETS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    paths = sorted(args.images.glob("*.jpg"))[: args.count]
    if len(paths) < args.count:
        raise SystemExit(f"need {args.count} JPEGs in {args.images}, found {len(paths)}")
    h, w = (int(v) for v in args.size.split(","))
    options = ExtractionOptions(
        image_size=(h, w), batch_size=args.batch, precision=args.precision, num_workers=0, progress=False
    )
    torch.manual_seed(0)
    net = resolve_describer(args.spec)
    sets = {text: tuple(float(s) for s in text.split(",")) for text in args.scale_sets}
    describers = {
        text: net if s == (1.0,) else MultiScaleDescriber(net, s, "avg") for text, s in sets.items()
    }
    for d in describers.values():  # warm-up: first-call costs (engine export, allocations) are not timed
        d.describe(paths[:2], options)
    seconds: dict[str, list[float]] = {text: [] for text in sets}
    for r in range(args.rounds):
        for text, d in describers.items():
            t0 = time.perf_counter()
            d.describe(paths, options)
            seconds[text].append(time.perf_counter() - t0)
            print(f"round {r + 1} scales {text}: {len(paths) / seconds[text][-1]:.2f} img/s", flush=True)
    base = statistics.median(seconds[args.scale_sets[0]])
    machine = machine_info()
    print(f"\n{describe_machine(machine)}\n")
    print(f"| scales (x {h}x{w}) | passes | sum(s^2) | img/s (median) | time vs scale {args.scale_sets[0]} |")
    print("|---|---|---|---|---|")
    rows = []
    for text, s in sets.items():
        med = statistics.median(seconds[text])
        row = {"scales": text, "passes": len(s), "sum_s2": sum(v * v for v in s), "img_per_s": len(paths) / med,
               "time_ratio": med / base, "seconds": seconds[text]}  # fmt: skip
        rows.append(row)
        print(
            f"| {text} | {len(s)} | {row['sum_s2']:.2f} | {row['img_per_s']:.2f} | {row['time_ratio']:.2f}x |"
        )
    write_results(args.out, command=command_line(), machine=machine, spec=args.spec, size=[h, w],
                  count=len(paths), precision=args.precision, rows=rows)  # fmt: skip


if __name__ == "__main__":
    main()
