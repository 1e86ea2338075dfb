"""Study: CosPlace's margin losses (CosFace, ArcFace, SphereFace) at the studies' step budget (issue 13, table g).

The same comparison as ``bench_train_city.py`` (which gives each run 30 wall-clock
minutes), but with the shared recipe and fixed step budget of ``_study.py``, so that it
sits with the other study tables: CosFace is the baseline run itself; ArcFace and
SphereFace use their presets' defaults (``cosplace.loss``; ``docs`` of
:func:`vgloc.losses.create_margin_head`).

    nice python benchmarks/study_losses.py --out benchmarks/results/study_losses.json

Prints a Markdown table (command, machine, recipe) and writes JSON.
"""

from __future__ import annotations

import argparse
from typing import Any

import _study as st
from _machine import command_line, write_results  # benchmarks/ is on sys.path when a script runs

LOSSES = ("cosface", "arcface", "sphereface")


def specs() -> list[st.RunSpec]:
    """CosFace (= the baseline), ArcFace, SphereFace."""
    return [st.RunSpec(loss, [f"cosplace.loss={loss}"]) for loss in LOSSES]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    st.add_common_args(ap)
    args = ap.parse_args()
    city, root = st.city_root(args.size, args.seed)
    work = args.work_dir or st.default_work_dir()
    base = st.base_settings(st.budget_of(args), args.seed)
    runs = st.train_runs(
        specs(), city=city, root=root, base=base, work=work, jobs=args.jobs, cached_only=args.cached_only
    )
    rows: list[dict[str, Any]] = [st.run_row(label, d, rec, root) for label, (d, rec) in runs.items()]

    machine = st.print_header(args, "Margin losses at the studies' budget")
    print(f"| loss | {st.RECALL_HEADER} | best epoch | val day R@1 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['label']} | {st.recall_cells(row)} | {row['best_epoch']} | {st.fmt(row['val_day_R@1'])} |"
        )
    write_results(args.out, command=command_line(), machine=machine, rows=rows)


if __name__ == "__main__":
    main()
