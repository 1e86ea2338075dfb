"""Position accuracy of the two `locate` modes (nearest vs kNN kernel density) and how
well the confidence ranks correct predictions (ROC AUC), per query domain of the
synthetic city.

    python benchmarks/bench_locate_modes.py --size small --model resnet18+gem
    python benchmarks/bench_locate_modes.py --size medium --model tiny+gem+fc64 \
        --checkpoint RUN/best_model.pt --image-size 72,96     # a trained model
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from vgloc.api import ExtractionOptions, build_index, compute_descriptors
from vgloc.data import load_split
from vgloc.data.synthetic import generate_city
from vgloc.demo import cache_dir
from vgloc.predict import KDEParams, predict_positions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="resnet18+gem")
    ap.add_argument("--checkpoint", type=Path, default=None, help="model weights (default: untrained)")
    ap.add_argument("--image-size", default=None, help="H,W to resize images to (default: as stored)")
    ap.add_argument("--threshold-m", type=float, default=25.0)
    args = ap.parse_args()
    size = None if args.image_size is None else tuple(int(v) for v in args.image_size.split(","))

    root = generate_city(cache_dir() / "synthetic" / f"{args.size}-seed{args.seed}", args.size, args.seed)
    split = load_split(root, "test", progress=False)
    options = ExtractionOptions(image_size=size, batch_size=32, progress=False)
    index = build_index(
        split.database,
        args.model,
        None,
        checkpoint=args.checkpoint,
        options=options,
        validate=False,
        seed=args.seed,
    )
    settings = [("nearest", KDEParams())] + [
        ("kde", KDEParams(k=k, m=m, sigma_m=s))
        for k in (5, 10, 20)
        for m in (1.0, 4.0, 16.0)
        for s in (10.0, 25.0, 50.0)
    ]
    print(
        f"{args.model}{'' if args.checkpoint is None else f' ({args.checkpoint})'} on the synthetic city ({args.size}, seed {args.seed}, test split); "
        f"cells: share of queries within {args.threshold_m:g} m / ROC AUC of the confidence"
    )
    domains = list(split.queries)
    print("| mode | k | m | sigma | " + " | ".join(domains) + " |")
    print("|---|---:|---:|---:|" + "---|" * len(domains))
    results = {}
    for name in domains:
        q = split.queries[name]
        desc = compute_descriptors(index.model, q.paths, options, queries=True)
        results[name] = (*index.search(desc, 20), q.utm)
    for method, params in settings:
        cells = []
        for name in domains:
            sims, ids, truth = results[name]
            xy, conf = predict_positions(sims, ids, split.database.utm, method, params)
            ok = np.linalg.norm(xy - truth, axis=1) <= args.threshold_m
            auc = roc_auc_score(ok, conf) if 0 < ok.mean() < 1 else float("nan")
            cells.append(f"{100 * ok.mean():.1f} / {auc:.2f}")
        k, m, s = ("-", "-", "-") if method == "nearest" else (params.k, params.m, params.sigma_m)
        print(f"| {method} | {k} | {m} | {s} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
