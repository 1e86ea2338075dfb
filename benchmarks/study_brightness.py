"""Study: darker training images (night simulation by a brightness factor) on the synthetic city (issue 13, table b).

Each run multiplies the pixel values of a share (``--probability``, default 0.5) of the
training images by a fixed factor (``augment.night_brightness`` 0.1, 0.2, 0.3, 0.4),
against the baseline without it; everything else is the shared recipe and step budget
(``_study.py``). The question: does training on darker day images help the night
queries, and what does it cost on day queries?

    nice python benchmarks/study_brightness.py --out benchmarks/results/study_brightness.json

Prints a Markdown table (command, machine, recipe) and writes JSON.
"""

from __future__ import annotations

import argparse
from typing import Any

import _study as st
from _machine import command_line, write_results  # benchmarks/ is on sys.path when a script runs

FACTORS = (0.1, 0.2, 0.3, 0.4)


def specs(factors: list[float], probability: float) -> list[st.RunSpec]:
    """The baseline (no darkening) first, then one run per factor."""
    out = [st.RunSpec("none", [])]
    for f in factors:
        out.append(
            st.RunSpec(
                f"{f:g}", [f"augment.night_brightness={f:g}", f"augment.night_probability={probability:g}"]
            )
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    st.add_common_args(ap)
    ap.add_argument("--factors", default=",".join(f"{f:g}" for f in FACTORS), help="comma list of factors")
    ap.add_argument("--probability", type=float, default=0.5, help="share of darkened images (default: 0.5)")
    args = ap.parse_args()
    factors = [float(f) for f in args.factors.split(",") if f.strip()]
    city, root = st.city_root(args.size, args.seed)
    work = args.work_dir or st.default_work_dir()
    base = st.base_settings(st.budget_of(args), args.seed)
    runs = st.train_runs(
        specs(factors, args.probability),
        city=city,
        root=root,
        base=base,
        work=work,
        jobs=args.jobs,
        cached_only=args.cached_only,
    )
    rows: list[dict[str, Any]] = [st.run_row(label, d, rec, root) for label, (d, rec) in runs.items()]

    machine = st.print_header(args, "Darker training images (brightness factor)")
    print(f"Darkened share of training images: {args.probability:g}.\n")
    print(f"| brightness factor | {st.RECALL_HEADER} | best epoch | val day R@1 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['label']} | {st.recall_cells(row)} | {row['best_epoch']} | {st.fmt(row['val_day_R@1'])} |"
        )
    write_results(args.out, command=command_line(), machine=machine, probability=args.probability, rows=rows)


if __name__ == "__main__":
    main()
