"""Where a query's re-ranking time goes: CPU time per stage, one thread (rootsift+mnn+ransac, top 100).

Uses the data of ``bench_rerank_speed.py`` (run it first: it renders the small city at
480x640, retrieves the top 100 and fills the HDF5 RootSIFT cache). Each stage runs on
its own, in one thread (BLAS and OpenCV held to one thread), and is timed in CPU time
(``time.process_time``), which other processes' load changes little:

- ``query_features``: the query's RootSIFT (image read, OpenCV SIFT, RootSIFT);
- ``hdf5_read``: reading 100 candidates' features from the HDF5 cache (what a database
  that does not fit in memory pays per query; the loop reads them once otherwise);
- ``matching``: mutual nearest neighbours of the query with 100 candidates
  (``match_many``: the GEMMs, the mutual check and the match lists);
- ``verification``: MAGSAC homographies of the 100 pairs;
- ``score``: the re-ranker's whole ``score`` call on candidates already in memory
  (matching + verification + Python; the norms cached per candidate).

    nice python benchmarks/profile_rerank_stages.py --data-dir /tmp/rr_city --queries 12
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    import cv2
    from threadpoolctl import threadpool_limits

    from vgloc.demo import cache_dir
    from vgloc.local.matching import Correspondences
    from vgloc.local.matching.batched import match_many
    from vgloc.rerank import resolve_reranker

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=cache_dir() / "synthetic" / "rerank-speed-small-480x640")
    ap.add_argument("--queries", type=int, default=12, help="queries profiled (from the 11th on)")
    ap.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    args = ap.parse_args()

    data = np.load(args.data_dir / "retrieval_resnet18_gem_top100.npz")
    db, qs = [str(p) for p in data["db_paths"]], [str(p) for p in data["q_paths"]]
    picked = range(10, min(len(qs), 10 + args.queries))
    cv2.setNumThreads(1)  # the whole point: the work itself, not how it spreads over cores
    h5 = str(args.data_dir / "rootsift.h5")
    try:
        rr = resolve_reranker("rootsift+mnn+ransac", h5, workers=1, prefetch=False)
    except TypeError:  # an older checkout (PYTHONPATH) without the prefetch option
        rr = resolve_reranker("rootsift+mnn+ransac", h5, workers=1)
    assert rr.extractor is not None and rr.cache is not None
    cpu = {s: 0.0 for s in ("query_features", "hdf5_read", "matching", "verification", "score")}

    def timed(stage: str, fn, *a):  # type: ignore[no-untyped-def]
        t0 = time.process_time()
        out = fn(*a)
        cpu[stage] += time.process_time() - t0
        return out

    with threadpool_limits(limits=1):
        rr.extractor.extract_path(qs[0])  # warm-up (OpenCV's first call)
        for qi in picked:
            query = timed("query_features", rr.extractor.extract_path, qs[qi])
            feats = timed("hdf5_read", lambda ids: [rr.cache.get(db[i]) for i in ids], data["ids"][qi])  # type: ignore[union-attr]
            results = timed("matching", match_many, rr.matcher, query, feats)
            corrs = [Correspondences.from_matches(query, f, r) for f, r in zip(feats, results, strict=True)]
            timed("verification", lambda cs: [rr.verifier.verify(c) for c in cs], corrs)
        rr.prepare([Path(p) for p in db], num_queries=len(picked), memory_budget_mb=2048.0)
        for qi in picked:
            rr.prepare_query(qs[qi])
            timed("score", rr.score, qs[qi], [db[i] for i in data["ids"][qi]])
    rr.close()
    ms = {s: round(1000.0 * v / len(picked), 1) for s, v in cpu.items()}
    print(json.dumps({"queries": len(picked), "cpu_ms_per_query": ms}, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps({"queries": len(picked), "cpu_ms_per_query": ms}, indent=2) + "\n")


if __name__ == "__main__":
    main()
