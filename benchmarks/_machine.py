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


def machine_info() -> dict[str, Any]:
    """CPU, core count, torch threads, GPU, torch and Python versions, load average."""
    import torch

    return {
        "cpu": cpu_name(),
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
        f"Machine: {machine['cpu']} ({machine['cpu_count']} CPUs, {machine['torch_threads']} torch threads)"
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
