"""Plot the validation curves of ``bench_train_city.py`` runs: val R@1 (day) per epoch.

    python benchmarks/plot_train_city.py benchmarks/results/train_city_*.json \\
        --out docs/train_city_curves.png

One line per method (all rows of all given JSON files), against optimizer steps; a
dotted line marks the untrained model. Steps are not the same amount of work across
methods (a triplet step is 4 queries x 12 images, a CosPlace step 32 images), so
compare the levels reached, not the slopes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on CI or servers
import matplotlib.pyplot as plt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", type=Path, help="JSON files written by bench_train_city.py --out")
    ap.add_argument("--metric", default="val/queries/R@1", help="history key (default: val/queries/R@1)")
    ap.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = ap.parse_args()

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    untrained: list[float] = []
    for path in args.results:
        for row in json.loads(path.read_text())["rows"]:
            history = [h for h in row["val_history"] if args.metric in h]
            if not history:
                raise SystemExit(f"{path}: method {row['method']} has no {args.metric!r} in its history")
            start = [h for h in history if h["epoch"] == 0]
            untrained += [h[args.metric] for h in start]
            trained = [h for h in history if h["epoch"] > 0]
            ax.plot(
                [h["step"] for h in trained],
                [h[args.metric] for h in trained],
                label=f"{row['method']} (best {max(h[args.metric] for h in trained):.1f})",
                linewidth=1.2,
            )
    if untrained:
        ax.axhline(sum(untrained) / len(untrained), color="gray", linestyle=":", label="untrained")
    ax.set_xlabel("optimizer steps")
    ax.set_ylabel(args.metric.replace("val/queries/", "val day "))
    ax.set_title("Training from random weights on the synthetic city (medium), validation after each epoch")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
