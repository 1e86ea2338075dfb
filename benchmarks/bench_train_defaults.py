"""`vgloc train` on the built-in city as documented: no override but a time budget.

For each city size and method the script runs the command a user would type,

    vgloc train METHOD --dataset CITY --model tiny+gem --set schedule.max_minutes=M \\
        --set validation.before_training=true --run-dir RUN

(``validation.before_training`` only adds the epoch-0 row, the untrained model's
recall), then reads the run folder: the settings the run adapted to the data (the
``info.log`` line), the wall time, and validation R@1/R@5 before training and at
the best epoch. It shows that training runs on every city size with no tuning;
the learning curves under a real budget are in ``bench_train_city.py``.

    python benchmarks/bench_train_defaults.py --sizes tiny,small,medium --minutes 1 \\
        --out benchmarks/results/train_defaults.json
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _machine import command_line, describe_machine, machine_info, write_results

from vgloc.data.synthetic import generate_city
from vgloc.demo import cache_dir


def adaptation_line(run_dir: Path) -> str:
    """The log line saying what the run adapted to the data (or that nothing needed it)."""
    text = (run_dir / "info.log").read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if "adapted to the data" in ln or "fit the data" in ln]
    return re.sub(r"^.*?adapt: ", "", lines[0]) if lines else "(no adaptation line)"


def changed_keys(line: str) -> str:
    """``key old -> new`` for each setting the adaptation line says it changed."""
    pairs = re.findall(r"([a-z_]+\.[a-zA-Z_]+) (\S+) -> (\S+?)[ ,(]", line)
    return ", ".join(f"{k} {a}->{b}" for k, a, b in pairs) or "none"


def run_one(city: Path, method: str, minutes: float, run_dir: Path) -> dict[str, Any]:
    argv = [
        sys.executable, "-m", "vgloc.cli", "train", method, "--dataset", str(city), "--model", "tiny+gem",
        "--set", f"schedule.max_minutes={minutes}", "--set", "validation.before_training=true",
        "--run-dir", str(run_dir), "--log-level", "warning",
    ]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"method": method, "ok": False, "seconds": seconds, "error": proc.stderr[-2000:]}
    with (run_dir / "metrics.csv").open(newline="") as fh:
        history = [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]
    first = history[0]
    best = max(history, key=lambda r: float(r.get("val/queries/R@1", -1)))
    return {
        "method": method,
        "ok": True,
        "seconds": round(seconds, 1),
        "epochs": max(int(r["epoch"]) for r in history),
        "adapted": adaptation_line(run_dir),
        "before": {n: float(first[f"val/queries/R@{n}"]) for n in (1, 5)},
        "best": {n: float(best[f"val/queries/R@{n}"]) for n in (1, 5)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="tiny,small,medium")
    parser.add_argument("--methods", default="cosplace,triplet")
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--runs", type=Path, default=Path("runs/bench_train_defaults"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for size in args.sizes.split(","):
        city = generate_city(cache_dir() / "synthetic" / f"{size}-seed0", size=size, seed=0, progress=False)
        for method in args.methods.split(","):
            row = run_one(city, method, args.minutes, args.runs / f"{size}-{method}")
            row["size"] = size
            rows.append(row)
            print(json.dumps(row), flush=True)
    machine = machine_info()
    write_results(args.out, command=command_line(), machine=machine, rows=rows)
    print(f"\n{command_line()}\n{describe_machine(machine)}\n")
    print("| city | method | ok | wall s | epochs | val R@1 before -> best | R@5 before -> best | adapted |")
    print("|---|---|---|---:|---:|---|---|---|")
    for r in rows:
        if not r["ok"]:
            print(f"| {r['size']} | {r['method']} | no | {r['seconds']:.0f} | | | | {r['error'][-200:]} |")
            continue
        b, e = r["before"], r["best"]
        print(
            f"| {r['size']} | {r['method']} | yes | {r['seconds']:.0f} | {r['epochs']} | "
            f"{b[1]:.1f} -> {e[1]:.1f} | {b[5]:.1f} -> {e[5]:.1f} | {changed_keys(r['adapted'])} |"
        )


if __name__ == "__main__":
    main()
