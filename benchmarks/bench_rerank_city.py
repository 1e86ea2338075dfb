"""Re-ranking on the small synthetic city (all four query domains) and on the Lund photos.

City part. The small synthetic city (``generate_city(cache_dir()/'synthetic'/'small-seed0',
'small', 0)``), test split: 460 database images, 58 queries in each domain (day
``queries``, ``queries_night``, ``queries_fog``, ``queries_occluded``), 256x192 px,
positives within 25 m. Two global descriptors, both without trained weights:
``resnet18+gem`` (random initialisation, seed 0) and ``rootsift+vlad64`` (vocabulary
fitted on the database). Retrieval fetches the top 100 (exact inner-product search);
each re-ranker re-orders those 100 with local features and geometric verification,
the way ``vgloc eval --rerank SPEC --rerank-k 100`` does (the same functions:
:func:`vgloc.rerank.run.score_candidates` and ``CandidateScores.rerank``).

Timing:

- ``retrieval ms/q``: describing one query plus the search (the database is
  described beforehand).
- ``re-rank ms/q``: extracting the query's local features plus matching and verifying
  its K candidates, measured per pair and summed (the database's local features are
  extracted beforehand, as a deployment would do offline; that cost is the
  ``db ms/img`` column, reported once per re-ranker).
- The K sweep re-uses the K=100 scores: Recall@1 at K re-orders only the first K
  candidates, and its time is the measured time of those K candidates.

Lund part (``--lund``): database = odd frames, queries = even frames of the 29 Lund
photos; Recall@1 at 25 m through the public API
(``build_index(..., 'rootsift+vlad64')`` then ``locate(..., rerank=SPEC, rerank_k=15)``).

    nice python benchmarks/bench_rerank_city.py --out-dir runs/bench_rerank_city
    nice python benchmarks/bench_rerank_city.py --descriptors rootsift+vlad64 --specs rootsift+mnn+ransac
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from _machine import cpu_name  # benchmarks/ is on sys.path when a script runs

from vgloc.api import ExtractionOptions, build_index, compute_descriptors, locate
from vgloc.data import load_image_set, load_split
from vgloc.data.synthetic import generate_city
from vgloc.demo import cache_dir
from vgloc.evaluation.recall import recall_at_n
from vgloc.geo import positives_within
from vgloc.rerank import Reranker
from vgloc.rerank.run import score_candidates
from vgloc.rerank.sweep import rerank_sweep, sweep_table, write_sweep

DEFAULT_DESCRIPTORS = ("resnet18+gem", "rootsift+vlad64")
DEFAULT_SPECS = (
    "rootsift+mnn+ransac",
    "sift+ratio+fundamental",
    "orb+mnn+ransac",
    "akaze+mnn+ransac",
    "rootsift+mnn+rss",
)
DOMAINS = ("queries", "queries_night", "queries_fog", "queries_occluded")
SWEEP_KS = (1, 5, 10, 20, 50, 100)
RECALLS = (1, 5, 10)
LUND = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lund-exif-gps"


def fmt_recalls(rec: dict[int, float]) -> str:
    return " | ".join(f"{rec[n]:.1f}" for n in RECALLS)


def city(args: argparse.Namespace, out_dir: Path | None) -> list[str]:
    """The synthetic-city tables (Markdown lines)."""
    root = generate_city(cache_dir() / "synthetic" / "small-seed0", "small", 0, progress=False)
    split = load_split(root, "test", progress=False)
    db = split.database
    options = ExtractionOptions(image_size=None, progress=False)
    positives = {d: positives_within(db.utm, split.queries[d].utm, 25.0) for d in DOMAINS}
    specs = [s for s in args.specs.split(",") if s]
    sweep_spec = specs[0]
    rows: list[str] = []
    sweeps: list[str] = []
    for desc in [d for d in args.descriptors.split(",") if d]:
        t0 = time.perf_counter()
        index = build_index(db, desc, options=options, validate=False, seed=0)
        build_s = time.perf_counter() - t0
        assert index.model is not None
        print(f"{desc}: database described and indexed in {build_s:.0f} s", file=sys.stderr)
        # One re-ranker per spec and descriptor (so no query's features are left over from
        # another run), its database features extracted up front as a deployment does offline.
        rerankers: dict[str, Reranker] = {}
        db_ms: dict[str, float] = {}
        for spec in specs:
            # Room for every database and query image: nothing is re-extracted inside the timing.
            room = len(db) + sum(len(split.queries[d]) for d in DOMAINS)
            rerankers[spec] = Reranker(spec, memory_cache=room)
            t0 = time.perf_counter()
            for path in db.paths:
                rerankers[spec].features(path)
            db_ms[spec] = 1000 * (time.perf_counter() - t0) / len(db)
        curves = {}
        bases: dict[str, dict[int, float]] = {}
        for d in DOMAINS:
            qs = split.queries[d]
            t0 = time.perf_counter()
            q_desc = compute_descriptors(index.model, qs.paths, options, queries=True)
            sims, ids = index.search(q_desc, args.k)
            retrieval_ms = 1000 * (time.perf_counter() - t0) / len(qs)
            base = recall_at_n(ids, positives[d], RECALLS)
            bases[d] = base
            rows.append(f"| {desc} | {d} | retrieval only | {fmt_recalls(base)} | {retrieval_ms:.0f} | | |")
            for spec in specs:
                t0 = time.perf_counter()
                try:
                    scored = score_candidates(qs.paths, db.paths, ids, sims, rerankers[spec], k=args.k)
                except Exception as err:  # one broken re-ranker must not void the others' hours
                    failed = (
                        f"{type(err).__module__}.{type(err).__name__}: {str(err).split('error: ')[-1][:70]}"
                    )
                    rows.append(f"| {desc} | {d} | + {spec} @{args.k} | failed: {failed} | | | | | |")
                    print(f"  {desc} {d} {spec}: FAILED {failed}", file=sys.stderr)
                    continue
                wall = time.perf_counter() - t0
                rr = scored.rerank(args.k)
                rec = recall_at_n(rr.predictions, positives[d], RECALLS)
                rows.append(
                    f"| {desc} | {d} | + {spec} @{args.k} | {fmt_recalls(rec)} | {retrieval_ms:.0f} | "
                    f"{rr.ms_per_query:.0f} | {db_ms[spec]:.0f} |"
                )
                print(
                    f"  {desc} {d} {spec}: R@1 {base[1]:.1f} -> {rec[1]:.1f} ({wall:.0f} s)", file=sys.stderr
                )
                if spec == sweep_spec and d in ("queries", "queries_night"):
                    curves[d] = rerank_sweep(
                        scored, [k for k in SWEEP_KS if k <= args.k], positives[d], RECALLS
                    )
                    sweeps.append(f"\n{desc} + {spec}, {d}:\n\n" + sweep_table({d: curves[d]}, {d: base}))
        if out_dir is not None and curves:
            files = write_sweep(
                curves,
                out_dir,
                title=f"small city (test): {desc} + {sweep_spec}",
                baseline={d: bases[d] for d in curves},
                stem=f"sweep_{desc.replace('+', '_')}",
            )
            print(f"sweep files: {', '.join(map(str, files.values()))}", file=sys.stderr)
        for reranker in rerankers.values():
            reranker.close()
    head = [
        f"Small synthetic city, test split: {len(db)} database images, "
        + ", ".join(f"{len(split.queries[d])} {d}" for d in DOMAINS)
        + f"; 256x192 px; positives within 25 m; K = {args.k}.\n",
        "| descriptor | domain | method | R@1 | R@5 | R@10 | retrieval ms/q | re-rank ms/q | db ms/img |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    return [*head, *rows, f"\nK sweep ({sweep_spec}; K = 0 is retrieval alone):", *sweeps]


def lund(args: argparse.Namespace) -> list[str]:
    """Recall@1 at 25 m on the Lund walk through build_index + locate (Markdown lines)."""
    images = load_image_set(args.lund, progress=False)
    number = np.array([int(p.stem) for p in images.paths])
    database = images.subset(np.flatnonzero(number % 2 == 1))
    queries = images.subset(np.flatnonzero(number % 2 == 0))
    positives = positives_within(database.utm, queries.utm, 25.0)
    options = ExtractionOptions(image_size=(480, 640), progress=False)
    index = build_index(database, "rootsift+vlad64", options=options, validate=False, seed=0)
    lines = [
        f"\nLund walk: {len(database)} database images (odd frames), {len(queries)} queries (even frames), "
        "positives within 25 m; `build_index(odd, 'rootsift+vlad64')` + `locate(even, rerank=SPEC, rerank_k=15)`.\n",
        "| method | R@1 | median top-1 error (m) | s per call (14 photos) |",
        "|---|---:|---:|---:|",
    ]
    for spec in [None, *[s for s in args.specs.split(",") if s]]:
        t0 = time.perf_counter()
        preds = locate(queries.paths, index, top_k=1, rerank=spec, rerank_k=len(database))
        seconds = time.perf_counter() - t0
        top1 = np.array([[p.matches[0].index] for p in preds])
        err = np.median(np.linalg.norm(database.utm[top1[:, 0]] - queries.utm, axis=1))
        r1 = recall_at_n(top1, positives, (1,))[1]
        label = "rootsift+vlad64 (retrieval only)" if spec is None else f"rootsift+vlad64 + {spec}"
        lines.append(f"| {label} | {r1:.1f} | {err:.1f} | {seconds:.1f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--descriptors", default=",".join(DEFAULT_DESCRIPTORS), help="global descriptor specs")
    ap.add_argument("--specs", default=",".join(DEFAULT_SPECS), help="re-ranker specs; the first is swept")
    ap.add_argument("--k", type=int, default=100, help="candidates re-ranked per query (default: 100)")
    ap.add_argument("--out-dir", type=Path, default=None, help="write the sweep CSV/MD/PNG and a JSON here")
    ap.add_argument("--lund", type=Path, default=LUND, help="the lund-exif-gps folder ('' skips it)")
    ap.add_argument("--skip-city", action="store_true", help="only run the Lund part")
    args = ap.parse_args()

    t_start = time.perf_counter()
    load0 = os.getloadavg()
    lines = [] if args.skip_city else city(args, args.out_dir)
    if str(args.lund) and Path(args.lund).is_dir():
        lines += lund(args)
    load1 = os.getloadavg()
    command = "nice python " + " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    header = [
        f"Command: `{command}`",
        f"Machine: {cpu_name()}, {len(os.sched_getaffinity(0))} CPU cores, no GPU; load average "
        f"{load0[0]:.1f} at start, {load1[0]:.1f} at end (shared machine: times are upper bounds); "
        f"total {time.perf_counter() - t_start:.0f} s\n",
    ]
    text = "\n".join([*header, *lines])
    print(text)
    if args.out_dir is not None:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        (args.out_dir / "bench_rerank_city.md").write_text(text + "\n")
        (args.out_dir / "bench_rerank_city.json").write_text(json.dumps({"markdown": text}, indent=2) + "\n")


if __name__ == "__main__":
    main()
