"""Cross-view losses and rotation invariance on a synthetic city (issue 15).

Trains ``tiny+gem+fc64`` two-branch networks for a fixed number of steps (so the load
from other jobs does not change the numbers) and evaluates each on the test split's
street views (``database``: four headings per place) against the split's aerial tiles
at 1, 4 and 8 test-time rotations. Runs:

- losses (tiles aligned with the street view at training, rotation range 0): contrastive,
  triplet hinge, DBL pair, DBL triplet, exhaustive DBL, symmetric InfoNCE;
- rotation invariance with exhaustive DBL: range 0 / 90 / 360 degrees, with and without
  the orientation head.

The city (about 2.5 min on 2 cores)::

    python -c "from vgloc.data.synthetic import generate_city, CitySize; generate_city(
        '/tmp/xv_bench_small', CitySize(4, 2, 2, 3, 16.0, 4, 0.5, 30.0), 0, image_size=(64, 96),
        aerial_size=64, aerial_extent_m=60.0, workers=1)"

then, e.g. (``--runs`` picks a subset; the BENCHMARKS numbers ran three such subsets side by side)::

    OMP_NUM_THREADS=1 nice python benchmarks/bench_crossview.py --dataset /tmp/xv_bench_small \
        --steps 150 --runs exhaustive_dbl:0:0,infonce:0:0 --out benchmarks/results/crossview_B.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _machine import command_line, describe_machine, machine_info, write_results

from vgloc.crossview.data import load_pairs
from vgloc.crossview.evaluate import describe_pairs, orientation_errors, retrieval_metrics
from vgloc.crossview.network import CrossViewConfig, load_crossview
from vgloc.crossview.train import TrainSettings, train_crossview

LOSS_RUNS = ["contrastive", "triplet", "dbl_pair", "dbl_triplet", "exhaustive_dbl", "infonce"]
RI_RUNS = [(90.0, False), (360.0, False), (0.0, True), (90.0, True), (360.0, True)]
EVALS = [(1, "best"), (4, "best"), (8, "best"), (8, "mean")]


def run_one(args: argparse.Namespace, loss: str, rotation: float, head: bool, tmp: Path) -> dict[str, Any]:
    """Train one configuration and evaluate it at every test-time sampling of :data:`EVALS`."""
    cfg = CrossViewConfig(
        "tiny+gem+fc64", orientation_head=head, ground_size=(64, 96), aerial_size=64, rotation_range=rotation
    )
    settings = TrainSettings(
        args.dataset, loss=loss, steps=args.steps, batch_size=args.batch_size, seed=args.seed
    )
    t0 = time.perf_counter()
    ckpt = train_crossview(settings, cfg, tmp / f"{loss}-{rotation:g}-{int(head)}")
    train_s = round(time.perf_counter() - t0, 1)
    row: dict[str, Any] = {"loss": loss, "rotation_range": rotation, "head": head, "train_s": train_s}
    # Describe once at 8 rotations; 4 and 1 rotations are subsets (every 2nd, the first).
    net, _ = load_crossview(ckpt)
    pairs = load_pairs(args.dataset, "test", "database")
    ground, tiles, angles = describe_pairs(net, pairs, samples=8)
    for k, fusion in EVALS:
        sub, sub_angles = tiles[:, :: 8 // k], angles[:: 8 // k]
        r = retrieval_metrics(ground, sub, pairs.tile_of, fusion)
        err = orientation_errors(net, ground, sub, sub_angles, pairs.tile_of, pairs.heading)
        r["median_orientation_error_deg"] = round(float(np.median(err)), 1)
        r["orientation_histogram_10deg"] = np.histogram(err, bins=18, range=(0.0, 180.0))[0].tolist()
        row[f"K{k}-{fusion}"] = r
    row["queries"], row["tiles"] = len(pairs), len(pairs.tiles)
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--orientation-weight", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--runs",
        default="",
        help="subset, comma-separated LOSS:RANGE:HEAD (e.g. infonce:0:0,exhaustive_dbl:360:1)",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    machine = machine_info()
    print(describe_machine(machine), flush=True)
    plan = [(loss, 0.0, False) for loss in LOSS_RUNS] + [("exhaustive_dbl", r, h) for r, h in RI_RUNS]
    if args.runs:
        plan = [
            (r.split(":")[0], float(r.split(":")[1]), r.split(":")[2] == "1") for r in args.runs.split(",")
        ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for loss, rotation, head in plan:
            rows.append(run_one(args, loss, rotation, head, Path(tmp)))
            write_results(args.out, command=command_line(), machine=machine, steps=args.steps, rows=rows)


if __name__ == "__main__":
    main()
