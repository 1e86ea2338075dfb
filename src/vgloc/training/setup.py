"""Building a run's machinery: seeds, backends and precision, the model, DDP wrapping.

Split from the engine; each function does one setup step of
:meth:`vgloc.training.engine.Trainer.run`.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from vgloc.config import ConfigError, TrainConfig
from vgloc.training.distributed import DistInfo
from vgloc.training.fastpath import resolve_precision

if TYPE_CHECKING:
    from vgloc.models import GeoLocalizationModel

__all__ = ["build_training_model", "configure_backends", "seed_everything", "sync_buffers", "wrap_ddp"]

log = logging.getLogger("vgloc.training.engine")


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def configure_backends(
    cfg: TrainConfig, device: torch.device, precision: str | None = None
) -> torch.dtype | None:
    """Check the precision against the device, set cuDNN flags; return the autocast dtype.

    Args:
        cfg: The run's configuration.
        device: The training device.
        precision: The resolved precision (``fp32``, ``bf16``, ``fp16``); None:
            ``runtime.precision`` resolved here (:func:`~vgloc.training.fastpath.resolve_precision`).

    Raises:
        ConfigError: fp16 without CUDA.
    """
    r = cfg.runtime
    if precision is None:
        precision = resolve_precision(r.precision, device)
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"runtime.precision=fp16 needs a CUDA device (device is {device}); use bf16 on CPU")
    if device.type == "cuda":
        # Set when a run starts, never at import (VGB commons.py:16-27 does the same when seeding).
        torch.backends.cudnn.deterministic = r.deterministic
        torch.backends.cudnn.benchmark = not r.deterministic
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def build_training_model(
    cfg: TrainConfig, device: torch.device, channels_last: bool | None = None
) -> GeoLocalizationModel:
    """The model of ``model.spec`` on ``device``, early layers frozen unless ``model.train_all_layers``.

    Its initial weights depend on ``runtime.seed`` only, not on what ran before.
    ``channels_last`` (None: ``runtime.channels_last``) stores the weights NHWC.

    The frozen prefix costs no autograd bookkeeping: its parameters do not require
    gradients and neither does the input batch, so autograd records no graph (and saves
    no activation) before the first trainable layer; only its forward pass is paid.
    """
    from vgloc.models import create_model, freeze_early_layers
    from vgloc.models.hub import find_published
    from vgloc.models.spec import ModelSpec
    from vgloc.registry import BACKBONES

    m = cfg.model
    published = find_published(m.spec)  # a published name starts from its released weights
    spec = ModelSpec.parse(published.spec if published is not None else m.spec)
    pretrained = m.pretrained
    if pretrained is None:
        pretrained = (
            "torchvision" in BACKBONES.metadata(spec.backbone) and m.weights is None and not published
        )
    torch.manual_seed(cfg.runtime.seed)
    model = create_model(m.spec, pretrained=bool(pretrained), weights=m.weights)
    if m.train_all_layers:
        log.info("training all layers (model.train_all_layers)")
    else:
        frozen = freeze_early_layers(model)
        log.info("frozen backbone children %s (as CosPlace / the VG benchmark)", ", ".join(frozen))
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info(
        "model %s: %.2fM trainable parameters, descriptor %d%s",
        model.spec,
        n_train / 1e6,
        model.descriptor_dim,
        ", ImageNet backbone" if pretrained else "",
    )
    model.to(device)
    if cfg.runtime.channels_last if channels_last is None else channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def sync_buffers(model: nn.Module, dist_info: DistInfo) -> None:
    """Give every process rank 0's buffers (BatchNorm statistics).

    DDP broadcasts them at the start of each forward pass, so after the last step of
    an epoch each process still holds the statistics of its own last batch; this makes
    validation, checkpoints and the final model the same on every process.
    """
    if not dist_info.enabled:
        return
    import torch.distributed as dist

    for buf in model.buffers():
        dist.broadcast(buf, src=0)


def wrap_ddp(model: nn.Module, dist_info: DistInfo, device: torch.device) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel under torchrun, else itself."""
    if not dist_info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)
