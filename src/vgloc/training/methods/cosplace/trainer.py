"""CosPlace training: geo-classification with one margin classifier per class group (PROTOCOLS 2.1-2.2).

The training database is cut into classes (UTM cell of ``M`` metres x heading
sector of ``alpha`` degrees) and the classes into groups whose members are far
apart (:func:`~vgloc.training.methods.cosplace.groups.build_cosplace_groups`; headings come from the
file names). Each group has its own classifier, a :class:`~vgloc.losses.MarginHead`
(``cosface`` s=30 m=0.4 by default, CP cosface_loss.py:24-38) with its own Adam
optimizer (lr 0.01, CP train.py:53); the descriptor network has Adam lr 1e-5.

Epoch ``e`` trains group ``e mod groups_num`` (CP train.py:104-110) for
``iterations_per_epoch`` (10,000) steps of ``batch_size`` (32) images. Batches follow
CosPlace's DataLoader: the group's classes are shuffled, taken ``batch_size`` at a
time (a pass drops its incomplete last batch, then a new shuffled pass begins), and
each class contributes one uniformly drawn image of its own (CP train_dataset.py:74-95).
Every image is augmented with ColorJitter(0.7, 0.7, 0.7, 0.5) and
RandomResizedCrop(scale [0.5, 1]) (CP train.py:85-94). After each epoch the model is
validated; the best by val R@1 is kept, without early stopping (CP train.py:154-176).
Only the current group's classifier and optimizer state live on the device, as in
CosPlace.

On data too small for these cells and groups (e.g. the synthetic city) the settings
the user did not set adapt to it (:mod:`.adapt`, ``data.adapt``), with a log line.

Augmentation runs on the training device on the whole batch (as CosPlace's default
GPU augmentation; batched tensor ops, :mod:`vgloc.training.batch_augment`); DataLoader
workers only decode to ``uint8``. On a CPU with workers, the workers run the same
batched augmentation on their batch (it then overlaps with the network). ``runtime.accumulation_steps`` splits each batch into
micro-batches (same update, less memory).

Deviations: training images are resized to ``data.image_size`` (CosPlace requires 512x512 files);
the class and image draws come from counter-based generators (same distribution as
CosPlace's shuffled loader) so that any step can be resumed exactly.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from vgloc.config import ConfigError, TrainConfig
from vgloc.losses.margin import MarginHead
from vgloc.training.adapt import AdaptationPlan
from vgloc.training.augment import ImageLoader, TrainAugment
from vgloc.training.batch_augment import AugmentingCollate, BatchAugment
from vgloc.training.engine import Trainer, TrainResult
from vgloc.training.methods.cosplace.adapt import plan_cosplace
from vgloc.training.methods.cosplace.groups import ClassGroup, build_cosplace_groups
from vgloc.training.optim import build_optimizer, optimizer_to

__all__ = ["CosPlaceBatches", "CosPlaceTrainer", "train_cosplace"]

log = logging.getLogger(__name__)

_PASS_STREAM = 21
_DRAW_STREAM = 22
_LOADER_STREAM = 23


class CosPlaceBatches:
    """The batches of one epoch on one group, each a list of ``(image, label, seed)`` keys.

    Batch ``i`` is a pure function of ``(seed, epoch, i)``: pass ``p = i // P`` (``P =
    classes // batch_size`` batches per pass) shuffles the classes with its own
    generator, and the batch's image and augmentation draws use another.

    Args:
        group: The epoch's group.
        batch_size: Global batch size.
        seed: Run seed.
        epoch: 0-based epoch.
        rank: This process's rank.
        world_size: Number of processes (each takes its slice of every batch).
    """

    def __init__(
        self, group: ClassGroup, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1
    ):
        if group.num_classes < batch_size:
            raise ValueError(
                f"group {group.group_id} has {group.num_classes} classes < batch_size {batch_size}"
            )
        self.group = group
        self.batch_size = batch_size
        self.seed, self.epoch = seed, epoch
        self.per_pass = group.num_classes // batch_size
        self.rank, self.world = rank, world_size
        self._perm_pass = -1
        self._perm = np.zeros(0, np.int64)

    def batch(self, i: int) -> list[tuple[int, int, int]]:
        """This process's share of batch ``i``.

        Args:
            i: Batch index within the epoch.

        Returns:
            ``[(image index, label, augmentation seed), ...]``.
        """
        p, j = divmod(i, self.per_pass)
        if p != self._perm_pass:
            rng = np.random.default_rng([self.seed, _PASS_STREAM, self.epoch, p])
            self._perm, self._perm_pass = rng.permutation(self.group.num_classes), p
        labels = self._perm[j * self.batch_size : (j + 1) * self.batch_size]
        draw = np.random.default_rng([self.seed, _DRAW_STREAM, self.epoch, i])
        picks = draw.random(len(labels))
        seeds = draw.integers(0, 2**63 - 1, size=len(labels), dtype=np.int64)
        out = []
        for lab, u, s in zip(labels, picks, seeds, strict=True):
            imgs = self.group.images_per_class[int(lab)]
            out.append((int(imgs[int(u * len(imgs))]), int(lab), int(s)))
        share = self.batch_size // self.world
        return out[self.rank * share : (self.rank + 1) * share]


class _BatchRange:
    """Batches ``start .. stop - 1`` of a :class:`CosPlaceBatches`, drawn lazily (a ``batch_sampler``)."""

    def __init__(self, batches: CosPlaceBatches, start: int, stop: int) -> None:
        self.batches, self.start, self.stop = batches, start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        for i in range(self.start, self.stop):
            yield self.batches.batch(i)


class _KeyedImages(Dataset[tuple[Tensor, int, int]]):
    """``(image index, label, seed)`` -> ``(uint8 image, label, seed)``: workers only decode.

    Augmentation happens on the device, batched (:class:`~vgloc.training.batch_augment.BatchAugment`).
    """

    def __init__(self, loader: ImageLoader) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[Tensor, int, int]:
        index, label, seed = key
        return self.loader(index), label, seed


class CosPlaceTrainer(Trainer):
    """CosPlace training (see the module docstring).

    Args:
        config: A resolved config with ``method == "cosplace"``.
        run_dir: Run folder (default: the resumed run's, else ``runs/<time>-train-cosplace``).
        resume: Run folder or checkpoint to continue.
    """

    method = "cosplace"

    def __init__(
        self, config: TrainConfig, *, run_dir: str | Path | None = None, resume: str | Path | None = None
    ):
        super().__init__(config, run_dir=run_dir, resume=resume)
        self.classifiers: list[MarginHead] = []
        self.classifier_optimizers: list[torch.optim.Optimizer] = []
        self._current = -1

    def adapt_to_data(self) -> AdaptationPlan:
        """Cells, groups, batch and epoch length for this database (:func:`.adapt.plan_cosplace`)."""
        return plan_cosplace(self.cfg, self.train_split.database, self.dist.world_size)

    def prepare_data(self) -> None:
        """Build classes and groups from the train database and check they can be trained on."""
        cfg, c = self.cfg, self.cfg.cosplace
        self.database = self.train_split.database
        try:
            self.groups = build_cosplace_groups(
                self.database,
                M=c.M,
                alpha=c.alpha,
                N=c.N,
                L=c.L,
                min_images_per_class=c.min_images_per_class,
                groups_num=c.groups_num,
                heading_policy=c.heading_policy,
                order=c.group_order,
            )
        except ValueError as err:
            raise ConfigError(
                f"CosPlace groups: {err} (config keys: cosplace.M, cosplace.alpha, cosplace.N, cosplace.L, "
                "cosplace.min_images_per_class, cosplace.groups_num, cosplace.heading_policy)"
            ) from err
        self.per_rank(c.batch_size, "cosplace.batch_size")
        small = [(g.group_id, g.num_classes) for g in self.groups if g.num_classes < c.batch_size]
        if small:
            raise ConfigError(
                f"CosPlace groups {small} (group id, classes) have fewer classes than cosplace.batch_size="
                f"{c.batch_size}: a batch holds one image per class, so a pass over such a group fills no batch "
                "(CosPlace's loader drops incomplete batches). Lower cosplace.batch_size, or get more classes per "
                "group with a smaller cosplace.min_images_per_class or cosplace.M, or fewer groups "
                "(smaller cosplace.N / cosplace.L)."
            )
        size = cfg.data.image_size
        self.loader = ImageLoader(self.database.paths, size, cache=cfg.data.cache_images)
        self.loader.preload()
        self.augment = TrainAugment(cfg.augment, size)
        self.batch_augment = BatchAugment(cfg.augment, size)
        share = c.batch_size // self.dist.world_size
        if share % self.accumulation_steps:
            raise ConfigError(
                f"runtime.accumulation_steps={self.accumulation_steps} must divide the per-process batch "
                f"({c.batch_size} / {self.dist.world_size} processes = {share})"
            )
        log.info(
            "CosPlace data: %d database images; %d groups of %s classes (%s images); %d val database images",
            len(self.database),
            len(self.groups),
            "/".join(str(g.num_classes) for g in self.groups),
            "/".join(str(g.num_images) for g in self.groups),
            len(self.val_split.database),
        )

    def prepare_method(self) -> None:
        """One margin classifier (and Adam optimizer) per group, kept on the CPU until its epoch."""
        from vgloc.losses import create_margin_head

        c = self.cfg.cosplace
        torch.manual_seed(self.cfg.runtime.seed + 1)  # classifier init independent of the model's
        try:
            self.classifiers = [
                create_margin_head(c.loss, self.model.descriptor_dim, g.num_classes, **c.loss_params)
                for g in self.groups
            ]
        except (TypeError, ValueError) as err:
            raise ConfigError(
                f"cosplace.loss={c.loss!r} with cosplace.loss_params={c.loss_params}: {err}"
            ) from err
        self.classifier_optimizers = [
            build_optimizer(head.parameters(), self.cfg.optim, lr=c.classifiers_lr, name="adam")
            for head in self.classifiers
        ]
        log.info("classifiers: %s", self.classifiers[0].extra_repr())

    def steps_per_epoch(self) -> int:
        """``cosplace.iterations_per_epoch``."""
        return self.cfg.cosplace.iterations_per_epoch

    def _activate(self, index: int) -> None:
        """Move classifier ``index`` (and its optimizer state) to the device, the previous one back."""
        if self._current == index:
            return
        if self._current >= 0:
            self.classifiers[self._current].cpu()
            optimizer_to(self.classifier_optimizers[self._current], "cpu")
        self.classifiers[index].to(self.device)
        optimizer_to(self.classifier_optimizers[index], self.device)
        self._current = index

    def train_epoch(self, epoch: int, start_step: int) -> None:
        """Train the group ``epoch mod groups_num`` for the epoch's remaining steps."""
        c, seed = self.cfg.cosplace, self.cfg.runtime.seed
        gi = epoch % len(self.groups)
        self._activate(gi)
        head = self.classifiers[gi]
        head.train()
        batches = CosPlaceBatches(
            self.groups[gi], c.batch_size, seed, epoch, self.dist.rank, self.dist.world_size
        )
        in_workers = self.augment_in_workers
        loader = DataLoader(
            _KeyedImages(self.loader),
            batch_sampler=_BatchRange(batches, start_step, c.iterations_per_epoch),
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=self.loader_generator(seed, _LOADER_STREAM, epoch),
            collate_fn=AugmentingCollate(self.batch_augment) if in_workers else None,
        )
        optimizers = [self.optimizer, self.classifier_optimizers[gi]]
        params = list(head.parameters())
        k = self.accumulation_steps
        for images, labels, seeds in loader:
            if in_workers:
                x = self.to_device(images)
            else:
                x = self.augment_on_device(self.batch_augment, images, seeds)
            y = labels.to(self.device, non_blocking=True)
            closures = [
                functools.partial(self._loss, head, xs, ys)
                for xs, ys in zip(x.chunk(k), y.chunk(k), strict=True)
            ]
            loss = self.optimizer_step(closures, optimizers=optimizers, average=params)
            self.after_step(epoch, loss, images=c.batch_size)

    def _loss(self, head: MarginHead, x: Tensor, y: Tensor) -> Tensor:
        """The margin loss of one (micro-)batch, ``x`` ``(B, 3, H, W)`` with labels ``y`` ``(B,)``."""
        return head.loss(self.forward(x, labels=y).float(), y)

    def method_state(self) -> dict[str, Any]:
        """Every group's classifier and optimizer state (on the CPU)."""
        return {
            "group_ids": [list(g.group_id) for g in self.groups],
            "num_classes": [g.num_classes for g in self.groups],
            "classifiers": [
                {k: v.detach().cpu() for k, v in h.state_dict().items()} for h in self.classifiers
            ],
            "classifier_optimizers": [_cpu_state(o.state_dict()) for o in self.classifier_optimizers],
        }

    def load_method_state(self, state: dict[str, Any]) -> None:
        """Restore classifiers; the groups must be the ones the checkpoint was trained with."""
        from vgloc.training.checkpoint import CheckpointMismatchError

        ids = [list(g.group_id) for g in self.groups]
        if state.get("group_ids") != ids or state.get("num_classes") != [g.num_classes for g in self.groups]:
            raise CheckpointMismatchError(
                f"the checkpoint's CosPlace groups {state.get('group_ids')} ({state.get('num_classes')} classes) "
                f"differ from this dataset's {ids} ({[g.num_classes for g in self.groups]} classes): was the "
                "training database changed?"
            )
        for head, sd in zip(self.classifiers, state["classifiers"], strict=True):
            head.load_state_dict(sd)
        for opt, sd in zip(self.classifier_optimizers, state["classifier_optimizers"], strict=True):
            opt.load_state_dict(sd)
            optimizer_to(opt, "cpu")


def _cpu_state(sd: dict[str, Any]) -> dict[str, Any]:
    return {
        "state": {
            k: {n: (t.detach().cpu() if isinstance(t, Tensor) else t) for n, t in v.items()}
            for k, v in sd["state"].items()
        },
        "param_groups": sd["param_groups"],
    }


def train_cosplace(
    config: TrainConfig, *, run_dir: str | Path | None = None, resume: str | Path | None = None
) -> TrainResult:
    """Train CosPlace-style (see the module docstring).

    Args:
        config: Resolved config (``method: cosplace``), e.g. from
            :func:`vgloc.config.resolve_config`.
        run_dir: Run folder; default ``runs/<time>-train-cosplace`` (or the resumed run's).
        resume: A run folder or ``last.pt`` to continue.

    Returns:
        The :class:`~vgloc.training.engine.TrainResult`.

    Example:
        >>> cfg = resolve_config("cosplace", overrides=["data.root=data/sf_xl"])  # doctest: +SKIP
        >>> result = train_cosplace(cfg, run_dir="runs/cosplace")  # doctest: +SKIP
    """
    return CosPlaceTrainer(config, run_dir=run_dir, resume=resume).run()
