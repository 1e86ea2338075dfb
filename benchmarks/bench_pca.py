"""Benchmark ``vgloc index build --pca``: the R@1 cost of PCA-whitened compact descriptors.

Generates (or reuses) a synthetic city, describes its test database and every query
domain once with one model (random init by default, seeded: untrained R@1 is low in
absolute terms, the point is the *change* with PCA), then for each PCA dimension builds
a ``GeoIndex`` with ``pca=DIM``, whitened and not (fitted on the database descriptors, as
the CLI does)
and scores R@1 / R@5 per domain (positives within 25 m, the field's protocol). The
row without PCA is the reference; the stored bytes per image shrink with the dimension.

Example (what BENCHMARKS.md reports)::

    nice python benchmarks/bench_pca.py --city small --model resnet18+gem \\
        --dims 256 128 64 32 --out benchmarks/results/pca.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def recall_at(ids: np.ndarray, pos: list[np.ndarray], n: int) -> float:
    """Share of queries with a positive among their first ``n`` ids."""
    return float(np.mean([np.isin(ids[i, :n], p).any() for i, p in enumerate(pos)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--city", default="small", help="synthetic city size (tiny, small, medium)")
    ap.add_argument(
        "--root", type=Path, default=Path("data/synth-bench-pca"), help="where the city is (made)"
    )
    ap.add_argument("--model", default="resnet18+gem", help="model spec (random init unless --checkpoint)")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--dims", type=int, nargs="+", default=[256, 128, 64, 32])
    ap.add_argument("--image-size", type=int, nargs=2, default=[240, 320], metavar=("H", "W"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from _machine import command_line, describe_machine, machine_info, write_results

    from vgloc.data import load_split
    from vgloc.data.synthetic import generate_city
    from vgloc.describers import ExtractionOptions, resolve_describer
    from vgloc.geo import positives
    from vgloc.index import GeoIndex

    root = args.root / args.city
    if not (root / "images" / "test").is_dir():
        generate_city(root, args.city, args.seed, progress=False)
    split = load_split(root, "test", progress=False)
    db = split.database
    torch.manual_seed(args.seed)
    describer = resolve_describer(args.model, args.checkpoint)
    options = ExtractionOptions(image_size=tuple(args.image_size), progress=False)
    t0 = time.perf_counter()
    db_desc = describer.describe(db.paths, options).astype(np.float32)
    q_desc = {name: describer.describe(q.paths, options, queries=True) for name, q in split.queries.items()}
    print(
        f"described {len(db)} database images and {sum(len(q) for q in split.queries.values())} queries "
        f"in {time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    pos = {name: positives(db, q, 25.0) for name, q in split.queries.items()}
    dim = db_desc.shape[1]
    rows: list[dict[str, Any]] = []
    dims = [d for d in args.dims if d < dim and d <= len(db)]
    for p, whiten in [(None, True), *[(d, w) for d in dims for w in (True, False)]]:
        gi = GeoIndex.build(
            db_desc, db, model_spec=describer.spec, image_size=options.image_size, pca=p, pca_whiten=whiten
        )
        row: dict[str, Any] = {"pca": p, "whiten": whiten, "dim": p or dim, "bytes_per_image": 4 * (p or dim)}
        for name, q in q_desc.items():
            _, ids = gi.search(q, 5)
            row[f"R@1 {name}"] = 100 * recall_at(ids, pos[name], 1)
            row[f"R@5 {name}"] = 100 * recall_at(ids, pos[name], 5)
        row["R@1 mean"] = float(np.mean([row[f"R@1 {n}"] for n in q_desc]))
        rows.append(row)
        print(row, file=sys.stderr)

    machine = machine_info()
    names = list(q_desc)
    print(describe_machine(machine))
    print(
        f"{args.model} (seed {args.seed}, random init unless a checkpoint), {args.city} city test split: "
        f"{len(db)} database images, queries {', '.join(f'{n} {len(split.queries[n])}' for n in names)}; "
        f"{args.image_size[0]}x{args.image_size[1]}"
    )
    print("| descriptor | bytes/image | " + " | ".join(f"R@1 {n}" for n in names) + " | mean R@1 |")
    print("|---" * (len(names) + 3) + "|")
    for r in rows:
        kind = "PCA-whitened" if r["whiten"] else "PCA (no whitening)"
        label = f"{dim}-d (no PCA)" if r["pca"] is None else f"{kind} {r['pca']}-d"
        cells = " | ".join(f"{r[f'R@1 {n}']:.1f}" for n in names)
        print(f"| {label} | {r['bytes_per_image']} | {cells} | {r['R@1 mean']:.1f} |")
    write_results(
        args.out, command=command_line(), machine=machine, model=args.model, city=args.city, rows=rows
    )


if __name__ == "__main__":
    main()
