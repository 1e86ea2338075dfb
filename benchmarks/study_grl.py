"""Study: gradient-reversal domain adaptation (DANN) vs the baseline on the synthetic city (issue 13, table c).

The ``da`` training add-on (``docs/domain_adaptation.md``): a domain classifier on the
descriptor behind a gradient reversal layer, fed the training images (source) and as
many unlabelled target images per step. Targets: the night queries of the *train*
split (``da.target=queries_night``, images of the training district at night, no
labels used) and, separately, those of the *val* split (another district; the test
district's queries are never seen). Loss weight 0.1, constant lambda 1, classifier
``D -> 50 -> 50 -> 2`` with lr 1e-3 (the add-on's defaults, after the reference GRL code;
pinned in ``DA_SETTINGS``); everything else is the shared
recipe and step budget (``_study.py``), from the same random weights as the baseline.

    nice python benchmarks/study_grl.py --out benchmarks/results/study_grl.json

Prints a Markdown table (command, machine, recipe) and writes JSON.
"""

from __future__ import annotations

import argparse
from typing import Any

import _study as st
from _machine import command_line, write_results  # benchmarks/ is on sys.path when a script runs

TARGETS = {
    "train night queries": "queries_night",  # a folder name is looked up in the training split
    "val night queries": "{root}/images/val/queries_night",
}


# The add-on's defaults at the time of the study (the reference GRL code's), written out so
# that a later change of the defaults cannot silently reuse runs trained with the old ones.
DA_SETTINGS = ["da.weight=0.1", "da.grl_lambda=1", "da.schedule=constant", "da.lr=0.001", "da.hidden=50"]


def specs(targets: list[str], extra: list[str]) -> list[st.RunSpec]:
    """The baseline, then one GRL run per target folder (with ``extra`` ``da.*`` settings)."""
    out = [st.RunSpec("baseline (no GRL)", [])]
    for name in targets:
        out.append(st.RunSpec(f"GRL, target: {name}", [f"da.target={TARGETS[name]}", *DA_SETTINGS, *extra]))
    return out


def last_value(record: dict[str, Any], suffix: str) -> float | None:
    """The last epoch's value of the first history key ending with ``suffix`` (e.g. ``da/accuracy``)."""
    for row in reversed(record["history"]):
        for k, v in row.items():
            if k.endswith(suffix):
                return float(v)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    st.add_common_args(ap)
    ap.add_argument("--targets", default=",".join(TARGETS), help=f"comma list of {list(TARGETS)}")
    ap.add_argument("--da-set", action="append", default=[], help="extra da.* setting, e.g. da.weight=0.3")
    args = ap.parse_args()
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        ap.error(f"unknown target(s) {unknown}; choose from {list(TARGETS)}")
    city, root = st.city_root(args.size, args.seed)
    work = args.work_dir or st.default_work_dir()
    base = st.base_settings(st.budget_of(args), args.seed)
    runs = st.train_runs(
        specs(targets, args.da_set),
        city=city,
        root=root,
        base=base,
        work=work,
        jobs=args.jobs,
        cached_only=args.cached_only,
    )
    rows: list[dict[str, Any]] = []
    for label, (run_dir, record) in runs.items():
        row = st.run_row(label, run_dir, record, root)
        row["da_accuracy"] = last_value(record, "da/accuracy")
        rows.append(row)

    machine = st.print_header(args, "Gradient reversal (DANN) vs baseline")
    extra = f" Extra: {', '.join(args.da_set)}." if args.da_set else ""
    print(f"GRL: {', '.join(DA_SETTINGS)}; as many target as source images per step.{extra}\n")
    print(
        f"| run | {st.RECALL_HEADER} | best epoch | val day R@1 | domain classifier accuracy (last epoch) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        acc = "" if row["da_accuracy"] is None else f"{row['da_accuracy']:.1f}%"
        print(
            f"| {row['label']} | {st.recall_cells(row)} | {row['best_epoch']} | {st.fmt(row['val_day_R@1'])} | {acc} |"
        )
    write_results(args.out, command=command_line(), machine=machine, da_set=args.da_set, rows=rows)


if __name__ == "__main__":
    main()
