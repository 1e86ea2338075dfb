"""Training a cross-view network for a fixed number of steps.

One step: a batch of ``batch_size`` (street view, rotated tile) pairs with distinct tiles
(:func:`vgloc.crossview.data.distinct_tile_batches`), the registered matching loss on the
two embedding batches, plus (with an orientation head) ``orientation_weight`` times the
mean squared error between the predicted and true ``(cos, sin)`` of the relative heading.
With ``chunk_size`` > 0 the step runs through :func:`vgloc.crossview.gradcache.cached_backward`,
so the batch can be far larger than what fits in memory at once, with the same gradients.

The pair classifiers (``config.arch`` ``classification`` / ``hybrid``,
:mod:`vgloc.crossview.pairnet`) train with ``loss="bce"``: binary cross-entropy of the
batch's matching pairs and ``negatives`` (default 1, or ``all``) non-matching pairs per
street view (:func:`vgloc.crossview.pairnet.pair_bce_loss`); no gradient caching (there
are no embeddings whose gradients could be cached) and no orientation head.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from vgloc.crossview.data import PairDataset, distinct_tile_batches, load_pairs
from vgloc.crossview.gradcache import cached_backward
from vgloc.crossview.losses import create_crossview_loss
from vgloc.crossview.network import CrossViewConfig, CrossViewNet, build_crossview_net, save_crossview
from vgloc.crossview.pairnet import PairClassifier, pair_bce_loss, parse_negatives

__all__ = ["TrainSettings", "train_crossview"]

log = logging.getLogger("vgloc.crossview")


@dataclass(frozen=True)
class TrainSettings:
    """Everything a training run reads besides the network configuration.

    Attributes:
        dataset: A synthetic city, a folder with ``<split>.csv``, or a CSV file.
        loss: A name of :data:`vgloc.registry.CROSSVIEW_LOSSES`, or ``bce`` for the pair classifiers.
        loss_args: Keyword arguments of that loss (``margin``, ``alpha``, ``negatives``, ``temperature``).
        split: Split to train on.
        folder: Street-view folder of a synthetic city (``database``: many headings per place).
        steps: Optimiser steps.
        batch_size: Pairs per step (distinct tiles).
        chunk_size: Items per forward pass with gradient caching; 0 = one ordinary pass.
        lr: Adam learning rate.
        orientation_weight: Weight of the orientation loss (used when the net has the head).
        seed: Seed of initialisation, batches and rotations.
        device: ``cpu`` or ``cuda``.
        workers: Data-loading processes.
    """

    dataset: str
    loss: str = "exhaustive_dbl"
    loss_args: dict[str, Any] = field(default_factory=dict)
    split: str = "train"
    folder: str = "database"
    steps: int = 200
    batch_size: int = 16
    chunk_size: int = 0
    lr: float = 1e-3
    orientation_weight: float = 1.0
    seed: int = 0
    device: str = "cpu"
    workers: int = 0

    def check(self) -> None:
        """Raise ``ValueError`` for bad numbers before any data is read."""
        if self.steps < 1 or self.batch_size < 2 or self.chunk_size < 0 or self.workers < 0:
            raise ValueError("steps >= 1, batch_size >= 2, chunk_size >= 0 and workers >= 0 are required")
        if not (self.lr > 0 and self.orientation_weight >= 0):
            raise ValueError("lr must be > 0 and orientation_weight >= 0")


class _StepBatches:
    """Batch sampler: distinct-tile batches, indices offset by ``N * step`` (fresh rotations)."""

    def __init__(self, tile_of: Any, batch_size: int, seed: int, steps: int) -> None:
        self.tile_of, self.batch_size, self.seed, self.steps = tile_of, batch_size, seed, steps

    def __iter__(self) -> Iterator[list[int]]:
        n = len(self.tile_of)
        batches = distinct_tile_batches(self.tile_of, self.batch_size, self.seed)
        for step in range(self.steps):
            yield [i + n * step for i in next(batches)]

    def __len__(self) -> int:
        return self.steps


def orientation_loss(pred: Tensor, rel: Tensor) -> Tensor:
    """Mean squared error between predicted ``(cos, sin)`` and the relative heading (NaN rows skipped).

    Shape:
        - pred: ``(B, 2)``; rel: ``(B,)`` radians
        - Output: ``()``
    """
    ok = torch.isfinite(rel)
    if not bool(ok.any()):
        return pred.sum() * 0.0
    target = torch.stack([torch.cos(rel[ok]), torch.sin(rel[ok])], 1)
    return F.mse_loss(pred[ok], target)


def train_crossview(
    settings: TrainSettings, config: CrossViewConfig, out_dir: str | os.PathLike[str]
) -> Path:
    """Train a :class:`CrossViewNet` and write ``out_dir/crossview.pt`` (atomically).

    Args:
        settings: Data, loss and optimisation.
        config: The network (specs, sharing, orientation head, image sizes, rotation range).
        out_dir: Output folder (created).

    Returns:
        The checkpoint path; its ``extra`` holds the settings, the loss every 10 steps and the time.
    """
    settings.check()
    negatives, loss_fn = 0, None  # bad names and settings fail before data loads
    if config.arch == "embedding":
        if settings.loss == "bce":
            raise ValueError("loss 'bce' trains the pair classifiers (arch classification or hybrid)")
        loss_fn = create_crossview_loss(settings.loss, **settings.loss_args)
    else:
        extra_args = set(settings.loss_args) - {"negatives"}
        if settings.loss != "bce" or extra_args or settings.chunk_size:
            raise ValueError(
                f"arch {config.arch!r} trains with loss 'bce' (loss argument: negatives=N|all) and no "
                f"gradient caching; got loss {settings.loss!r}, arguments {sorted(extra_args)}, "
                f"chunk_size {settings.chunk_size}"
            )
        negatives = parse_negatives(settings.loss_args.get("negatives", 1), settings.batch_size)
    pairs = load_pairs(settings.dataset, settings.split, settings.folder)
    torch.manual_seed(settings.seed)
    device = torch.device(settings.device)
    net = build_crossview_net(config).to(device).train()
    head = net.orientation if isinstance(net, CrossViewNet) else None
    if head is not None and not bool((~torch.isnan(torch.as_tensor(pairs.heading))).any()):
        raise ValueError("the orientation head needs street-view headings, and this data has none")
    dataset = PairDataset(pairs, config.ground_size, config.aerial_size, config.rotation_range, settings.seed)
    loader = DataLoader(
        dataset,
        batch_sampler=_StepBatches(pairs.tile_of, settings.batch_size, settings.seed, settings.steps),
        num_workers=settings.workers,
    )
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=settings.lr)

    def batch_loss(rel: Tensor) -> Any:
        def fn(g: Tensor, a: Tensor) -> Tensor:
            assert loss_fn is not None  # embedding networks only (checked above)
            value = loss_fn(g, a)
            if head is not None and settings.orientation_weight > 0:
                value = value + settings.orientation_weight * orientation_loss(head(g, a), rel)
            return value

        return fn

    history: list[float] = []
    t0 = time.perf_counter()
    for step, (g_img, a_img, rel) in enumerate(loader, start=1):
        g_img, a_img, rel = g_img.to(device), a_img.to(device), rel.to(device)
        opt.zero_grad(set_to_none=True)
        fn = batch_loss(rel)
        if isinstance(net, PairClassifier):
            value = pair_bce_loss(net, g_img, a_img, negatives)
            value.backward()
            value = value.detach()
        elif settings.chunk_size > 0:
            assert isinstance(net, CrossViewNet)
            value = cached_backward(
                [net.encode_ground, net.encode_aerial], [g_img, a_img], fn, settings.chunk_size
            )
        else:
            assert isinstance(net, CrossViewNet)
            value = fn(net.encode_ground(g_img), net.encode_aerial(a_img))
            value.backward()
            value = value.detach()
        if not math.isfinite(float(value)):
            raise RuntimeError(f"loss became {float(value)} at step {step}; lower the learning rate")
        opt.step()
        if step % 10 == 0 or step == settings.steps:
            history.append(round(float(value), 5))
            log.info("step %d/%d  loss %.4f", step, settings.steps, float(value))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    extra = {
        "settings": {**asdict(settings), "loss_args": dict(settings.loss_args)},
        "loss_history": history,
        "train_seconds": round(time.perf_counter() - t0, 2),
        "train_pairs": len(pairs),
        "train_tiles": len(pairs.tiles),
    }
    return save_crossview(net.cpu(), out / "crossview.pt", extra)
