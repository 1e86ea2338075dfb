"""``vgloc index build`` of a folder of 12 MP phone photos, with and without draft decoding.

What a practitioner sees: the real geotagged photos of ``../shared/data/lund-exif-gps``
(1024x768, EXIF GPS) upscaled to ``--side`` px wide (a 12 MP phone's 4032x3024, EXIF
kept), indexed by ``vgloc index build`` (ResNet-18+GeM+FC512, random weights, seed 0,
its default 480x640) in fresh processes: the defaults (draft decoding, never below twice
480x640) and ``--no-jpeg-draft`` (every file decoded in full), alternating. Reported: wall
seconds of each process (median of ``--repeats``), the images/s the extraction logged,
and the cosine between the two indexes' descriptors.

    python benchmarks/bench_draft_index.py --out benchmarks/results/draft_index.json
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _machine import command_line, machine_info, write_results  # benchmarks/ is on sys.path
from bench_jpeg_draft import upscaled_photos

HERE = Path(__file__).resolve().parent
WAYS = {"draft (default)": [], "full (--no-jpeg-draft)": ["--no-jpeg-draft"]}


def build(photos: Path, out: Path, extra: list[str]) -> tuple[float, float | None]:
    """One fresh ``vgloc index build`` process: (wall seconds, logged extraction img/s)."""
    cmd = [
        sys.executable,
        "-m",
        "vgloc.cli",
        "index",
        "build",
        "--images",
        str(photos),
        "--out",
        str(out),
        "--model",
        "resnet18+gem+fc512",
        "--seed",
        "0",
        "--no-progress",
        "--run-dir",
        str(out) + ".run",
        *extra,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"index build failed:\n{proc.stderr[-3000:]}")
    rates = re.findall(r"([\d.]+) img/s", proc.stdout + proc.stderr)
    return wall, float(rates[-1]) if rates else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=Path, default=HERE.parent.parent / "shared" / "data" / "lund-exif-gps")
    ap.add_argument("--side", type=int, default=4032)
    ap.add_argument("--images", type=int, default=29)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        big = upscaled_photos(args.photos, args.images, args.side, folder)
        walls: dict[str, list[float]] = {w: [] for w in WAYS}
        rates: dict[str, list[float]] = {w: [] for w in WAYS}
        build(folder, Path(tmp) / "warm", [])  # warm-up: the ONNX export is cached
        for r in range(args.repeats):
            for i, (way, extra) in enumerate(WAYS.items()):
                wall, rate = build(folder, Path(tmp) / f"idx{r}-{i}", extra)
                walls[way].append(wall)
                if rate is not None:
                    rates[way].append(rate)
        a, b = (np.load(Path(tmp) / f"idx0-{i}" / "descriptors.npy").astype(np.float32) for i in range(2))
        cos = np.sum(a * b, axis=1)
    rows = {
        way: {
            "median_s": round(statistics.median(walls[way]), 2),
            "walls": [round(x, 2) for x in walls[way]],
            "extraction_img_s": round(statistics.median(rates[way]), 2) if rates[way] else None,
        }
        for way in WAYS
    }
    print(f"{len(big)} photos of {args.side} px wide, vgloc index build (fresh process each):")
    print("| decoding | median s | walls | extraction img/s |\n|---|---:|---|---:|")
    for way, row in rows.items():
        print(f"| {way} | {row['median_s']} | {row['walls']} | {row['extraction_img_s']} |")
    ratio = rows["full (--no-jpeg-draft)"]["median_s"] / rows["draft (default)"]["median_s"]
    print(
        f"speed-up {ratio:.2f}x; descriptor cosine draft vs full: min {cos.min():.6f}, mean {cos.mean():.6f}"
    )
    write_results(
        args.out,
        command=command_line(),
        machine=machine_info(),
        photos=len(big),
        side=args.side,
        rows=rows,
        speedup=round(ratio, 3),
        cosine={"min": round(float(cos.min()), 6), "mean": round(float(cos.mean()), 6)},
    )


if __name__ == "__main__":
    main()
