"""Benchmark Recall@N ground truth and scoring: vgloc vs sklearn radius_neighbors + a loop.

A city-sized area (``--side`` metres square, UTM-like coordinates) holds ``--db``
database points and ``--queries`` query points, uniform; positives are the database
points within ``--radius`` metres (25 m, the field's threshold). Predictions are
(Q, 20) rankings that mix a few positives with random database indices, so every
rank position gets exercised.

Two pipelines run side by side on the same data, and must give the same R@N:

* reference: ``sklearn.neighbors.NearestNeighbors(algorithm="kd_tree")
  .radius_neighbors(sort_results=True)`` and a Python loop per query (``np.isin``),
  as in the VG benchmark's test.py and vgloc before issue 10;
* vgloc: :func:`vgloc.geo.positives_within` and :func:`vgloc.evaluation.recall.recall_at_n`.

Example (what BENCHMARKS.md reports)::

    nice python benchmarks/bench_recall.py --out benchmarks/results/recall.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from vgloc.evaluation.recall import recall_at_n
from vgloc.geo.search import positives_within

RECALL_VALUES = (1, 5, 10, 20)


def reference(
    db_xy: np.ndarray, q_xy: np.ndarray, radius: float, predictions: np.ndarray
) -> tuple[dict, float, float]:
    """sklearn radius search + a Python loop per query; returns (recalls, positives_s, recall_s)."""
    from sklearn.neighbors import NearestNeighbors

    t0 = time.perf_counter()
    knn = NearestNeighbors(algorithm="kd_tree").fit(db_xy)
    _, pos = knn.radius_neighbors(q_xy, radius=radius, sort_results=True)
    t1 = time.perf_counter()
    ranks = np.full(len(predictions), -1)
    for q, (row, p) in enumerate(zip(predictions, pos, strict=True)):
        hits = np.flatnonzero(np.isin(row, p) & (row >= 0))
        if hits.size:
            ranks[q] = hits[0]
    found = ranks >= 0
    recalls = {n: float(100.0 * np.mean(found & (ranks < n))) for n in RECALL_VALUES}
    return recalls, t1 - t0, time.perf_counter() - t1


def ours(
    db_xy: np.ndarray, q_xy: np.ndarray, radius: float, predictions: np.ndarray
) -> tuple[dict, float, float]:
    t0 = time.perf_counter()
    pos = positives_within(db_xy, q_xy, radius)
    t1 = time.perf_counter()
    recalls = recall_at_n(predictions, pos, RECALL_VALUES)
    return recalls, t1 - t0, time.perf_counter() - t1


def make_data(n_db: int, n_q: int, side: float, radius: float, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    origin = np.array([400_000.0, 4_500_000.0])  # UTM-sized numbers, as real data has
    db = origin + rng.uniform(0, side, (n_db, 2))
    q = origin + rng.uniform(0, side, (n_q, 2))
    # Rankings: random database indices, with the nearest database point planted at a
    # random rank for two queries in three (so R@N spans a useful range).
    from scipy.spatial import cKDTree

    _, nearest = cKDTree(db).query(q, k=1, workers=-1)
    predictions = rng.integers(0, n_db, size=(n_q, max(RECALL_VALUES)))
    plant = rng.random(n_q) < 2 / 3
    rank = rng.integers(0, max(RECALL_VALUES), n_q)
    predictions[plant, rank[plant]] = nearest[plant]
    return db, q, predictions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--side", type=float, default=5_000.0, help="side of the square area, metres")
    ap.add_argument("--radius", type=float, default=25.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    db, q, predictions = make_data(args.db, args.queries, args.side, args.radius, args.seed)
    rows: dict[str, list[tuple[float, float]]] = {"reference": [], "vgloc": []}
    results = {}
    for _ in range(args.repeats):
        for name, fn in (("reference", reference), ("vgloc", ours)):
            r, t_pos, t_rec = fn(db, q, args.radius, predictions)
            rows[name].append((t_pos, t_rec))
            results[name] = r
    if results["reference"] != results["vgloc"]:
        raise SystemExit(f"R@N differ: {results}")
    summary = {}
    for name, times in rows.items():
        t = np.array(times)
        best = t[np.argmin(t.sum(axis=1))]
        summary[name] = {
            "positives_s": round(float(best[0]), 3),
            "recall_s": round(float(best[1]), 3),
            "total_s": round(float(best.sum()), 3),
        }
        print(
            f"{name:>9}: positives {best[0]:.3f} s + recall {best[1]:.3f} s = {best.sum():.3f} s (best of {args.repeats})"
        )
    print(f"R@N (identical): {results['vgloc']}")
    print(f"speed-up vs reference: {summary['reference']['total_s'] / summary['vgloc']['total_s']:.2f}x")
    if args.out:
        import sys

        sys.path.insert(0, str(Path(__file__).parent))
        from _machine import cpu_name

        from vgloc.io import write_json_atomic

        write_json_atomic(
            args.out,
            {
                "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "cpu": cpu_name(),
                "results": summary,
                "recall": results,
            },
        )


if __name__ == "__main__":
    main()
