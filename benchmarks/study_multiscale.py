"""Study: multi-scale testing on the synthetic city (issue 13, table d): evaluation only.

One trained model (the shared baseline of ``_study.py``, reused from the run cache; or
another with ``--set``) is evaluated on the test district with every image (database
and queries) described at several scales of 72x96 and the descriptors fused
element-wise (``--scales``/``--scale-fusion`` of ``vgloc eval``, ``docs/multiscale.md``),
against the single scale 1. Scale sets: the VG studies' ``0.526,0.588,1,1.7,1.9`` and
the smaller ``0.5,1,1.5``, ``0.75,1,1.25``; fusions avg, sum, max, min (avg and sum
rank the same after renormalisation; both are listed, as the study did).

    nice python benchmarks/study_multiscale.py --out benchmarks/results/study_multiscale.json

Prints a Markdown table (command, machine, recipe) and writes JSON.
"""

from __future__ import annotations

import argparse
from typing import Any

import _study as st
from _machine import command_line, write_results  # benchmarks/ is on sys.path when a script runs

SCALE_SETS = ("0.526,0.588,1,1.7,1.9", "0.5,1,1.5", "0.75,1,1.25")
FUSIONS = ("avg", "sum", "max", "min")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    st.add_common_args(ap)
    ap.add_argument("--scale-sets", nargs="+", default=list(SCALE_SETS), help="comma lists of scales")
    ap.add_argument("--fusions", default=",".join(FUSIONS), help="comma list of fusions")
    ap.add_argument(
        "--set", action="append", default=[], help="training setting of the model (default: baseline)"
    )
    args = ap.parse_args()
    city, root = st.city_root(args.size, args.seed)
    work = args.work_dir or st.default_work_dir()
    base = st.base_settings(st.budget_of(args), args.seed)
    label = "baseline" + (f" + {', '.join(args.set)}" if args.set else "")
    runs = st.train_runs(
        [st.RunSpec(label, list(args.set))],
        city=city,
        root=root,
        base=base,
        work=work,
        jobs=1,
        cached_only=args.cached_only,
    )
    run_dir, record = runs[label]
    model = run_dir / "best_model.pt"
    cache = run_dir / "study_eval.json"

    rows: list[dict[str, Any]] = [
        {**st.model_row("1", model, root, cache=cache), "scales": "1", "fusion": ""}
    ]
    for scales in args.scale_sets:
        values = tuple(float(s) for s in scales.split(","))
        for fusion in args.fusions.split(","):
            extraction = {"scales": values, "scale_fusion": fusion}
            row = st.model_row(scales, model, root, cache=cache, extraction=extraction)
            rows.append({**row, "scales": scales, "fusion": fusion})
            print(f"[study] scales {scales} {fusion}: {st.recall_cells(row)}", flush=True)

    machine = st.print_header(args, "Multi-scale testing")
    epoch, val_r1 = st.best_val(record)
    print(f"Model: {label}, best val epoch {epoch} (val day R@1 {st.fmt(val_r1)}), run `{record['key']}`.\n")
    print(f"| scales (x 72x96) | fusion | {st.RECALL_HEADER} |")
    print("|---|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['scales']} | {row['fusion'] or 'single scale'} | {st.recall_cells(row)} |")
    write_results(args.out, command=command_line(), machine=machine, run=record["key"], rows=rows)


if __name__ == "__main__":
    main()
