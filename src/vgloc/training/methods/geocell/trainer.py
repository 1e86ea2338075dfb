"""Geo-cell classification training: the network plus one classifier per partition.

The training database's positions are cut into adaptive geo-cells, one partition
per ``geocell.t_img`` (:func:`vgloc.geo.cells.build_partitions`; PlaNet, Weyand et al.
2016; several granularities with one loss each as GeoEstimation, Müller-Budack et al.
2018). Each partition has a cosine classifier (:class:`~vgloc.losses.MarginHead`
without margin, scale 30) on the network's L2-normalised descriptor; the loss is the
sum of the partitions' cross-entropies (an image in a dropped, too sparse, cell of
one partition only counts in the others). Batches are ``geocell.batch_size`` images
drawn uniformly, per step, from a counter-based generator (any step can be resumed
exactly), augmented on the device as the other methods.

The partitions are written to ``cells.npz`` in the run folder (atomically, tied to the
training coordinates) and the classifiers go into the checkpoint
(``method_state``); :func:`vgloc.predict.cells.cell_predictions` turns their logits
into the top-k cells with probabilities and a position (cell centre or mean of its
images). Validation is retrieval Recall@N with the descriptor, as for every method.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from vgloc.config import ConfigError, TrainConfig
from vgloc.geo.cells import CellPartition, build_partitions, save_partitions
from vgloc.losses.margin import MarginHead
from vgloc.training.augment import ImageLoader
from vgloc.training.batch_augment import BatchAugment
from vgloc.training.engine import Trainer
from vgloc.training.optim import build_optimizer

__all__ = ["CELLS_FILE", "GeoCellTrainer"]

log = logging.getLogger(__name__)

#: The partitions' file in the run folder.
CELLS_FILE = "cells.npz"
_DRAW_STREAM = 31
_LOADER_STREAM = 32
#: Cosine-classifier scale (CosPlace's s, no margin: a plain normalised softmax).
_SCALE = 30.0


class _Draws:
    """Batch ``i`` of an epoch: ``batch_size`` eligible images and augmentation seeds, from ``(seed, epoch, i)``."""

    def __init__(self, eligible: np.ndarray, batch_size: int, seed: int, epoch: int, start: int, stop: int):
        self.eligible, self.batch_size = eligible, batch_size
        self.seed, self.epoch, self.start, self.stop = seed, epoch, start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for i in range(self.start, self.stop):
            rng = np.random.default_rng([self.seed, _DRAW_STREAM, self.epoch, i])
            picks = self.eligible[rng.integers(0, len(self.eligible), self.batch_size)]
            seeds = rng.integers(0, 2**63 - 1, size=self.batch_size, dtype=np.int64)
            yield [(int(p), int(s)) for p, s in zip(picks, seeds, strict=True)]


class _Decoded(Dataset[tuple[Tensor, int, int]]):
    """``(image index, seed)`` -> ``(uint8 image, image index, seed)``: workers only decode."""

    def __init__(self, loader: ImageLoader) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, int, int]:
        return self.loader(key[0]), key[0], key[1]


class GeoCellTrainer(Trainer):
    """Geo-cell classification training (see the module docstring)."""

    method = "geocell"

    def __init__(
        self, config: TrainConfig, *, run_dir: str | Path | None = None, resume: str | Path | None = None
    ):
        super().__init__(config, run_dir=run_dir, resume=resume)
        self.partitions: list[CellPartition] = []
        self.heads = nn.ModuleList()

    def prepare_data(self) -> None:
        """Build the partitions from the training positions and label every image."""
        c = self.cfg.geocell
        self.database = self.train_split.database
        if not self.database.has_latlon:
            raise ConfigError("geocell training needs latitude/longitude for every training image")
        latlon = np.asarray(self.database.latlon, dtype=np.float64)
        t_imgs = list(c.t_img) if isinstance(c.t_img, (list, tuple)) else [int(c.t_img)]
        advice = "lower geocell.t_img or geocell.min_images (GeoEstimation's 5000/2000/1000 and 50 need MP-16-size data)"
        try:
            self.partitions = build_partitions(
                latlon,
                t_imgs,
                t_area_km2=c.t_area_km2,
                min_images=c.min_images,
                split=c.split,
                seed=self.cfg.runtime.seed,
                scheme=c.cells,
                max_resolution=c.h3_max_resolution,
            )
        except ValueError as err:
            raise ConfigError(f"geo-cells of {len(latlon)} training images: {err}; {advice}") from err
        few = [(p.t_img, p.num_cells) for p in self.partitions if p.num_cells < 2]
        if few:
            raise ConfigError(
                f"partitions {few} (t_img, cells) have fewer than 2 cells: nothing to classify; {advice}"
            )
        # (N, P) labels; -1 where an image's cell was dropped in that partition
        self.labels = torch.from_numpy(np.stack([p.lookup(latlon) for p in self.partitions], 1))
        self.eligible = np.flatnonzero((self.labels >= 0).any(1).numpy())
        self.per_rank(c.batch_size, "geocell.batch_size")
        if (c.batch_size // self.dist.world_size) % self.accumulation_steps:
            raise ConfigError(
                f"runtime.accumulation_steps={self.accumulation_steps} must divide the per-process batch "
                f"({c.batch_size} / {self.dist.world_size} processes)"
            )
        size = self.cfg.data.image_size
        self.loader = ImageLoader(self.database.paths, size, cache=self.cfg.data.cache_images)
        self.loader.preload()
        self.batch_augment = BatchAugment(self.cfg.augment, size)
        if self.dist.rank == 0:
            save_partitions(self.run_dir / CELLS_FILE, self.partitions, latlon)
        log.info(
            "geo-cells: %d training images (%d in kept cells); partitions t_img=%s with %s cells",
            len(latlon),
            len(self.eligible),
            "/".join(str(p.t_img) for p in self.partitions),
            "/".join(str(p.num_cells) for p in self.partitions),
        )

    def prepare_method(self) -> None:
        """One cosine classifier per partition, with its own Adam optimizer (``geocell.classifiers_lr``)."""
        torch.manual_seed(self.cfg.runtime.seed + 1)  # classifier init independent of the model's
        dim = self.model.descriptor_dim
        self.heads = nn.ModuleList([MarginHead(dim, p.num_cells, s=_SCALE) for p in self.partitions])
        self.heads.to(self.device)
        self.heads_optimizer = build_optimizer(
            self.heads.parameters(), self.cfg.optim, lr=self.cfg.geocell.classifiers_lr, name="adam"
        )

    def steps_per_epoch(self) -> int:
        """``geocell.iterations_per_epoch``."""
        return int(self.cfg.geocell.iterations_per_epoch)

    def train_epoch(self, epoch: int, start_step: int) -> None:
        """Steps ``start_step ..`` of ``epoch``: uniform batches, summed per-partition cross-entropy."""
        c, seed = self.cfg.geocell, self.cfg.runtime.seed
        share = c.batch_size // self.dist.world_size
        draws = _Draws(self.eligible, c.batch_size, seed, epoch, start_step, c.iterations_per_epoch)
        loader = DataLoader(
            _Decoded(self.loader),
            batch_sampler=_RankSlice(draws, self.dist.rank, share),
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=self.loader_generator(seed, _LOADER_STREAM, epoch),
        )
        self.heads.train()
        params = list(self.heads.parameters())
        k = self.accumulation_steps
        for images, index, seeds in loader:
            x = self.augment_on_device(self.batch_augment, images, seeds)
            y = self.labels[index].to(self.device, non_blocking=True)
            closures = [
                functools.partial(self._loss, xs, ys) for xs, ys in zip(x.chunk(k), y.chunk(k), strict=True)
            ]
            loss = self.optimizer_step(
                closures, optimizers=[self.optimizer, self.heads_optimizer], average=params
            )
            self.after_step(epoch, loss, images=c.batch_size)

    def _loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Sum over partitions of the cross-entropy, ``x`` ``(B, 3, H, W)``, ``y`` ``(B, P)`` (-1: ignored)."""
        desc = self.forward(x, labels=y).float()
        total = desc.new_zeros(())
        for p, head in enumerate(self.heads):
            if bool((y[:, p] >= 0).any()):
                total = total + F.cross_entropy(
                    head(desc), y[:, p], ignore_index=-1, label_smoothing=self.cfg.geocell.label_smoothing
                )
        return total

    def method_state(self) -> dict[str, Any]:
        """The classifiers, their optimizer and the partitions' shapes (on the CPU)."""
        return {
            "t_img": [p.t_img for p in self.partitions],
            "num_cells": [p.num_cells for p in self.partitions],
            "scale": _SCALE,
            "heads": {k: v.detach().cpu() for k, v in self.heads.state_dict().items()},
            "heads_optimizer": self.heads_optimizer.state_dict(),
        }

    def load_method_state(self, state: dict[str, Any]) -> None:
        """Restore the classifiers; the partitions must be the ones they were trained on."""
        from vgloc.training.checkpoint import CheckpointMismatchError

        shape = ([p.t_img for p in self.partitions], [p.num_cells for p in self.partitions])
        if (state.get("t_img"), state.get("num_cells")) != shape:
            raise CheckpointMismatchError(
                f"the checkpoint's geo-cell partitions (t_img {state.get('t_img')}, cells {state.get('num_cells')}) "
                f"differ from this data's (t_img {shape[0]}, cells {shape[1]}): was the training database changed?"
            )
        self.heads.load_state_dict(state["heads"])
        self.heads_optimizer.load_state_dict(state["heads_optimizer"])


class _RankSlice:
    """This process's slice of each drawn batch (a ``batch_sampler``)."""

    def __init__(self, draws: _Draws, rank: int, share: int) -> None:
        self.draws, self.rank, self.share = draws, rank, share

    def __len__(self) -> int:
        return len(self.draws)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for batch in self.draws:
            yield batch[self.rank * self.share : (self.rank + 1) * self.share]
