"""What machine a benchmark ran on (shared by the scripts in this folder)."""

from __future__ import annotations

import platform
import subprocess


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
