"""Study: optimizers x learning-rate schedulers on the synthetic city (issue 13, table a).

Adam, AdamW, SGD (momentum 0.9) and ASGD, each with ReduceLROnPlateau (on val R@1,
factor 0.1, patience 1) and cosine annealing (over the run's epochs, to 0), plus Adam
with a constant rate (the shared baseline of every study), all from the same random
weights with the same step budget (``_study.py``). Weight decay is each optimizer's
recipe value (``optim.weight_decay``: 0 for Adam/ASGD, 1e-3 for SGD, 1e-2 for AdamW).
SGD and ASGD use ``--sgd-lr`` (default 1e-2): at Adam's 1e-3 plain SGD barely moves
within the budget, and a fair comparison gives each family a rate of its usual scale.
The CosPlace classifiers keep their own Adam (lr 0.01) in every run, as in CosPlace.

    nice python benchmarks/study_optim.py --out benchmarks/results/study_optim.json

Prints a Markdown table (command, machine, recipe) and writes JSON.
"""

from __future__ import annotations

import argparse
from typing import Any

import _study as st
from _machine import command_line, write_results  # benchmarks/ is on sys.path when a script runs

OPTIMIZERS = ("adam", "adamw", "sgd", "asgd")
SCHEDULERS = ("plateau", "cosine")


def specs(sgd_lr: float) -> list[st.RunSpec]:
    """The runs of the table: every optimizer x scheduler, then the constant-rate Adam baseline."""
    out = []
    for opt in OPTIMIZERS:
        lr = sgd_lr if opt in ("sgd", "asgd") else 1e-3
        for sched in SCHEDULERS:
            out.append(
                st.RunSpec(
                    f"{opt} {sched}", [f"optim.name={opt}", f"optim.lr={lr:g}", f"schedule.scheduler={sched}"]
                )
            )
    out.append(
        st.RunSpec("adam constant", [])
    )  # = the baseline: last, so a parallel study may train it first
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    st.add_common_args(ap)
    ap.add_argument(
        "--sgd-lr", type=float, default=1e-2, help="learning rate of SGD and ASGD (default: 1e-2)"
    )
    args = ap.parse_args()
    city, root = st.city_root(args.size, args.seed)
    work = args.work_dir or st.default_work_dir()
    base = st.base_settings(st.budget_of(args), args.seed)
    runs = st.train_runs(
        specs(args.sgd_lr),
        city=city,
        root=root,
        base=base,
        work=work,
        jobs=args.jobs,
        cached_only=args.cached_only,
    )

    rows: list[dict[str, Any]] = []
    first_dir = next(iter(runs.values()))[0]
    untrained = st.model_row(
        "untrained", first_dir / "initial_model.pt", root, cache=first_dir / "study_eval.json"
    )
    for label, (run_dir, record) in runs.items():
        rows.append(st.run_row(label, run_dir, record, root))

    machine = st.print_header(args, "Optimizers x schedulers")
    print(f"| optimizer | scheduler | lr | {st.RECALL_HEADER} | best epoch | val day R@1 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| untrained | | | {st.recall_cells(untrained)} | | |")
    for row in rows:
        opt, sched = row["label"].split()
        lr = args.sgd_lr if opt in ("sgd", "asgd") else 1e-3
        print(
            f"| {opt} | {sched} | {lr:g} | {st.recall_cells(row)} | {row['best_epoch']} | "
            f"{st.fmt(row['val_day_R@1'])} |"
        )
    write_results(args.out, command=command_line(), machine=machine, untrained=untrained, rows=rows)


if __name__ == "__main__":
    main()
