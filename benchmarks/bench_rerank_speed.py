"""Re-ranking speed, BEFORE vs AFTER, side by side: top-100 SIFT-class re-ranking at 480x640.

Data: the small synthetic city rendered at 480x640 (``generate_city(..., 'small', 0,
image_size=(480, 640))``), test split: 460 database images, 58 day queries, positives
within 25 m. Retrieval: ``resnet18+gem`` (random initialisation, seed 0; native
480x640), exact search, top 100. The database's local features are extracted once
into an HDF5 :class:`~vgloc.local.FeatureCache` (warm cache: nothing is extracted in
the timed loop except each query's own features).

Each side runs :func:`vgloc.rerank.run.score_candidates` (the loop ``vgloc eval
--rerank`` uses) in a fresh subprocess: BEFORE with ``PYTHONPATH`` pointing at another
checkout (e.g. ``git worktree add /tmp/rr_before <old commit>``), AFTER with this
one. The queries are split into chunks and the two sides alternate chunk by chunk
(interleaved), so both see the same machine load. Reported: the wall time per query
of the whole ``score_candidates`` call (query features + matching + verification;
the database features are read from HDF5 into memory before the clock starts, as
offline), the process CPU time per query over all threads (the work done, nearly
independent of other processes' load), the loop's
own ``ms_per_query``, Recall@1/5/10 before and after re-ranking, the speed ratio, and
whether both sides produced the same order.

    nice python benchmarks/bench_rerank_speed.py --before-src /tmp/rr_before/src
    nice python benchmarks/bench_rerank_speed.py --before-src /tmp/rr_before/src --after-options '{"exact_top": 10}'
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SPEC = "rootsift+mnn+ransac"
RECALLS = (1, 5, 10)
HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def prepare(data_dir: Path, k: int) -> tuple[Path, Path]:
    """Render the city, retrieve the top ``k`` and fill the HDF5 cache (all skipped when done).

    Returns:
        ``(retrieval .npz, feature cache .h5)``.
    """
    from vgloc.api import ExtractionOptions, build_index, compute_descriptors
    from vgloc.data import load_split
    from vgloc.data.synthetic import generate_city
    from vgloc.geo import positives_within
    from vgloc.rerank import Reranker

    root = generate_city(data_dir / "city", "small", 0, image_size=(480, 640), progress=False)
    split = load_split(root, "test", progress=False)
    db, qs = split.database, split.queries["queries"]
    npz = data_dir / f"retrieval_resnet18_gem_top{k}.npz"
    if not npz.exists():
        options = ExtractionOptions(image_size=None, progress=False)
        index = build_index(db, "resnet18+gem", options=options, validate=False, seed=0)
        assert index.model is not None
        sims, ids = index.search(compute_descriptors(index.model, qs.paths, options, queries=True), k)
        pos = positives_within(db.utm, qs.utm, 25.0)
        flat = np.concatenate(pos) if len(pos) else np.zeros(0, np.int64)
        np.savez(
            npz,
            ids=ids,
            sims=sims,
            q_paths=np.array([str(p) for p in qs.paths]),
            db_paths=np.array([str(p) for p in db.paths]),
            pos_flat=flat.astype(np.int64),
            pos_len=np.array([len(p) for p in pos], np.int64),
        )
    h5 = data_dir / "rootsift.h5"
    reranker = Reranker(SPEC, cache=h5)
    try:
        assert reranker.cache is not None
        reranker.cache.extract_all(db.paths)
    finally:
        reranker.close()
    return npz, h5


def worker(npz: Path, h5: Path, start: int, stop: int, k: int, options: dict) -> dict:
    """Re-rank queries ``start:stop`` with the vgloc on ``sys.path`` (one side of the comparison)."""
    from threadpoolctl import threadpool_limits

    from vgloc.rerank import resolve_reranker
    from vgloc.rerank.run import score_candidates

    data = np.load(npz)
    q_paths = [str(p) for p in data["q_paths"][start:stop]]
    db_paths = [str(p) for p in data["db_paths"]]
    ids, sims = data["ids"][start:stop], data["sims"][start:stop]
    reranker = resolve_reranker(SPEC, str(h5), **options)
    # The database features are read from the HDF5 cache into memory before the clock
    # starts (as the loop does itself, and as a deployment does once).
    head = ids[:, :k]
    unique = np.unique(head[head >= 0])
    reranker.prepare([Path(db_paths[i]) for i in unique], num_queries=len(q_paths), memory_budget_mb=2048.0)
    with threadpool_limits(limits=2):
        t0, c0 = time.perf_counter(), time.process_time()
        scored = score_candidates(q_paths, db_paths, ids, sims, reranker, k=k, keep_features=True)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    reranker.close()
    rr = scored.rerank(k)
    return {
        "n": len(q_paths),
        "wall_s": wall,
        "cpu_s": cpu,
        # Pairs left unverified by an early exit (-1 inliers; there are no empty slots here).
        "skipped": int((scored.inliers == -1).sum()),
        "loop_ms_per_query": rr.ms_per_query,
        "query_ms": scored.query_ms.tolist(),
        "predictions": rr.predictions[:, :k].tolist(),
        "inliers": scored.inliers.tolist(),
    }


def recall(preds: np.ndarray, pos: list[np.ndarray]) -> dict[int, float]:
    """Recall@N in percent for N in :data:`RECALLS`."""
    return {
        n: 100.0 * float(np.mean([np.isin(p[:n], t).any() for p, t in zip(preds, pos, strict=True)]))
        for n in RECALLS
    }


def run_side(src: Path, npz: Path, h5: Path, start: int, stop: int, k: int, options: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{HERE}"}
    cmd = [sys.executable, __file__, "--worker", str(npz), str(h5), str(start), str(stop), str(k)]
    cmd.append(json.dumps(options))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"worker failed ({src}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        npz, h5, start, stop, k, opts = sys.argv[2:8]
        print(json.dumps(worker(Path(npz), Path(h5), int(start), int(stop), int(k), json.loads(opts))))
        return
    from _machine import cpu_name  # benchmarks/ is on sys.path when a script runs

    from vgloc.demo import cache_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before-src", type=Path, required=True, help="the 'src' folder of the BEFORE checkout")
    ap.add_argument("--after-src", type=Path, default=SRC, help="the 'src' folder of the AFTER checkout")
    ap.add_argument("--data-dir", type=Path, default=cache_dir() / "synthetic" / "rerank-speed-small-480x640")
    ap.add_argument("--k", type=int, default=100, help="candidates re-ranked per query")
    ap.add_argument("--chunks", type=int, default=4, help="query chunks; the sides alternate per chunk")
    ap.add_argument("--queries", type=int, default=0, help="use only the first N queries (0: all)")
    ap.add_argument("--after-options", default="{}", help="JSON re-ranker options for the AFTER side")
    ap.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    args = ap.parse_args()

    args.data_dir.mkdir(parents=True, exist_ok=True)
    npz, h5 = prepare(args.data_dir, args.k)
    data = np.load(npz)
    nq = len(data["q_paths"]) if args.queries <= 0 else min(args.queries, len(data["q_paths"]))
    pos = np.split(data["pos_flat"], np.cumsum(data["pos_len"])[:-1])[:nq]
    bounds = np.linspace(0, nq, args.chunks + 1).astype(int)
    after_options = json.loads(args.after_options)
    sides = {"before": (args.before_src, {}), "after": (args.after_src, after_options)}
    results: dict[str, list[dict]] = {s: [] for s in sides}
    load0 = os.getloadavg()
    for c, (a, b) in enumerate(itertools.pairwise(bounds)):
        # Alternate which side goes first, so neither always meets the same neighbour load.
        order = list(sides) if c % 2 == 0 else list(reversed(sides))
        for side in order:
            src, opts = sides[side]
            r = run_side(src, npz, h5, int(a), int(b), args.k, opts)
            results[side].append(r)
            print(f"chunk {c} {side}: {r['wall_s'] / r['n']:.3f} s/query", file=sys.stderr)
    load1 = os.getloadavg()
    summary = {}
    for side, rs in results.items():
        n = sum(r["n"] for r in rs)
        preds = np.array([p for r in rs for p in r["predictions"]])
        summary[side] = {
            "s_per_query": sum(r["wall_s"] for r in rs) / n,
            "cpu_s_per_query": sum(r["cpu_s"] for r in rs) / n,
            "skipped_per_query": sum(r["skipped"] for r in rs) / n,
            "loop_ms_per_query": sum(r["loop_ms_per_query"] * r["n"] for r in rs) / n,
            "query_features_ms": float(np.mean([m for r in rs for m in r["query_ms"]])),
            "recall": recall(preds, pos),
            "preds": preds,
        }
    base = recall(data["ids"][:nq], pos)
    same_top1 = float(np.mean(summary["before"]["preds"][:, 0] == summary["after"]["preds"][:, 0]))
    same_order = float(np.mean(np.all(summary["before"]["preds"] == summary["after"]["preds"], axis=1)))
    ratio = summary["before"]["s_per_query"] / summary["after"]["s_per_query"]
    cpu_ratio = summary["before"]["cpu_s_per_query"] / summary["after"]["cpu_s_per_query"]
    # (as run: whether it ran under nice is not visible from inside, so none is claimed)
    command = "python " + " ".join(shlex.quote(x) for x in [Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    lines = [
        f"Command: `{command}`",
        f"Machine: {cpu_name()}, {len(os.sched_getaffinity(0))} cores; load {load0[0]:.1f} -> {load1[0]:.1f}",
        f"Small synthetic city at 480x640, test split, {nq} day queries, {SPEC} top-{args.k} "
        f"(retrieval resnet18+gem random init: R@1/5/10 {base[1]:.1f}/{base[5]:.1f}/{base[10]:.1f})\n",
        "| side | s/query (wall) | CPU s/query (all threads) | loop ms/query | query features ms | R@1 | R@5 | R@10 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for side in sides:
        s = summary[side]
        r = s["recall"]
        lines.append(
            f"| {side} | {s['s_per_query']:.3f} | {s['cpu_s_per_query']:.3f} | {s['loop_ms_per_query']:.0f} | {s['query_features_ms']:.0f} | "
            f"{r[1]:.1f} | {r[5]:.1f} | {r[10]:.1f} |"
        )
    lines.append(
        f"\nspeed ratio (before / after): wall {ratio:.2f}x, CPU time {cpu_ratio:.2f}x; same top-1: {100 * same_top1:.0f} %; "
        f"same top-{args.k} order: {100 * same_order:.0f} % of queries; AFTER options: {after_options}; "
        f"pairs skipped by an early exit: {summary['after']['skipped_per_query']:.1f} per query"
    )
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        for s in summary.values():
            s.pop("preds")
        payload = {"markdown": text, "summary": summary, "ratio": ratio, "cpu_ratio": cpu_ratio}
        args.out.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
