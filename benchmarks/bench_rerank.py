"""Re-ranking on the Lund photos: weight-free RootSIFT+VLAD retrieval, then local-feature re-rankers.

Database: odd frames (01, 03, ..., 29); queries: even frames (02, ..., 28);
positives: database images within 25 m (UTM from EXIF GPS). Retrieval ranks the
whole database (K = 15), and each re-ranker re-orders all of it.

Timing: ``ms/query`` is the re-ranking wall time per query (query feature
extraction + K matches + K verifications); the database features are extracted
into an HDF5 cache beforehand, as a deployment would do offline, and that cost is
reported separately per image. The VLAD row's time is describing a query plus the
inner-product search. The median top-1 error (metres between a query and its top-1
database image) separates methods that all reach 100 % at 25 m on this small walk.

    python benchmarks/bench_rerank.py                       # all default specs
    python benchmarks/bench_rerank.py --specs rootsift+mnn+ransac,orb+mnn+rss --out results.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _machine import cpu_name  # benchmarks/ is on sys.path when a script runs

from vgloc.data import load_image_set
from vgloc.evaluation.recall import recall_at_n
from vgloc.geo import positives_within
from vgloc.local import ClassicalVLAD, FeatureCache
from vgloc.rerank import Reranker, rerank_predictions

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lund-exif-gps"
DEFAULT_SPECS = (
    "sift+mnn+ransac",
    "rootsift+mnn+ransac",
    "rootsift+ratio+ransac",
    "sift+ratio+fundamental",
    "rootsift+ratio+fundamental",
    "orb+mnn+ransac",
    "akaze+mnn+ransac",
    "rootsift+mnn+rss",
    "rootsift+mnn+count",
    "rootsift+mnn+ransac@zscore",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the lund-exif-gps folder")
    ap.add_argument(
        "--specs",
        default=",".join(DEFAULT_SPECS),
        help="comma-separated re-ranker specs; '@zscore' / '@linear' appends global-similarity fusion",
    )
    ap.add_argument("--clusters", type=int, default=64, help="VLAD vocabulary size")
    ap.add_argument("--threshold", type=float, default=25.0, help="positive radius in metres")
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = ap.parse_args()

    images = load_image_set(args.data, progress=False)
    names = [p.stem for p in images.paths]
    db_idx = [i for i, n in enumerate(names) if int(n) % 2 == 1]
    q_idx = [i for i, n in enumerate(names) if int(n) % 2 == 0]
    db_paths = [images.paths[i] for i in db_idx]
    q_paths = [images.paths[i] for i in q_idx]
    positives = positives_within(images.utm[db_idx], images.utm[q_idx], args.threshold)
    k = len(db_paths)

    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    vlad = ClassicalVLAD(num_clusters=args.clusters).fit(db_paths)
    fit_s = time.perf_counter() - t0
    db_desc = vlad.describe(db_paths)
    t0 = time.perf_counter()
    q_desc = vlad.describe(q_paths)
    sims = q_desc @ db_desc.T
    preds = np.argsort(-sims, axis=1, kind="stable")
    vlad_ms = 1000 * (time.perf_counter() - t0) / len(q_paths)
    sims_sorted = np.take_along_axis(sims, preds, axis=1)
    db_utm, q_utm = images.utm[db_idx], images.utm[q_idx]

    def top1_error(p: np.ndarray) -> float:
        """Median distance (m) between each query and its top-1 database image."""
        return float(np.median(np.linalg.norm(db_utm[p[:, 0]] - q_utm, axis=1)))

    rec = recall_at_n(preds, positives, (1, 5))
    rows.append(
        {
            "method": f"RootSIFT-VLAD{args.clusters} (no re-ranking)",
            "r1": rec[1],
            "r5": rec[5],
            "err_m": top1_error(preds),
            "ms": vlad_ms,
        }
    )

    with tempfile.TemporaryDirectory() as tmp:
        for item in [s.strip() for s in args.specs.split(",") if s.strip()]:
            spec, _, fusion = item.partition("@")
            rr = Reranker(spec, fusion=fusion or None, cache=Path(tmp) / f"{spec.split('+')[0]}.h5")
            assert isinstance(rr.cache, FeatureCache)
            t0 = time.perf_counter()
            extracted = rr.cache.extract_all(db_paths)
            db_ms = 1000 * (time.perf_counter() - t0) / max(1, extracted) if extracted else float("nan")
            new, _, ms = rerank_predictions(q_paths, db_paths, preds, sims_sorted, spec=rr, k=k)
            rr.close()
            rec = recall_at_n(new, positives, (1, 5))
            label = f"VLAD + {spec}" + (f" ({fusion} fusion)" if fusion else "")
            rows.append(
                {
                    "method": label,
                    "r1": rec[1],
                    "r5": rec[5],
                    "err_m": top1_error(new),
                    "ms": ms,
                    "db_ms_per_image": db_ms,
                }
            )

    command = "python " + " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    print(f"Command: `{command}`")
    print(f"Machine: {cpu_name()}, {len(os.sched_getaffinity(0))} CPU cores, no GPU")
    print(
        f"Data: {len(q_paths)} queries (even frames), {k} database images (odd frames), "
        f"positives within {args.threshold:g} m; K = {k} (all); VLAD fit {fit_s:.1f} s\n"
    )
    print("| Method | R@1 | R@5 | median top-1 error (m) | ms/query | db features ms/image |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        db = r.get("db_ms_per_image")
        db_txt = "" if db is None else ("cached" if db != db else f"{db:.0f}")
        print(
            f"| {r['method']} | {r['r1']:.1f} | {r['r5']:.1f} | {r['err_m']:.1f} | {r['ms']:.0f} | {db_txt} |"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"command": command, "machine": cpu_name(), "rows": rows}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
