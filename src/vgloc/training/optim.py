"""Optimizers and learning-rate schedulers built from :class:`vgloc.config.OptimConfig` / ``ScheduleConfig``.

=========  ==================================================  ======================================
name       torch class and settings                            default weight decay (None in config)
=========  ==================================================  ======================================
``adam``   ``Adam(lr, betas)``                                 0 (VGB and CosPlace use none)
``adamw``  ``AdamW(lr, betas)``                                0.01 (torch's default)
``sgd``    ``SGD(lr, momentum)``                               0.001 (VGB train.py:67-68)
``asgd``   ``ASGD(lr)``                                        0 (torch's default)
=========  ==================================================  ======================================

Schedulers: ``none``; ``plateau`` = ``ReduceLROnPlateau(mode="max")`` stepped with the
validation selection metric; ``cosine`` = ``CosineAnnealingLR(T_max=epochs)`` stepped
once per epoch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from vgloc.config import OptimConfig, ScheduleConfig
from vgloc.training.fastpath import fused_optimizer_supported

__all__ = [
    "OPTIMIZERS",
    "build_optimizer",
    "build_scheduler",
    "default_weight_decay",
    "optimizer_to",
    "step_scheduler",
]

OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd", "asgd")
_DEFAULT_WD = {"adam": 0.0, "adamw": 0.01, "sgd": 0.001, "asgd": 0.0}

Scheduler = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau


def default_weight_decay(name: str) -> float:
    """The weight decay used when ``optim.weight_decay`` is None.

    Args:
        name: Optimizer name.

    Returns:
        0 for Adam/ASGD, 0.001 for SGD (VG benchmark), 0.01 for AdamW (torch).
    """
    if name not in _DEFAULT_WD:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    return _DEFAULT_WD[name]


def build_optimizer(
    params: Iterable[nn.Parameter] | Iterable[dict[str, Any]],
    cfg: OptimConfig,
    *,
    lr: float | None = None,
    name: str | None = None,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """Build the optimizer named in ``cfg``.

    Adam, AdamW and SGD use torch's fused kernels (one kernel for all parameters,
    instead of a loop of small ops per tensor) where the parameters allow them
    (:func:`~vgloc.training.fastpath.fused_optimizer_supported`): the same update up to
    float rounding, and on a CPU several times faster than the per-tensor loop.

    Args:
        params: Parameters (those with ``requires_grad``) or parameter groups.
        cfg: The optimizer section.
        lr: Learning rate overriding ``cfg.lr`` (e.g. CosPlace's classifiers, 0.01).
        name: Optimizer overriding ``cfg.name``.
        fused: Force the fused kernels on or off; None: where supported.

    Returns:
        The optimizer.

    Raises:
        ValueError: Unknown optimizer name or no parameter to optimise.
    """
    name = name or cfg.name
    lr = cfg.lr if lr is None else lr
    wd = default_weight_decay(name) if cfg.weight_decay is None else float(cfg.weight_decay)
    plist: list[Any] = list(params)
    if not plist:
        raise ValueError("no trainable parameters: every parameter has requires_grad=False")
    if fused is None:
        tensors = [t for item in plist for t in (item["params"] if isinstance(item, dict) else [item])]
        fused = name in ("adam", "adamw", "sgd") and fused_optimizer_supported(tensors)
    # fused=None (not False) keeps torch's own choice of the foreach/for-loop kernels.
    use = True if fused else None
    if name == "adam":
        return torch.optim.Adam(plist, lr=lr, betas=cfg.betas, weight_decay=wd, fused=use)
    if name == "adamw":
        return torch.optim.AdamW(plist, lr=lr, betas=cfg.betas, weight_decay=wd, fused=use)
    if name == "sgd":
        return torch.optim.SGD(plist, lr=lr, momentum=cfg.momentum, weight_decay=wd, fused=use)
    if name == "asgd":
        return torch.optim.ASGD(plist, lr=lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig) -> Scheduler | None:
    """Build the learning-rate scheduler named in ``cfg``.

    Args:
        optimizer: The descriptor network's optimizer.
        cfg: The schedule section.

    Returns:
        The scheduler, or None for ``scheduler: none``.
    """
    if cfg.scheduler == "none":
        return None
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=cfg.plateau_factor, patience=cfg.plateau_patience
        )
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=cfg.epochs, eta_min=cfg.cosine_eta_min
        )
    raise ValueError(f"unknown scheduler {cfg.scheduler!r}; choose none, plateau or cosine")


def step_scheduler(scheduler: Scheduler | None, metric: float | None) -> None:
    """Advance a scheduler by one epoch.

    Args:
        scheduler: From :func:`build_scheduler` (None: nothing to do).
        metric: The validation selection metric (used by ``plateau`` only; a
            ``plateau`` scheduler without a metric is not stepped).
    """
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        if metric is not None:
            scheduler.step(metric)
        return
    scheduler.step()


def optimizer_to(optimizer: torch.optim.Optimizer, device: torch.device | str) -> None:
    """Move an optimizer's state tensors (e.g. Adam moments) to ``device`` in place.

    CosPlace keeps only the current group's classifier and its optimizer on the GPU
    (CP train.py:104-110); this moves the optimizer half of that.

    Args:
        optimizer: The optimizer.
        device: Destination device.
    """
    # Adam's scalar "step" counter stays on the CPU unless the kernels are fused or
    # capturable: those keep it on the parameters' device.
    on_device = any(g.get("fused") or g.get("capturable") for g in optimizer.param_groups)
    for state in optimizer.state.values():
        for k, v in state.items():
            if isinstance(v, torch.Tensor) and (v.ndim > 0 or k != "step" or on_device):
                state[k] = v.to(device)
