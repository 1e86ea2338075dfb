"""Benchmark searching a geo-index in RAM vs. on disk (memory-mapped): peak RSS and query time.

Builds one vgloc index of N clustered 512-d descriptors (``factory="auto"``: above 100k
images the compact IVF-PQ index with exact re-scoring from ``descriptors.npy``; or a
given factory), saves it, then in fresh processes, alternating in-RAM and on-disk
(``GeoIndex.load(on_disk=False/True)``), loads it and searches Q queries in batches.
Each process reports its peak resident memory (``VmHWM``, reset after the imports)
above what it held after imports, the load time and the search time per query, and whether its results equal
the in-RAM ones. The page cache is not dropped between runs (no root): mapped pages of
a warm file count in the mapped process's RSS only when touched.

Example (what BENCHMARKS.md reports)::

    nice python benchmarks/bench_ondisk.py --n 200000 --repeats 2 --index-dir /tmp/bench-ondisk \\
        --out benchmarks/results/ondisk.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DIM = 512


def _clustered(n: int, seed: int, centers: np.ndarray) -> np.ndarray:
    """``n`` unit vectors around random centres (as bench_search's ``clustered`` data)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, centers.shape[1]), np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        x = centers[rng.integers(0, len(centers), m)] + rng.standard_normal((m, centers.shape[1])) / np.sqrt(
            centers.shape[1]
        )
        out[s : s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def build(root: Path, n: int, factory: str) -> None:
    """Write an index of ``n`` clustered descriptors to ``root`` and the queries beside it."""
    from vgloc.data.records import GeoImageSet
    from vgloc.index import GeoIndex

    rng = np.random.default_rng(0)
    centers = rng.standard_normal((1000, DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    desc = _clustered(n, 1, centers)
    images = GeoImageSet(
        paths=[Path(f"/db/{i:08d}.jpg") for i in range(n)],
        utm=rng.uniform(0, 1000, (n, 2)),
        latlon=np.full((n, 2), np.nan),
        heading=np.full(n, np.nan),
        frame=None,
    )
    t0 = time.perf_counter()
    GeoIndex.build(desc, images, model_spec="bench+512", image_size=None, factory=factory).save(root)
    print(f"built {factory} over {n} vectors in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    np.save(root.parent / "queries.npy", _clustered(1000, 2, centers))


def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak_rss() -> int:
    """Reset the peak-RSS mark to the current RSS (Linux ``clear_refs`` 5) and return it in KiB,
    so that the imports' transient peak does not hide the index's."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS")


def child(root: Path, on_disk: bool, k: int, batch: int, num_queries: int) -> dict[str, Any]:
    """Load and search in this (fresh) process; print one JSON line."""
    import faiss

    from vgloc.index import GeoIndex

    faiss.omp_set_num_threads(1)
    queries = np.load(root.parent / "queries.npy")[:num_queries]
    base = _reset_peak_rss()
    base_anon = _status_kib("RssAnon")
    t0 = time.perf_counter()
    gi = GeoIndex.load(root, on_disk=on_disk, verify_checksums=False)
    t_load = time.perf_counter() - t0
    ids = []
    t0 = time.perf_counter()
    for s in range(0, len(queries), batch):
        ids.append(gi.search(queries[s : s + batch], k)[1])
    t_search = time.perf_counter() - t0
    peak = _status_kib("VmHWM")
    return {
        "on_disk": on_disk,
        "queries": len(queries),
        "peak_rss_above_imports_mib": (peak - base) / 1024,
        # Private memory vs. pages of mapped files (which the kernel can drop under pressure).
        "rss_anon_after_mib": (_status_kib("RssAnon") - base_anon) / 1024,
        "rss_file_after_mib": _status_kib("RssFile") / 1024,
        "rss_after_mib": _status_kib("VmRSS") / 1024,
        "load_s": t_load,
        "ms_per_query": 1000 * t_search / len(queries),
        "ids_sha": __import__("hashlib").sha256(np.concatenate(ids).tobytes()).hexdigest()[:16],
        "data_mib": sum(f.stat().st_size for f in root.iterdir()) / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300_000, help="database size (default 300,000)")
    ap.add_argument("--factory", default="auto", help="index factory (default auto)")
    ap.add_argument("--repeats", type=int, default=3, help="alternating in-RAM / on-disk runs each")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=100, help="queries per search call")
    ap.add_argument("--queries", type=int, default=1000, help="queries searched per process (<= 1000)")
    ap.add_argument(
        "--index-dir",
        type=Path,
        default=None,
        help="keep the built index here and reuse it (default: a temp dir)",
    )
    ap.add_argument("--out", type=Path, default=None, help="results JSON")
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--on-disk", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, bool(args.on_disk), args.k, args.batch, args.queries)))
        return

    sys.path.insert(0, str(Path(__file__).parent))
    from _machine import command_line, describe_machine, machine_info, write_results

    from vgloc.index import GeoIndex

    with tempfile.TemporaryDirectory() as tmp:
        root = (args.index_dir or Path(tmp)) / "bench.idx"
        if not (root / "metadata.json").is_file():
            root.parent.mkdir(parents=True, exist_ok=True)
            build(root, args.n, args.factory)
        meta = GeoIndex.read_metadata(root)
        n, factory = meta.num_images, meta.faiss_factory
        rows: list[dict[str, Any]] = []
        for rep in range(args.repeats):
            for on_disk in (False, True):  # interleaved: the same load on both
                cmd = [sys.executable, __file__, "--child", str(root), "--on-disk", str(int(on_disk))]
                cmd += ["--k", str(args.k), "--batch", str(args.batch), "--queries", str(args.queries)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                row = json.loads(out.strip().splitlines()[-1]) | {"repeat": rep}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    machine = machine_info()
    keys = ("peak_rss_above_imports_mib", "rss_anon_after_mib", "rss_file_after_mib")
    summary = {}
    for mode in (False, True):
        sel = [r for r in rows if r["on_disk"] == mode]
        summary["on disk (mapped)" if mode else "in RAM"] = {
            **{f"{key}_max": max(r[key] for r in sel) for key in keys},
            "ms_per_query_median": float(np.median([r["ms_per_query"] for r in sel])),
            "load_s_median": float(np.median([r["load_s"] for r in sel])),
        }
    same = len({r["ids_sha"] for r in rows}) == 1
    print(describe_machine(machine))
    print(
        f"N={n} D={DIM} {factory}, index files {rows[0]['data_mib']:.0f} MiB, {args.queries} queries; identical ids: {same}"
    )
    print(
        "| mode | peak RSS above imports (MiB) | private RSS added (MiB) | mapped-file RSS after search (MiB) "
        f"| load (s) | search (ms/query, batches of {args.batch}) |"
    )
    print("|---|---|---|---|---|---|")
    for name, v in summary.items():
        cells = " | ".join(f"{v[f'{key}_max']:.0f}" for key in keys)
        print(f"| {name} | {cells} | {v['load_s_median']:.2f} | {v['ms_per_query_median']:.2f} |")
    write_results(
        args.out, command=command_line(), machine=machine, rows=rows, summary=summary, identical=same
    )


if __name__ == "__main__":
    main()
