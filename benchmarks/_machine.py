"""What machine a benchmark ran on (shared by the scripts in this folder)."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any


def cpu_name() -> str:
    """The CPU model (``lscpu``'s model name), or the platform's guess."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.strip().startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


# The CPU features that decide vgloc's fast paths (bf16 native or emulated, int8 VNNI).
_FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_flags() -> list[str]:
    """Which of the fast-path CPU features (AVX2, AVX-512, VNNI, BF16, AMX) this CPU reports."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    have = set(line.split(":", 1)[-1].split())
    return [f for f in _FLAGS_OF_INTEREST if f in have]


def machine_info() -> dict[str, Any]:
    """CPU and its fast-path flags, core count, torch threads, GPU, torch and Python versions, load."""
    import torch

    return {
        "cpu": cpu_name(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def describe_machine(machine: dict[str, Any]) -> str:
    """One Markdown line naming the machine of :func:`machine_info`."""
    return (
        f"Machine: {machine['cpu']} ({machine['cpu_count']} CPUs, {machine['torch_threads']} torch threads"
        + (f"; {' '.join(machine['cpu_flags'])}" if machine.get("cpu_flags") else "")
        + ")"
        + (f", {machine['gpu']}" if machine["gpu"] else "")
        + f", torch {machine['torch']}"
        + (f", load average {machine['load_average'][0]:.2f}" if machine["load_average"] else "")
    )


def command_line() -> str:
    """The command that ran this script, quoted so it can be pasted into a shell."""
    return "python " + shlex.join(sys.argv)


def write_results(path: Path | None, **results: Any) -> None:
    """Write ``results`` as indented JSON to ``path`` atomically (nothing when ``path`` is None)."""
    if path is None:
        return
    from vgloc.io import write_json_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, results)
