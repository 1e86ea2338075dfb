"""Study: model soups on the synthetic city (issue 13, table f).

``vgloc soup`` (``docs/soups.md``; Wortsman et al., ICML 2022) averages the weights of
models of one architecture: ``uniform`` all of them, ``greedy`` the best first (by
validation R@1 on the val district's day queries) and each next one only if the soup's
validation R@1 does not drop. Ingredients, all reused from the run cache of
``_study.py`` (trained there if missing):

- the per-epoch snapshots of one run (``snapshots.enabled=true`` in every study run):
  the constant-rate Adam baseline and Adam with cosine annealing;
- the best models of the optimizer x scheduler runs (``study_optim.py``), which all
  start from the same random weights.

Each soup is compared with the best single ingredient by val R@1 (the model one would
pick without soups) and, for snapshots, with the last epoch. Test district, day and night.

    nice python benchmarks/study_soup.py --out benchmarks/results/study_soup.json

Prints a Markdown table (command, machine, recipe) and writes JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import _study as st
import study_optim
from _machine import command_line, write_results  # benchmarks/ is on sys.path when a script runs


def cook(models: list[Path], method: str, root: Path, work: Path) -> tuple[Path, dict[str, Any]]:
    """Run ``vgloc soup`` (cached by ingredients and method); return the soup file and its JSON report."""
    ident = hashlib.sha256(json.dumps([method, [str(m) for m in models]]).encode()).hexdigest()[:16]
    out = work / "soups" / f"{method}-{ident}.pt"
    report_path = out.with_suffix(".json")
    if out.is_file() and report_path.is_file():
        return out, json.loads(report_path.read_text())
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        "vgloc", "soup", *map(str, models), "--method", method, "--out", str(out),
        "--val", str(root), "--val-split", "val", "--domains", "queries",
        "--image-size", st.IMAGE_SIZE, "--batch-size", "32", "--precision", "fp32",
        "--workers", "0", "--no-progress", "--json",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # one core, as the trainings
    print(f"[study] {' '.join(cmd)}", file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"vgloc soup failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    from vgloc.io import write_json_atomic

    write_json_atomic(report_path, report)
    return out, report


def soup_rows(
    name: str, models: list[Path], root: Path, work: Path, last: Path | None
) -> list[dict[str, Any]]:
    """Rows for one set of ingredients: best single, (last), uniform soup, greedy soup."""
    cache = work / "soups" / "study_eval.json"
    rows: list[dict[str, Any]] = []
    soups = {m: cook(models, m, root, work) for m in ("uniform", "greedy")}
    own = {Path(m["path"]).resolve(): m["r1"] for m in soups["greedy"][1]["models"]}
    best = max(models, key=lambda m: own.get(m.resolve()) or -1.0)
    singles = [("best single (val R@1)", best)] + ([("last epoch", last)] if last is not None else [])
    for label, model in singles:
        rows.append(
            {
                **st.model_row(label, model, root, cache=cache),
                "val_day_R@1": own.get(model.resolve()),
                "kept": 1,
            }
        )
    for method, (path, report) in soups.items():
        kept = sum(m["kept"] for m in report["models"])
        row = st.model_row(f"{method} soup", path, root, cache=cache)
        rows.append({**row, "val_day_R@1": report["score"], "kept": kept})
    for r in rows:
        r.update(ingredients=name, n=len(models))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    st.add_common_args(ap)
    ap.add_argument("--sgd-lr", type=float, default=1e-2, help="as study_optim.py (same runs)")
    args = ap.parse_args()
    city, root = st.city_root(args.size, args.seed)
    work = args.work_dir or st.default_work_dir()
    base = st.base_settings(st.budget_of(args), args.seed)
    runs = st.train_runs(
        study_optim.specs(args.sgd_lr),
        city=city,
        root=root,
        base=base,
        work=work,
        jobs=args.jobs,
        cached_only=args.cached_only,
    )

    rows: list[dict[str, Any]] = []
    for label in ("adam constant", "adam cosine"):
        if label not in runs:  # --cached-only and not trained yet
            continue
        run_dir = runs[label][0]
        snaps = sorted((run_dir / "snapshots").glob("epoch_*.pt"))
        rows += soup_rows(f"{len(snaps)} snapshots of {label}", snaps, root, work, last=snaps[-1])
    finals = [d / "best_model.pt" for d, _ in runs.values()]
    if len(finals) >= 2:
        rows += soup_rows(
            f"best models of the {len(finals)} optimizer x scheduler runs", finals, root, work, None
        )

    machine = st.print_header(args, "Model soups")
    print("Greedy: ingredients sorted by val day R@1, each kept if the soup's val R@1 does not drop (>=).\n")
    print(f"| ingredients | model | kept | val day R@1 | {st.RECALL_HEADER} |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        val = "" if r["val_day_R@1"] is None else st.fmt(r["val_day_R@1"])
        print(f"| {r['ingredients']} | {r['label']} | {r['kept']}/{r['n']} | {val} | {st.recall_cells(r)} |")
    write_results(args.out, command=command_line(), machine=machine, rows=rows)


if __name__ == "__main__":
    main()
