"""Start-up of `vgloc locate` for one photo: a fresh process each time, BEFORE vs AFTER, interleaved.

A practitioner's call: ``vgloc locate PHOTO --index IDX`` in a new process. The index
(``resnet18+gem``, random weights kept in the index, the tiny synthetic city's test
database at 480x640) is built once; then each side runs ``--repeats`` fresh processes,
alternating, after one warm-up each (so the ONNX export and, for AFTER, the checkpoint's
export record are cached). Reported: wall seconds per process (median, min, max), the
same best match on both sides, and whether torchvision was imported (``-X importtime``).
``--precision int8`` builds the index in int8, so its locate queries are described in int8.

    git worktree add /tmp/locate_before <commit>
    python benchmarks/bench_locate_startup.py --before-src /tmp/locate_before/src \
        --out benchmarks/results/locate_startup.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(src: Path, photo: str, index: Path) -> tuple[float, str, bool]:
    """One fresh ``vgloc locate`` process: (wall s, its best match line, torchvision imported)."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-X", "importtime", "-m", "vgloc.cli", "locate", photo, "--index", str(index)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"locate failed ({src}):\n{proc.stderr[-3000:]}")
    best = next((line.strip() for line in proc.stdout.splitlines() if line.strip().startswith("#1")), "")
    imported = any(line.split("|")[-1].strip() == "torchvision" for line in proc.stderr.splitlines())
    return wall, best, imported


def main() -> None:
    sys.path.insert(0, str(HERE))
    from _machine import command_line, machine_info, write_results

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before-src", type=Path, required=True)
    ap.add_argument("--after-src", type=Path, default=HERE.parent / "src")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "vgloc_bench_locate")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--precision", default="auto", help="the index's precision (auto, int8)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import vgloc
    from vgloc.data import load_split
    from vgloc.data.synthetic import generate_city
    from vgloc.describers import ExtractionOptions

    root = generate_city(args.work / "city", "tiny", 0, image_size=(480, 640), progress=False)
    split = load_split(root, "test", progress=False)
    index = args.work / f"index_{args.precision}"
    if not (index / "metadata.json").is_file():
        options = ExtractionOptions(progress=False, precision=args.precision)
        vgloc.build_index(split.database, "resnet18+gem", index, options=options, seed=0)
    photo = str(split.queries["queries"].paths[0])
    sides = {"before": args.before_src.resolve(), "after": args.after_src.resolve()}
    walls: dict[str, list[float]] = {name: [] for name in sides}
    facts: dict[str, tuple[str, bool]] = {}
    for src in sides.values():  # warm-up: exports and records cached
        run(src, photo, index)
    for _ in range(args.repeats):
        for name, src in sides.items():
            wall, best, imported = run(src, photo, index)
            walls[name].append(wall)
            facts[name] = (best, imported)
    rows = {
        name: {
            "median_s": round(statistics.median(w), 3),
            "min_s": round(min(w), 3),
            "max_s": round(max(w), 3),
            "walls": [round(x, 3) for x in w],
            "best_match": facts[name][0],
            "imports_torchvision": facts[name][1],
        }
        for name, w in walls.items()
    }
    print("| side | median s | min s | max s | imports torchvision |\n|---|---:|---:|---:|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['median_s']} | {r['min_s']} | {r['max_s']} | {r['imports_torchvision']} |")
    same = rows["before"]["best_match"] == rows["after"]["best_match"]
    ratio = rows["before"]["median_s"] / rows["after"]["median_s"]
    print(f"\nspeed-up (median): {ratio:.2f}x; same best match: {same}")
    write_results(
        args.out,
        command=command_line(),
        machine=machine_info(),
        precision=args.precision,
        sides=rows,
        ratio=round(ratio, 3),
        same_best=same,
    )


if __name__ == "__main__":
    main()
