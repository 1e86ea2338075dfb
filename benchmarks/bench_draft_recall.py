"""Recall@N and time with and without reduced-scale JPEG decoding, on trained models.

``bench_jpeg_draft.py`` measures the decoding alone; this measures what a user of
``vgloc eval`` sees. Each model is evaluated on the synthetic city's test split (every
query domain) twice in one process, full decode and draft decode alternating, with
the same options otherwise; reported per model: R@1/5/10 of each domain both ways, the
seconds of each evaluation, and the cosine between the two ways' descriptors of the
test queries. The models are the study runs' ``best_model.pt`` files (tiny+gem+fc64
trained at 72x96 on the medium city by ``benchmarks/study_*.py``; the city's files are
480x640, so the draft decodes them at 1/2 scale, 240x320, before the resize; with
``--margin 1``, the rule before session 8, at 1/4, 120x160).

    python benchmarks/study_optim.py            # once: trains models (cached; any study does)
    python benchmarks/bench_draft_recall.py --out benchmarks/results/draft_recall.json
    python benchmarks/bench_draft_recall.py --margin 1 --out benchmarks/results/draft_recall_margin1.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from _machine import command_line, machine_info, write_results  # benchmarks/ is on sys.path
from _study import IMAGE_SIZE, MODEL, city_root, default_work_dir
from bench_jpeg_draft import add_margin_option, apply_margin

from vgloc.data import images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--checkpoints",
        type=Path,
        nargs="*",
        default=None,
        help="model files (default: the first --models study runs' best_model.pt, by cache key)",
    )
    ap.add_argument("--models", type=int, default=6, help="at most this many of the default checkpoints")
    ap.add_argument("--city", default="medium")
    add_margin_option(ap)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    apply_margin(args)

    import torch

    from vgloc.api import ExtractionOptions, compute_descriptors, evaluate, resolve_describer
    from vgloc.data.layouts import load_image_set

    checkpoints = args.checkpoints or sorted(default_work_dir().glob("runs/*/best_model.pt"))[: args.models]
    if not checkpoints:
        raise SystemExit(
            f"no trained models under {default_work_dir() / 'runs'}: run benchmarks/study_optim.py first"
        )
    torch.set_num_threads(1)  # as the studies: one core, so the two ways see the same load
    _, root = city_root(args.city, 0)
    h, w = (int(v) for v in IMAGE_SIZE.split(","))
    base = {"image_size": (h, w), "batch_size": 32, "precision": "fp32", "num_workers": 0, "progress": False}
    ways = {
        "full": ExtractionOptions(**base, jpeg_draft=False),
        "draft": ExtractionOptions(**base, jpeg_draft=True),
    }
    query_paths = load_image_set(root / "images" / "test" / "queries").paths

    rows: list[dict[str, Any]] = []
    for ckpt in checkpoints:
        row: dict[str, Any] = {"checkpoint": str(ckpt), "recalls": {}, "seconds": {}}
        order = ("full", "draft") if len(rows) % 2 == 0 else ("draft", "full")  # alternate who goes first
        for way in order:
            t0 = time.perf_counter()
            res = evaluate(
                root,
                "test",
                MODEL,
                checkpoint=ckpt,
                recall_values=(1, 5, 10),
                options=ways[way],
                report=False,
            )
            row["seconds"][way] = round(time.perf_counter() - t0, 2)
            row["recalls"][way] = {
                d: {f"R@{k}": round(float(v), 2) for k, v in r.recalls.items()}
                for d, r in res.domains.items()
            }
        describer = resolve_describer(MODEL, checkpoint=ckpt)
        a, b = (
            compute_descriptors(describer, query_paths, ways[way], queries=True) for way in ("full", "draft")
        )
        cos = np.sum(a * b, axis=1)
        row["query_cosine"] = {"min": round(float(cos.min()), 6), "mean": round(float(cos.mean()), 6)}
        rows.append(row)
        print(
            f"{ckpt.parent.name}: full {row['seconds']['full']} s, draft {row['seconds']['draft']} s, "
            f"query cosine min {cos.min():.4f}"
        )
        for d in row["recalls"]["full"]:
            f, g = row["recalls"]["full"][d], row["recalls"]["draft"][d]
            print(f"  {d:18s} " + "  ".join(f"{k} {f[k]:5.1f} -> {g[k]:5.1f}" for k in f))

    deltas = {
        k: [
            r["recalls"]["draft"][d][k] - r["recalls"]["full"][d][k]
            for r in rows
            for d in r["recalls"]["full"]
        ]
        for k in ("R@1", "R@5", "R@10")
    }
    summary = {
        k: {"mean": round(statistics.mean(v), 2), "min": round(min(v), 2), "max": round(max(v), 2)}
        for k, v in deltas.items()
    }
    speed = statistics.median(r["seconds"]["full"] / r["seconds"]["draft"] for r in rows)
    print(
        f"draft - full over {len(rows)} models x domains: "
        + ", ".join(
            f"{k} mean {s['mean']:+.2f} (min {s['min']:+.2f}, max {s['max']:+.2f})"
            for k, s in summary.items()
        )
    )
    print(f"evaluation time full / draft: median {speed:.2f}x")
    write_results(
        args.out,
        command=command_line(),
        machine=machine_info(),
        city=args.city,
        draft_margin=images.DRAFT_MARGIN,
        image_size=[h, w],
        rows=rows,
        delta_summary=summary,
        median_speedup=round(speed, 2),
    )


if __name__ == "__main__":
    main()
