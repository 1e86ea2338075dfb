"""Load test of `vgloc serve`: concurrent clients on loopback for a bounded time.

Starts one server per ``--max-batch`` setting (subprocesses, free ports), then runs
the phases interleaved (A, B, A, B, ...: the machine's load from other jobs hits both
alike) with ``--clients`` concurrent clients, each posting a Lund photo and waiting
for the answer, again and again. Reports per setting: p50/p95/p99 latency,
throughput, errors (any non-200 answer or transport failure), the batch sizes the
server saw, and its resident memory before and after.

    nice python benchmarks/bench_service.py --clients 50 --duration 30 --max-batch 1 8 \
        --out benchmarks/results/service.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from _machine import (  # benchmarks/ is on sys.path when a script runs
    command_line,
    describe_machine,
    machine_info,
    write_results,
)

REPO = Path(__file__).resolve().parents[1]
LUND = Path(os.environ.get("VGLOC_SHARED", REPO.parent / "shared")) / "data" / "lund-exif-gps"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> dict[str, float]:
    """Resident memory now (VmRSS) and at its peak (VmHWM) of process ``pid``, in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024.0
    return {"rss_mb": fields.get("VmRSS", float("nan")), "peak_mb": fields.get("VmHWM", float("nan"))}


class Server:
    """``vgloc serve`` in a subprocess on a free loopback port."""

    def __init__(self, index: Path, max_batch: int, queue_size: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "vgloc.cli", "serve", "--index", str(index), "--port", str(self.port)]
        argv += ["--max-batch", str(max_batch), "--queue-size", str(queue_size), "--log-level", "warning"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise RuntimeError("server did not start in time")

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/health", timeout=10).json())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def load_phase(url: str, photos: list[bytes], clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` concurrent clients posting photos for ``seconds``; latencies of the answers."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        deadline = time.perf_counter() + seconds

        async def one_client(k: int) -> None:
            i = k
            while time.perf_counter() < deadline:
                data = photos[i % len(photos)]
                i += clients
                t0 = time.perf_counter()
                try:
                    r = await client.post("/locate", files={"file": ("photo.jpg", data, "image/jpeg")})
                    if r.status_code == 200:
                        latencies.append(time.perf_counter() - t0)
                    else:
                        errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one_client(k) for k in range(clients)))
        wall = time.perf_counter() - t0
    return {"latencies": latencies, "errors": errors, "wall_s": wall}


def build_lund_index(out: Path, model: str, size: tuple[int, int]) -> None:
    import vgloc
    from vgloc.describers import ExtractionOptions

    vgloc.build_index(
        LUND, model, out, options=ExtractionOptions(image_size=size, progress=False), validate=False
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--index", type=Path, default=None, help="index to serve (default: the Lund photos, built now)"
    )
    ap.add_argument("--model", default="tiny+gem", help="model of the default index (default: tiny+gem)")
    ap.add_argument("--image-size", default="240,320", help="H,W of the default index (default: 240,320)")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of load per setting (default: 30)")
    ap.add_argument("--phases", type=int, default=3, help="interleaved phases the duration is split into")
    ap.add_argument(
        "--max-batch", type=int, nargs="+", default=[1, 8], help="settings compared (default: 1 8)"
    )
    ap.add_argument("--queue-size", type=int, default=64)
    ap.add_argument("--out", type=Path, default=None, help="JSON results file")
    args = ap.parse_args()

    photos = [p.read_bytes() for p in sorted(LUND.glob("*.jpg"))]
    tmp = tempfile.TemporaryDirectory(prefix="bench-service-")
    index = args.index
    if index is None:
        index = Path(tmp.name) / "lund.idx"
        h, w = (int(v) for v in args.image_size.split(","))
        build_lund_index(index, args.model, (h, w))
    servers = {b: Server(index, b, args.queue_size) for b in args.max_batch}
    results: dict[int, dict[str, Any]] = {}
    try:
        for b, server in servers.items():
            server.wait_ready()
            # Warm up (first call loads lazily-built engines), then take the memory baseline.
            asyncio.run(load_phase(server.url, photos, 2, 2.0))
            results[b] = {
                "latencies": [],
                "errors": {},
                "wall_s": 0.0,
                "memory_before": rss_mb(server.proc.pid),
            }
        for phase in range(args.phases):
            for b, server in servers.items():
                out = asyncio.run(load_phase(server.url, photos, args.clients, args.duration / args.phases))
                r = results[b]
                r["latencies"] += out["latencies"]
                r["wall_s"] += out["wall_s"]
                for k, v in out["errors"].items():
                    r["errors"][k] = r["errors"].get(k, 0) + v
                print(
                    f"phase {phase + 1}/{args.phases} max-batch {b}: {len(out['latencies'])} answers",
                    flush=True,
                )
        for b, server in servers.items():
            r = results[b]
            r["memory_after"] = rss_mb(server.proc.pid)
            r["batching"] = server.health()["batching"]
    finally:
        for server in servers.values():
            server.stop()
        tmp.cleanup()

    machine = machine_info()
    summary = {}
    print(f"\n{describe_machine(machine)}\n`{command_line()}`\n")
    print(
        "| max batch | answers | throughput (req/s) | p50 (ms) | p95 (ms) | p99 (ms) | errors | mean batch | RSS before -> after (peak), MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for b, r in results.items():
        lat = np.array(r.pop("latencies")) * 1000.0
        p50, p95, p99 = (float(np.percentile(lat, q)) if len(lat) else float("nan") for q in (50, 95, 99))
        n_errors = sum(r["errors"].values())
        s = {
            "answers": len(lat),
            "throughput_rps": len(lat) / r["wall_s"],
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
            **r,  # errors: {status or exception name: count}
            "error_count": n_errors,
        }
        summary[str(b)] = s
        mem0, mem1 = r["memory_before"], r["memory_after"]
        print(
            f"| {b} | {len(lat)} | {s['throughput_rps']:.1f} | {p50:.0f} | {p95:.0f} | {p99:.0f} | {n_errors} "
            f"| {r['batching']['mean_batch']:.2f} | {mem0['rss_mb']:.0f} -> {mem1['rss_mb']:.0f} ({mem1['peak_mb']:.0f}) |"
        )
    write_results(
        args.out,
        command=command_line(),
        machine=machine,
        clients=args.clients,
        duration_s=args.duration,
        phases=args.phases,
        index=str(args.index)
        if args.index
        else f"Lund ({len(photos)} photos), {args.model} at {args.image_size}",
        results=summary,
    )


if __name__ == "__main__":
    main()
