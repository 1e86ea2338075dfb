"""Multi-process training with ``torch.distributed`` (DDP), launched by ``torchrun``.

``torchrun --nproc_per_node=G [--nnodes=N --rdzv_endpoint=HOST:PORT] -m vgloc.cli train ...``
starts one process per GPU and sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them
(``env://`` initialisation), picks ``nccl`` on CUDA and ``gloo`` on CPU, and gives
each process the device ``cuda:<LOCAL_RANK>``. Without those variables (or with
``WORLD_SIZE=1``) training runs in a single process and nothing here does anything.

Conventions of the trainers:

* batch sizes in the config are *global*: each of the ``W`` processes takes
  ``batch_size / W`` samples of every batch (an error when not divisible), so the
  recipe (steps per epoch, samples per step) does not depend on the number of GPUs;
* gradients are averaged over processes (DDP for the descriptor network, an explicit
  all-reduce for CosPlace's per-group classifiers), so a step equals a single-process
  step on the global batch up to floating-point summation order (BatchNorm
  statistics stay per process, as with plain DDP);
* only rank 0 writes checkpoints, logs and metrics; logged losses are averaged over
  processes; validation runs on rank 0 (the others wait) and its result is broadcast,
  so every process takes the same model-selection and early-stopping decisions;
* the triplet trainer's mining cache is described half by each process and gathered,
  so every process mines the same tuples (checked).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "DistInfo",
    "all_gather_object",
    "all_reduce_mean",
    "average_gradients",
    "barrier",
    "broadcast_object",
    "distributed_session",
    "gather_rows",
    "resolve_device",
]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job.

    Attributes:
        rank: Global rank (0 for a single process).
        world_size: Number of processes.
        local_rank: Rank within the node (selects the GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that writes files."""
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """Turn a device option into a ``torch.device``.

    Args:
        name: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:K``.
        local_rank: Under torchrun, ``auto``/``cuda`` become ``cuda:<local_rank>``.

    Returns:
        The device.

    Raises:
        RuntimeError: CUDA was asked for but is not available.
    """
    name = name.strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {name!r} was asked for but CUDA is not available; use runtime.device=cpu"
            )
        if name == "cuda":
            return torch.device("cuda", local_rank)
    return torch.device(name)


@contextmanager
def distributed_session(device: str, backend: str | None = None) -> Iterator[tuple[DistInfo, torch.device]]:
    """Join the torchrun job described by the environment, for the duration of a run.

    A process group that already exists (set up by the caller) is used as is and left
    open; one created here is destroyed on exit.

    Args:
        device: The ``runtime.device`` option (see :func:`resolve_device`).
        backend: ``nccl``/``gloo``/``mpi``; None: ``nccl`` on CUDA, ``gloo`` on CPU.

    Yields:
        ``(DistInfo, device)``.
    """
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        info = DistInfo(dist.get_rank(), dist.get_world_size(), local)
        yield info, resolve_device(device, info.local_rank)
        return
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield DistInfo(), resolve_device(device, 0)
        return
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    dev = resolve_device(device, local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    chosen = backend or ("nccl" if dev.type == "cuda" else "gloo")
    dist.init_process_group(backend=chosen, init_method="env://")
    try:
        yield DistInfo(rank, world, local), dev
    finally:
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op for a single process)."""
    if info.enabled:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of a tensor over processes (a copy; the input is left unchanged).

    Args:
        value: Same shape on every process.
        info: The job.

    Returns:
        The average.
    """
    out = value.detach().clone()
    if info.enabled:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        out /= info.world_size
    return out


def average_gradients(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """Average ``.grad`` over processes in place (for modules not wrapped in DDP).

    Args:
        params: Parameters whose gradients to average (those without a gradient are skipped).
        info: The job.
    """
    if not info.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= info.world_size
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def broadcast_object(obj: Any, info: DistInfo, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every process (picklable objects).

    Args:
        obj: The object (ignored on other ranks).
        info: The job.
        src: The sending rank.

    Returns:
        The object sent by ``src``.
    """
    if not info.enabled:
        return obj
    box = [obj if info.rank == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any, info: DistInfo) -> list[Any]:
    """Every process's ``obj``, indexed by rank.

    Args:
        obj: This process's object (picklable).
        info: The job.

    Returns:
        ``world_size`` objects.
    """
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def gather_rows(local: np.ndarray, total: int, info: DistInfo, device: torch.device) -> np.ndarray:
    """Reassemble rows computed round-robin: rank ``r`` holds rows ``r, r+W, r+2W, ...``.

    Args:
        local: This rank's rows, in order.
        total: Number of rows overall.
        info: The job.
        device: Device for the collective (CUDA under nccl).

    Returns:
        All ``total`` rows in order, on every process.

    Shape:
        - local: ``(ceil((total - rank) / W), D)``; output: ``(total, D)``
    """
    if not info.enabled:
        return local
    w = info.world_size
    per = -(-total // w)
    dim = local.shape[1]
    buf = torch.zeros(per, dim, dtype=torch.float32, device=device)
    buf[: len(local)] = torch.from_numpy(np.ascontiguousarray(local, dtype=np.float32)).to(device)
    parts = [torch.empty_like(buf) for _ in range(w)]
    dist.all_gather(parts, buf)
    out = np.empty((total, dim), dtype=np.float32)
    for r, part in enumerate(parts):
        rows = np.arange(r, total, w)
        out[rows] = part[: len(rows)].cpu().numpy()
    return out
