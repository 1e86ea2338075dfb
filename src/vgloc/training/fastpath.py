"""The training fast path chosen by the hardware: precision, memory format, fused optimizers, compile.

``runtime.precision="auto"`` (the default) picks what the device runs fastest without
changing the recipe's results:

* CPU: bf16 autocast only where the CPU computes bf16 natively (``avx512_bf16`` or
  ``amx_bf16`` in its flags: about 2.5x fp32 with channels_last); elsewhere fp32,
  because emulated bf16 on AVX2/AVX-512F-only CPUs is several times *slower* than fp32;
* CUDA: bf16 autocast where the GPU supports it (no loss scaling needed), else fp16
  with a GradScaler.

``runtime.channels_last=None``: NHWC with autocast (where oneDNN/cuDNN's
reduced-precision kernels want it) and on CPUs, the plain layout for fp32 on CUDA.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable

import torch
from torch import nn

__all__ = [
    "cpu_flags",
    "fused_optimizer_supported",
    "maybe_compile",
    "resolve_channels_last",
    "resolve_precision",
]

log = logging.getLogger("vgloc.training.engine")

_NATIVE_BF16 = frozenset({"avx512_bf16", "amx_bf16"})


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of this machine (``/proc/cpuinfo``; empty where unreadable)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def resolve_precision(precision: str, device: torch.device, flags: Iterable[str] | None = None) -> str:
    """The concrete precision (``fp32``, ``bf16`` or ``fp16``) a run uses.

    Args:
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (``runtime.precision``).
        device: The training device.
        flags: CPU flags to decide by (default: this machine's, :func:`cpu_flags`).

    Returns:
        ``precision`` itself unless it is ``auto`` (see the module docstring).

    Raises:
        ValueError: An unknown precision name.
    """
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"unknown precision {precision!r}; choose auto, fp32, bf16 or fp16")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu":
        have = cpu_flags() if flags is None else frozenset(flags)
        return "bf16" if have & _NATIVE_BF16 else "fp32"
    return "fp32"


def resolve_channels_last(
    channels_last: bool | None, precision: str, device: torch.device | None = None
) -> bool:
    """NHWC or not: ``channels_last`` when given, else on with autocast and on CPUs.

    On a CPU oneDNN's NHWC convolutions are faster in fp32 too (ResNet-18 forward +
    backward at 224 px: 1.04-1.10x on 2 AVX-512 cores, ``bench_train_parts.py``); fp32
    on CUDA keeps the plain layout (not measured here).

    Args:
        channels_last: ``runtime.channels_last`` (None: automatic).
        precision: The resolved precision (:func:`resolve_precision`).
        device: The training device (None: not a CPU).
    """
    if channels_last is not None:
        return bool(channels_last)
    return precision != "fp32" or (device is not None and device.type == "cpu")


def fused_optimizer_supported(params: Iterable[torch.Tensor]) -> bool:
    """Whether torch's fused Adam/AdamW/SGD kernels accept these parameters.

    They need floating-point tensors on one of the devices torch has fused kernels for
    (CPU and CUDA in torch >= 2.4), and none may be sparse.
    """
    plist = list(params)
    if not plist:
        return False
    devices = {p.device.type for p in plist}
    return (
        len(devices) == 1
        and devices <= {"cpu", "cuda"}
        and all(p.is_floating_point() and not p.is_sparse for p in plist)
    )


def maybe_compile(net: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile(net)`` when ``enabled`` (``runtime.compile``), else ``net``.

    The compiled module shares its parameters with ``net``: checkpoints and
    validation keep using the plain model.
    """
    if not enabled:
        return net
    log.info("compiling the training network with torch.compile (the first steps are slow)")
    return torch.compile(net)  # type: ignore[return-value]
