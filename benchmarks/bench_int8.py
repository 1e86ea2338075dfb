"""int8 against fp32 on the CPU: speed, descriptor cosine and Recall@N, side by side.

Both sides run ONNX Runtime (``precision="fp32", engine="onnxruntime"`` against
``precision="int8"``) on the same images with the same weights, interleaved (database
fp32, database int8, then each query domain the same way), in one process, after one
warm-up extraction each (so the export, the quantisation and the optimised graphs are
cached before the clock). Reported per model: img/s of each side (decoding included,
as ``vgloc eval`` reports it), the minimum and mean cosine between the two sides'
descriptors over all images, Recall@1/5 per query domain for both sides, and the share
of queries whose top-1 is the same.

Models: ``resnet18+gem+fc512`` with random weights (seed 0) on the small synthetic city
rendered at 480x640 (the issue's setting), and any trained checkpoints given with
``--checkpoint SPEC=PATH`` (e.g. the ``tiny+gem`` model ``vgloc demo`` trains, at
``runs/<stamp>-demo/train/best_model.pt``) on the small city at its own size.

    python benchmarks/bench_int8.py --out benchmarks/results/int8.json
    python benchmarks/bench_int8.py --checkpoint tiny+gem=runs/<stamp>-demo/train/best_model.pt
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RECALLS = (1, 5)


def describe(describer, paths, precision: str, queries: bool) -> tuple[np.ndarray, float]:
    from vgloc.describers import ExtractionOptions

    options = ExtractionOptions(image_size=None, precision=precision, engine="onnxruntime", progress=False)
    t0 = time.perf_counter()
    out = describer.describe(paths, options, queries=queries)
    return out, time.perf_counter() - t0


def recall(db: np.ndarray, q: np.ndarray, positives: list[np.ndarray]) -> tuple[dict[int, float], np.ndarray]:
    """Recall@N (percent) of exact inner-product search, and each query's top-1."""
    from vgloc.evaluation.recall import recall_at_n
    from vgloc.index.faiss_search import exact_search

    _, order = exact_search(db, q, max(RECALLS))
    return recall_at_n(order, positives, RECALLS), order[:, 0]


def run_case(name: str, describer, split) -> dict:
    db_paths = split.database.paths
    from vgloc.geo import positives_within

    # Warm-up: export, quantisation and optimised graphs cached, outside the clock.
    for precision in ("fp32", "int8"):
        describe(describer, db_paths[:4], precision, False)
    sides: dict[str, dict] = {"fp32": {"seconds": 0.0, "images": 0}, "int8": {"seconds": 0.0, "images": 0}}
    db: dict[str, np.ndarray] = {}
    for precision in ("fp32", "int8"):
        db[precision], seconds = describe(describer, db_paths, precision, False)
        sides[precision]["seconds"] += seconds
        sides[precision]["images"] += len(db_paths)
    cosines = [np.sum(db["fp32"] * db["int8"], axis=1)]
    domains = {}
    for domain, queries in split.queries.items():
        q = {}
        for precision in ("fp32", "int8"):
            q[precision], seconds = describe(describer, queries.paths, precision, True)
            sides[precision]["seconds"] += seconds
            sides[precision]["images"] += len(queries.paths)
        cosines.append(np.sum(q["fp32"] * q["int8"], axis=1))
        positives = positives_within(split.database.utm, queries.utm, 25.0)
        r32, top32 = recall(db["fp32"], q["fp32"], positives)
        r8, top8 = recall(db["int8"], q["int8"], positives)
        domains[domain] = {
            "queries": len(queries.paths),
            "fp32": r32,
            "int8": r8,
            "same_top1_pct": 100.0 * float(np.mean(top32 == top8)),
        }
        print(f"{name} {domain}: R@1 fp32 {r32[1]:.1f} int8 {r8[1]:.1f}; same top-1 "
              f"{domains[domain]['same_top1_pct']:.1f} %", flush=True)  # fmt: skip
    cos = np.concatenate(cosines)
    for side in sides.values():
        side["img_per_s"] = side["images"] / side["seconds"]
    return {
        "model": name,
        "fp32_img_per_s": round(sides["fp32"]["img_per_s"], 2),
        "int8_img_per_s": round(sides["int8"]["img_per_s"], 2),
        "speed_ratio": round(sides["int8"]["img_per_s"] / sides["fp32"]["img_per_s"], 2),
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
        "domains": domains,
    }


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _machine import cpu_name

    from vgloc.data import load_split
    from vgloc.data.synthetic import generate_city
    from vgloc.describers.net import NetDescriber
    from vgloc.models.quantize import cpu_has_int8_dot

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "vgloc_bench_int8")
    ap.add_argument(
        "--checkpoint", action="append", default=[], help="SPEC=PATH of a trained model (repeatable)"
    )
    ap.add_argument("--skip-random", action="store_true", help="only the --checkpoint models")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import torch

    results = []
    if not args.skip_random:
        root = generate_city(args.work / "city480", "small", 0, image_size=(480, 640), progress=False)
        split = load_split(root, "test", progress=False)
        torch.manual_seed(0)
        describer = NetDescriber.from_spec("resnet18+gem+fc512")
        results.append(run_case("resnet18+gem+fc512 (random, 480x640)", describer, split))
    for item in args.checkpoint:
        spec, _, path = item.partition("=")
        root = generate_city(args.work / "city", "small", 0, progress=False)
        split = load_split(root, "test", progress=False)
        results.append(run_case(f"{spec} (trained: {path})", NetDescriber.from_spec(spec, path), split))

    flags = Path("/proc/cpuinfo").read_text().split() if os.path.exists("/proc/cpuinfo") else []
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
    report = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{cpu_name()}, {os.cpu_count()} CPUs, {platform.machine()}",
        "cpu_flags": sorted(f for f in wanted if f in flags),
        "int8_dot_product": cpu_has_int8_dot(),
        "load_average": os.getloadavg(),
        "results": results,
    }
    for r in results:
        print(f"\n{r['model']}: fp32 {r['fp32_img_per_s']} img/s, int8 {r['int8_img_per_s']} img/s "
              f"({r['speed_ratio']}x); cosine min {r['cosine_min']:.5f} mean {r['cosine_mean']:.5f}")  # fmt: skip
        print("| domain | queries | R@1 fp32 | R@1 int8 | R@5 fp32 | R@5 int8 | same top-1 |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for d, v in r["domains"].items():
            print(f"| {d} | {v['queries']} | {v['fp32'][1]:.1f} | {v['int8'][1]:.1f} | {v['fp32'][5]:.1f} | "
                  f"{v['int8'][5]:.1f} | {v['same_top1_pct']:.1f} % |")  # fmt: skip
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
