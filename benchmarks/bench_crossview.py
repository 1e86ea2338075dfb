"""Cross-view losses and rotation invariance on a synthetic city (issue 15).

Trains ``tiny+gem+fc64`` two-branch networks for a fixed number of steps (so the load
from other jobs does not change the numbers) and evaluates each on the test split's
street views (``database``: four headings per place) against the split's aerial tiles
at 1, 4 and 8 test-time rotations. Runs:

- losses (tiles aligned with the street view at training, rotation range 0): contrastive,
  triplet hinge, DBL pair, DBL triplet, exhaustive DBL, symmetric InfoNCE;
- rotation invariance with exhaustive DBL: range 0 / 90 / 360 degrees, with and without
  the orientation head;
- the study's pair classifiers (``--runs classification:0:0,hybrid:0:0``; a fourth field
  sets the BCE negatives per street view, e.g. ``hybrid:0:0:all``; default 1): trained with
  ``bce`` on the same batches, evaluated by scoring every (street view, tile, rotation) pair
  (the classification network at 1 and 4 rotations only: each pair is a whole forward pass).
  ``score_s`` is the time to describe / score the test split at the largest K;
  ``--speed`` times the scoring per query of the three kinds interleaved (random weights).

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
from vgloc.crossview.evaluate import (
    _pair_orientation_errors,
    describe_pairs,
    metrics_from_scores,
    orientation_errors,
    retrieval_metrics,
    score_pairs,
)
from vgloc.crossview.network import (
    CrossViewConfig,
    CrossViewNet,
    build_crossview_net,
    load_any_crossview,
    load_crossview,
)
from vgloc.crossview.pairnet import PairClassifier, score_all_pairs
from vgloc.crossview.train import TrainSettings, train_crossview

LOSS_RUNS = ["contrastive", "triplet", "dbl_pair", "dbl_triplet", "exhaustive_dbl", "infonce"]
RI_RUNS = [(90.0, False), (360.0, False), (0.0, True), (90.0, True), (360.0, True)]
EVALS = [(1, "best"), (4, "best"), (8, "best"), (8, "mean")]
PAIR_ARCHS = ("classification", "hybrid")
# The classification network runs its backbone on every pair: 8 rotations would be 8x.
PAIR_EVALS = {"classification": [(1, "best"), (4, "best"), (4, "mean")], "hybrid": EVALS}


def _orientation(err: np.ndarray) -> dict[str, Any]:
    return {
        "median_orientation_error_deg": round(float(np.median(err)), 1),
        "orientation_histogram_10deg": np.histogram(err, bins=18, range=(0.0, 180.0))[0].tolist(),
    }


def run_pair(args: argparse.Namespace, arch: str, negatives: str, tmp: Path) -> dict[str, Any]:
    """Train one pair classifier with ``bce`` and evaluate it by scoring every pair."""
    cfg = CrossViewConfig("tiny+gem+fc64", ground_size=(64, 96), aerial_size=64, arch=arch)
    neg: Any = negatives if negatives == "all" else float(negatives)
    settings = TrainSettings(
        args.dataset, loss="bce", loss_args={"negatives": neg}, steps=args.steps,
        batch_size=args.batch_size, seed=args.seed,
    )  # fmt: skip
    t0 = time.perf_counter()
    ckpt = train_crossview(settings, cfg, tmp / f"{arch}-{negatives}")
    row: dict[str, Any] = {"arch": arch, "loss": "bce", "negatives": negatives, "rotation_range": 0.0}
    row["train_s"] = round(time.perf_counter() - t0, 1)
    net, _ = load_any_crossview(ckpt)
    assert isinstance(net, PairClassifier)
    pairs = load_pairs(args.dataset, "test", "database")
    evals = PAIR_EVALS[arch]
    k_max = max(k for k, _ in evals)
    t0 = time.perf_counter()
    scores, angles = score_pairs(net, pairs, samples=k_max)
    row["score_s"], row["score_k"] = round(time.perf_counter() - t0, 1), k_max
    for k, fusion in evals:
        sub, sub_angles = scores[:, :, :: k_max // k], angles[:: k_max // k]
        r = metrics_from_scores(sub.amax(-1) if fusion == "best" else sub.mean(-1), pairs.tile_of)
        r.update(_orientation(_pair_orientation_errors(sub, sub_angles, pairs.tile_of, pairs.heading)))
        row[f"K{k}-{fusion}"] = r
    row["queries"], row["tiles"] = len(pairs), len(pairs.tiles)
    print(json.dumps(row), flush=True)
    return row


def run_one(args: argparse.Namespace, loss: str, rotation: float, head: bool, tmp: Path) -> dict[str, Any]:
    """Train one embedding configuration and evaluate it at every test-time sampling of :data:`EVALS`."""
    cfg = CrossViewConfig(
        "tiny+gem+fc64", orientation_head=head, ground_size=(64, 96), aerial_size=64, rotation_range=rotation
    )
    settings = TrainSettings(
        args.dataset, loss=loss, steps=args.steps, batch_size=args.batch_size, seed=args.seed
    )
    t0 = time.perf_counter()
    ckpt = train_crossview(settings, cfg, tmp / f"{loss}-{rotation:g}-{int(head)}")
    train_s = round(time.perf_counter() - t0, 1)
    row: dict[str, Any] = {"arch": "embedding", "loss": loss, "rotation_range": rotation, "head": head}
    row["train_s"] = train_s
    # Describe once at 8 rotations; 4 and 1 rotations are subsets (every 2nd, the first).
    net, _ = load_crossview(ckpt)
    pairs = load_pairs(args.dataset, "test", "database")
    t0 = time.perf_counter()
    ground, tiles, angles = describe_pairs(net, pairs, samples=8)
    row["score_s"], row["score_k"] = round(time.perf_counter() - t0, 1), 8
    for k, fusion in EVALS:
        sub, sub_angles = tiles[:, :: 8 // k], angles[:: 8 // k]
        r = retrieval_metrics(ground, sub, pairs.tile_of, fusion)
        err = orientation_errors(net, ground, sub, sub_angles, pairs.tile_of, pairs.heading)
        r.update(_orientation(err))
        row[f"K{k}-{fusion}"] = r
    row["queries"], row["tiles"] = len(pairs), len(pairs.tiles)
    print(json.dumps(row), flush=True)
    return row


def speed(queries: int, tiles: int, repeats: int) -> dict[str, Any]:
    """Seconds per query to score ``tiles`` tiles (1 rotation), each network kind timed in turn, repeatedly.

    Random weights and inputs (the cost does not depend on training); per query: its own
    forward pass plus its share of describing the tiles, plus every (query, tile) pair's
    classifier call for the pair networks.
    """
    g, a = torch.randn(queries, 3, 64, 96), torch.randn(tiles, 3, 64, 64)
    nets = {
        arch: build_crossview_net(
            CrossViewConfig("tiny+gem+fc64", ground_size=(64, 96), aerial_size=64, arch=arch)
        )
        for arch in ("embedding", "hybrid", "classification")
    }
    times: dict[str, list[float]] = {arch: [] for arch in nets}
    with torch.no_grad():
        for _ in range(repeats):
            for arch, net in nets.items():
                net.eval()
                t0 = time.perf_counter()
                if isinstance(net, PairClassifier):
                    score_all_pairs(net, net.embed_ground(g), net.embed_aerial(a), pairs_per_call=256)
                else:
                    assert isinstance(net, CrossViewNet)
                    _ = net.encode_ground(g) @ net.encode_aerial(a).T
                times[arch].append((time.perf_counter() - t0) / queries)
    med = {arch: float(np.median(t)) for arch, t in times.items()}
    out = {"queries": queries, "tiles": tiles, "repeats": repeats, "s_per_query": med}
    out["ratio_to_embedding"] = {arch: round(v / med["embedding"], 1) for arch, v in med.items()}
    print(json.dumps(out), flush=True)
    return out


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
        help="subset, comma-separated LOSS:RANGE:HEAD (e.g. infonce:0:0,exhaustive_dbl:360:1); "
        "classification:0:0[:NEG] / hybrid:0:0[:NEG] train the pair classifiers",
    )
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--speed",
        action="store_true",
        help="only time scoring per query (embedding vs hybrid vs classification, interleaved)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    machine = machine_info()
    print(describe_machine(machine), flush=True)
    if args.speed:
        write_results(args.out, command=command_line(), machine=machine, speed=speed(16, 80, 5))
        return
    plan = [f"{loss}:0:0" for loss in LOSS_RUNS] + [f"exhaustive_dbl:{r:g}:{int(h)}" for r, h in RI_RUNS]
    plan += [f"{arch}:0:0" for arch in PAIR_ARCHS]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in args.runs.split(",") if args.runs else plan:
            name, rotation, head, *neg = run.split(":")
            if name in PAIR_ARCHS:
                rows.append(run_pair(args, name, neg[0] if neg else "1", Path(tmp)))
            else:
                rows.append(run_one(args, name, float(rotation), head == "1", Path(tmp)))
            write_results(args.out, command=command_line(), machine=machine, steps=args.steps, rows=rows)


if __name__ == "__main__":
    main()
