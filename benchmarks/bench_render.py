"""Benchmark the synthetic-city renderer: street views per second, with and without JPEG writing.

Usage:
    python benchmarks/bench_render.py                 # 256x192, 300 views per domain, 1 process
    python benchmarks/bench_render.py --generate small --workers 2   # + end-to-end generate_city

It reports, per domain, render-only throughput in one process (CPU time and wall
time: on a shared machine wall time includes other jobs), render + JPEG encoding,
and optionally the end-to-end throughput of ``generate_city`` (rendering, JPEG
writing, aerial tiles, worker start-up) with N worker processes.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image

from vgloc.data.synthetic import CityMap, Conditions, generate_city, render_view
from vgloc.data.synthetic.generate import JPEG_QUALITY


def bench_views(city: CityMap, n: int, size: tuple[int, int], domain: str, jpeg: bool) -> tuple[float, float]:
    """Images per second (wall, CPU) of n views along the database path of the train split."""
    db = city.database_poses("train")
    q = city.query_poses("train")
    poses = db if domain == "database" else q
    idx = [i % len(poses) for i in range(n)]
    render_view(city, poses.east[0], poses.north[0], poses.heading[0], size=size)  # warm the caches
    w0, c0 = time.perf_counter(), time.process_time()
    for k, i in enumerate(idx):
        cond = Conditions.sample(domain, [0, k])
        img = render_view(
            city, poses.east[i], poses.north[i], poses.heading[i], poses.pitch[i], size=size, conditions=cond
        )
        if jpeg:
            Image.fromarray(img).save(io.BytesIO(), format="JPEG", quality=JPEG_QUALITY)  # type: ignore[arg-type]
    return n / (time.perf_counter() - w0), n / (time.process_time() - c0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="views per measurement")
    ap.add_argument("--height", type=int, default=192)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--city", default="small", help="city size to render views of")
    ap.add_argument("--generate", default=None, help="also time generate_city of this size")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    size = (args.height, args.width)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; image {args.width}x{args.height}")  # fmt: skip
    city = CityMap.generate(0, args.city)
    print(f"{'domain':<10} {'render img/s (wall | cpu)':>28} {'+ JPEG img/s (wall | cpu)':>28}")
    for domain in ("database", "day", "night", "fog", "occluded"):
        rw, rc = bench_views(city, args.n, size, domain, jpeg=False)
        jw, jc = bench_views(city, args.n, size, domain, jpeg=True)
        print(f"{domain:<10} {rw:>15.1f} | {rc:>8.1f} {jw:>17.1f} | {jc:>8.1f}")
    if args.generate:
        tmp = Path(tempfile.mkdtemp(prefix="vgloc-bench-"))
        try:
            t = time.perf_counter()
            root = generate_city(
                tmp / "city", args.generate, 0, image_size=size, workers=args.workers, progress=False
            )
            dt = time.perf_counter() - t
            n = sum(1 for _ in (root / "images").rglob("*.jpg"))
            print(f"generate_city({args.generate!r}, workers={args.workers}): {n} images "
                  f"(incl. aerial 256x256) in {dt:.1f} s = {n / dt:.1f} img/s written")  # fmt: skip
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
