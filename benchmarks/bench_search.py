"""Benchmark vgloc's FAISS indexes: build time, latency, recall against the exact index, memory.

For each data kind (``random``: uniform unit vectors, the worst case for quantisation;
``clustered``: a Gaussian mixture on the sphere, closer to real place descriptors) and
each database size N, it builds every configured index, searches 1,000 queries as one
batch and a subset one at a time, and compares with the exact top-10 (``Flat``).

Recall@1 is the share of queries whose top-1 is the exact top-1; Recall@10 is the mean
share of the exact top-10 found in the approximate top-10. Memory is the size of
``faiss.serialize_index`` divided by the number of vectors.

Example (what BENCHMARKS.md reports)::

    nice python benchmarks/bench_search.py --sizes 100000 1000000 \\
        --out benchmarks/results/search.json

Configurations are ``FACTORY[:PARAMS;PARAMS...]``, e.g. ``"IVF1024,PQ64:nprobe=16;nprobe=64"``;
``rerank=C`` in PARAMS re-scores the top C candidates exactly with the database
descriptors (what ``GeoIndex.search`` does for a ``factory="auto"`` index).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from vgloc.index import (
    add_vectors,
    apply_search_params,
    exact_search,
    knn_overlap_at_k,
    knn_recall_at_1,
    make_index,
    search,
    train_index,
)
from vgloc.index.auto import rerank_exact
from vgloc.io import write_json_atomic

# "np": skip polysemous training (minutes, only for the ht= parameter; same codes otherwise).
DEFAULT_CONFIGS = [
    "Flat",
    "IVF1024,PQ64np:nprobe=16;nprobe=64",
    "IVF4096,PQ32np:nprobe=16;nprobe=64",
    "HNSW32:efSearch=64;efSearch=128",
]
K = 10
CHUNK = 100_000


def unit_random(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors uniform on the sphere, float32, generated in chunks."""
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, CHUNK):
        x = rng.standard_normal((min(CHUNK, n - s), dim), dtype=np.float32)
        out[s : s + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def unit_mixture(
    n: int, centers: np.ndarray, spread: float, rng: np.random.Generator, labels: np.ndarray | None = None
) -> np.ndarray:
    """``n`` unit vectors ``normalise(c + spread * g / sqrt(D))`` around random centres.

    ``labels``, when given (an (n,) int array), receives each vector's centre: the
    "place" it shows, for the place-recognition R@1 (same random draws either way).
    """
    k, dim = centers.shape
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, CHUNK):
        m = min(CHUNK, n - s)
        which = rng.integers(0, k, m)
        if labels is not None:
            labels[s : s + m] = which
        x = centers[which] + rng.standard_normal((m, dim), dtype=np.float32) * (spread / np.sqrt(dim))
        out[s : s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def make_data(
    kind: str, n: int, n_queries: int, dim: int, args: argparse.Namespace
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Database (n, dim), queries (n_queries, dim) of one kind, seeded, and their places.

    Places (clustered data only, else None) are the mixture components: a database
    vector is a *positive* of a query when both come from the same component.
    """
    rng = np.random.default_rng(args.seed)
    if kind == "random":
        return unit_random(n, dim, rng), unit_random(n_queries, dim, rng), None, None
    centers = unit_random(args.clusters, dim, rng)
    db_places, q_places = np.empty(n, np.int64), np.empty(n_queries, np.int64)
    db = unit_mixture(n, centers, args.spread, rng, db_places)
    return db, unit_mixture(n_queries, centers, args.spread, rng, q_places), db_places, q_places


def place_recall_at_1(ids: np.ndarray, db_places: np.ndarray | None, q_places: np.ndarray | None) -> float:
    """Place-recognition R@1: share of queries whose top-1 shows the query's place (NaN: no places)."""
    if db_places is None or q_places is None:
        return float("nan")
    top = ids[:, 0]
    return float(np.mean((top >= 0) & (db_places[np.maximum(top, 0)] == q_places)))


def parse_config(text: str) -> tuple[str, list[str | None]]:
    factory, _, params = text.partition(":")
    return factory.strip(), [p.strip() for p in params.split(";") if p.strip()] or [None]


def split_rerank(params: str | None) -> tuple[str | None, int]:
    """``"nprobe=16,rerank=100"`` -> ``("nprobe=16", 100)``: ``rerank`` is this script's own
    parameter (re-score that many candidates exactly with the database descriptors, as
    :meth:`vgloc.index.GeoIndex.search` does for an ``"auto"`` index), not FAISS's."""
    if not params:
        return params, 0
    keep, rerank = [], 0
    for item in params.split(","):
        name, _, value = item.partition("=")
        if name.strip() == "rerank":
            rerank = int(value)
        else:
            keep.append(item)
    return ",".join(keep) or None, rerank


def _search(
    index: faiss.Index, queries: np.ndarray, rerank: int, db: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    if not rerank:
        return search(index, queries, K, None)
    _, ids = search(index, queries, max(K, rerank), None)
    return rerank_exact(db, queries, ids, K)


def timed_search(
    index: faiss.Index,
    queries: np.ndarray,
    n_single: int,
    single_budget_s: float,
    rerank: int = 0,
    db: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float, float, int]:
    """Batch search of all queries, then the first queries one at a time.

    Single queries are timed until ``n_single`` are done or ``single_budget_s`` has
    passed (at least 5), so that a slow exact search at 1M does not dominate the run.
    With ``rerank``, the timings include the exact re-scoring of that many candidates
    against ``db``.

    Returns:
        (sims, ids, batch ms/query, single-query mean ms, number of single queries timed).
    """
    if rerank and db is None:
        raise ValueError("rerank needs the database descriptors")
    db_ = db if db is not None else np.zeros((0, index.d), np.float32)
    _search(index, queries[:10], rerank, db_)  # warm-up: first-touch allocations, lazy tables
    t0 = time.perf_counter()
    sims, ids = _search(index, queries, rerank, db_)
    batch_ms = (time.perf_counter() - t0) * 1e3 / len(queries)
    times: list[float] = []
    started = time.perf_counter()
    for i in range(min(n_single, len(queries))):
        if len(times) >= 5 and time.perf_counter() - started > single_budget_s:
            break
        t0 = time.perf_counter()
        _search(index, queries[i : i + 1], rerank, db_)
        times.append(time.perf_counter() - t0)
    single_ms = float(np.mean(times) * 1e3) if times else float("nan")
    return sims, ids, batch_ms, single_ms, len(times)


def skipped(skip: list[str], kind: str, factory: str, n: int) -> bool:
    """Whether ``[KIND/]FACTORY@N`` in ``skip`` names this run."""
    for entry in skip:
        target, _, size = entry.rpartition("@")
        data, _, fac = target.rpartition("/")
        if fac == factory and size == str(n) and data in ("", kind):
            return True
    return False


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for kind in args.data:
        for n in args.sizes:
            t0 = time.perf_counter()
            db, queries, db_places, q_places = make_data(kind, n, args.queries, args.dim, args)
            logging.info("%s N=%d: data in %.1f s", kind, n, time.perf_counter() - t0)
            exact_ids: np.ndarray | None = None
            exact_place_r1 = float("nan")
            for config in args.configs:
                factory, param_list = parse_config(config)
                if skipped(args.skip, kind, factory, n):
                    logging.info("skipping %s/%s at N=%d (--skip)", kind, factory, n)
                    continue
                index = make_index(args.dim, factory)
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # below-recommended sample sizes are reported
                    n_train = train_index(
                        index, db, train_sample=args.train_sample, seed=args.seed, factory=factory
                    )
                train_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                add_vectors(index, db)
                add_s = time.perf_counter() - t0
                bytes_per_vector = faiss.serialize_index(index).size / index.ntotal
                logging.info("%s N=%d %s: train %.1f s, add %.1f s", kind, n, factory, train_s, add_s)
                if exact_ids is None:
                    if factory == "Flat":
                        exact_ids = search(index, queries, K, None)[1]
                    else:
                        exact_ids = exact_search(db, queries, K)[1]
                    exact_place_r1 = place_recall_at_1(exact_ids, db_places, q_places)
                for params in param_list:
                    faiss_params, rerank = split_rerank(params)
                    if faiss_params:
                        apply_search_params(index, faiss_params, strict=True)
                    _, ids, batch_ms, single_ms, n_single = timed_search(
                        index, queries, args.single_queries, args.single_budget, rerank, db
                    )
                    place_r1 = place_recall_at_1(ids, db_places, q_places)
                    row = {
                        "data": kind,
                        "n": n,
                        "dim": args.dim,
                        "factory": factory,
                        "params": params or "",
                        "train_vectors": n_train,
                        "train_s": round(train_s, 2),
                        "add_s": round(add_s, 2),
                        "build_s": round(train_s + add_s, 2),
                        "batch_ms_per_query": round(batch_ms, 4),
                        "single_ms_per_query": round(single_ms, 3),
                        "single_queries_timed": n_single,
                        "recall_at_1": knn_recall_at_1(ids, exact_ids),
                        "recall_at_10": knn_overlap_at_k(ids, exact_ids, K),
                        "bytes_per_vector": round(bytes_per_vector, 1),
                        "place_recall_at_1": place_r1,
                        "place_r1_vs_exact": place_r1 / exact_place_r1
                        if exact_place_r1 > 0
                        else float("nan"),
                    }
                    results.append(row)
                    logging.info("%s", row)
                del index
            del db, queries
    return {"results": results}


def machine_info() -> dict[str, Any]:
    model = platform.processor() or ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "cpu_model": model,
        "logical_cpus": os.cpu_count(),
        "faiss_threads": faiss.omp_get_max_threads(),
        "faiss_version": faiss.__version__,
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def markdown(results: list[dict[str, Any]]) -> str:
    head = (
        "| data | N | index | params | build s (train+add) | batch ms/q | single ms/q "
        "| R@1 | R@10 | bytes/vec | place R@1 (vs exact) |\n|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in results:
        lines.append(
            f"| {r['data']} | {r['n']:,} | {r['factory']} | {r['params'] or '-'} "
            f"| {r['build_s']:.1f} ({r['train_s']:.1f}+{r['add_s']:.1f}) "
            f"| {r['batch_ms_per_query']:.3f} | {r['single_ms_per_query']:.2f} "
            f"| {r['recall_at_1']:.3f} | {r['recall_at_10']:.3f} | {r['bytes_per_vector']:.0f} "
            f"| {r['place_recall_at_1']:.3f} ({r['place_r1_vs_exact']:.3f}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--single-queries", type=int, default=200, help="queries timed one at a time")
    p.add_argument(
        "--single-budget", type=float, default=10.0, help="seconds for single-query timing per row"
    )
    p.add_argument("--data", nargs="+", choices=["random", "clustered"], default=["random", "clustered"])
    p.add_argument("--clusters", type=int, default=1000, help="mixture components (clustered)")
    p.add_argument(
        "--spread", type=float, default=1.0, help="noise norm around a centre (clustered): cos ~ 0.71"
    )
    p.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    p.add_argument("--train-sample", type=int, default=250_000, help="training vectors (capped at N)")
    p.add_argument(
        "--skip",
        nargs="*",
        default=[],
        help="[KIND/]FACTORY@N runs to leave out, e.g. HNSW32@1000000 or random/HNSW32@1000000",
    )
    p.add_argument("--threads", type=int, default=None, help="FAISS threads (default: FAISS's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if args.threads is not None:
        faiss.omp_set_num_threads(args.threads)  # a script, not a library: globals are fine
    started = time.perf_counter()
    load_before = os.getloadavg()
    report = run(args)
    report.update(
        {
            "command": " ".join(["python", *sys.argv]),
            "machine": machine_info(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "total_s": round(time.perf_counter() - started, 1),
            # other jobs share the machine: the load average says how far to trust timings
            "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
            "loadavg_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
            "k": K,
        }
    )
    print(markdown(report["results"]))
    if args.out is not None:
        write_json_atomic(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
