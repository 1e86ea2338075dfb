"""The per-step machinery of the trainers: forward pass with add-ons, the update, descriptor extraction.

Split from the engine: :class:`StepMixin` is a base class of
:class:`~vgloc.training.engine.Trainer` holding what a method's epoch calls in each
step (:meth:`StepMixin.forward` inside the closure given to
:meth:`StepMixin.optimizer_step`) and the helpers around it (device transfer,
autocast, DataLoader generators, distributed extraction of descriptors).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from vgloc.config import ConfigError, TrainConfig
from vgloc.training.addons.base import StepBatch, StepOutputs, TrainerAddon
from vgloc.training.batch_augment import BatchAugment
from vgloc.training.data import ReindexedSubset, sample_seeds
from vgloc.training.distributed import DistInfo, all_reduce_mean, average_gradients, gather_rows
from vgloc.training.setup import sync_buffers

if TYPE_CHECKING:
    from vgloc.models import GeoLocalizationModel

__all__ = ["NonFiniteLossError", "StepMixin"]


class NonFiniteLossError(RuntimeError):
    """The loss (or the descriptors it is computed from) became NaN or infinite."""


class StepMixin:
    """Step helpers of :class:`~vgloc.training.engine.Trainer` (which sets the attributes below)."""

    cfg: TrainConfig
    dist: DistInfo
    device: torch.device
    model: GeoLocalizationModel
    net: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    precision: str
    channels_last: bool
    addons: list[TrainerAddon]
    accum: dict[str, Any]
    run_dir: Path
    epochs_done: int
    global_step: int
    _epoch: int
    #: Images the method describes in the current step (set by :meth:`forward`, before the
    #: add-ons' ``extra_inputs``, which may size their batch to it).
    step_images: int = 0
    _step: tuple[StepBatch, StepOutputs] | None
    _addon_params: list[nn.Parameter]
    _last_step_time: float

    def _sync_buffers(self) -> None:
        sync_buffers(self.model, self.dist)

    # ------------------------------------------------------------------ helpers for subclasses
    @property
    def num_workers(self) -> int:
        """DataLoader workers: ``runtime.num_workers``, or ``min(8, CPUs per process - 1)``."""
        n = self.cfg.runtime.num_workers
        if n is not None:
            return n
        # One CPU stays with the training process itself.
        return max(0, min(8, (os.cpu_count() or 1) // self.dist.world_size - 1))

    def per_rank(self, batch_size: int, what: str) -> int:
        """This process's share of a global batch.

        Raises:
            ConfigError: ``batch_size`` is not a multiple of the number of processes.
        """
        w = self.dist.world_size
        if batch_size % w:
            raise ConfigError(f"{what}={batch_size} must be a multiple of the number of processes ({w})")
        return batch_size // w

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Autocast context for ``runtime.precision`` (a no-op for fp32)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    @property
    def extract_precision(self) -> str:
        """Precision name for :func:`vgloc.models.extract_descriptors`: the run's resolved one.

        Never ``auto``: extraction's automatic path may use another engine (ONNX
        Runtime) that would re-export the model at every validation.
        """
        return self.precision

    def extract(self, dataset: Dataset[Any], batch_size: int, what: str) -> np.ndarray:
        """Descriptors of a dataset with the current model, split over processes.

        Rank ``r`` computes items ``r, r+W, ...``; the rows are gathered on every rank.

        Args:
            dataset: Yields ``(image, index)`` (indices 0..len-1).
            batch_size: Inference batch.
            what: Name for error messages.

        Returns:
            ``(len(dataset), D)`` float32.

        Raises:
            NonFiniteLossError: A descriptor is NaN/inf (the weights diverged).
        """
        from torch.utils.data import Subset

        from vgloc.models import extract_descriptors

        n = len(dataset)  # type: ignore[arg-type]
        # Each process holds the BatchNorm statistics of its own last batch: describe
        # everything with rank 0's model, as DDP's next forward pass would.
        self._sync_buffers()
        mine: Dataset[Any] = dataset
        if self.dist.enabled:
            mine = ReindexedSubset(Subset(dataset, list(range(self.dist.rank, n, self.dist.world_size))))
        local = extract_descriptors(
            self.model,
            mine,
            batch_size=batch_size,
            device=self.device,
            precision=self.extract_precision,
            channels_last=self.channels_last,
            num_workers=self.num_workers,
            progress=False,
        )
        out = gather_rows(local, n, self.dist, self.device)
        if not np.isfinite(out).all():
            raise NonFiniteLossError(
                f"the model produced NaN/inf descriptors for {what} at epoch {self.epochs_done + 1}, step "
                f"{self.global_step}: the weights have diverged (lower optim.lr, or use runtime.precision=fp32)"
            )
        return out

    def forward(self, images: Tensor, *, labels: Tensor | None = None) -> Tensor:
        """Descriptors of a training batch (call inside the :meth:`optimizer_step` closure).

        With add-ons that append images (``extra_inputs``), one forward pass describes
        the batch and theirs (DDP allows one forward per backward); the batch's own
        descriptors are returned and everything is kept for the add-ons' loss terms.

        Args:
            images: ``(B, 3, H, W)`` on the device.
            labels: The method's targets, if any (passed on to the add-ons).

        Returns:
            ``(B, D)`` descriptors of ``images``.
        """
        extra: dict[str, Tensor] = {}
        self.step_images = len(images)
        for addon in self.addons:
            x = addon.extra_inputs(self._epoch, self.global_step)
            if x is not None:
                extra[addon.name] = self.to_device(x)
        if not extra:
            desc: Tensor = self.net(images)
            out = StepOutputs(desc)
        else:
            sizes = [len(images), *(len(x) for x in extra.values())]
            parts = self.net(torch.cat([images, *extra.values()])).split(sizes)
            desc = parts[0]
            out = StepOutputs(desc, dict(zip(extra, parts[1:], strict=True)))
        batch = StepBatch(images, self._epoch, self.global_step, labels, extra)
        self._step = (batch, out)
        return desc

    def optimizer_step(
        self,
        compute_loss: Callable[[], Tensor] | Sequence[Callable[[], Tensor]],
        *,
        optimizers: Sequence[torch.optim.Optimizer],
        average: Sequence[nn.Parameter] = (),
    ) -> float:
        """One update: forward under autocast, add-on loss terms, non-finite check, backward, step.

        Gradient accumulation: given several closures (equal micro-batches of one
        batch), each micro-batch's loss is divided by their number and backpropagated
        before the next forward pass (so only one micro-batch's activations live at a
        time), then the optimizers step once. The gradients are those of the mean loss
        over the whole batch up to float rounding (BatchNorm statistics excepted: they
        are per micro-batch). Under DDP the gradients are averaged over processes once,
        after the last micro-batch.

        Args:
            compute_loss: Runs the forward pass (through :meth:`forward`) and returns the
                method's (per-process mean) loss; or one such closure per micro-batch.
            optimizers: Optimizers to step (the model's first).
            average: Parameters outside DDP whose gradients are averaged over processes
                (the add-ons' are added here).

        Returns:
            The loss (with add-on terms) averaged over processes (and micro-batches).

        Raises:
            NonFiniteLossError: The loss is NaN or infinite on any process.
        """
        closures = [compute_loss] if callable(compute_loss) else list(compute_loss)
        k = len(closures)
        value = 0.0
        for i, closure in enumerate(closures):
            last = i == k - 1
            # DDP all-reduces gradients in backward(); between micro-batches that is wasted work.
            no_sync = getattr(self.net, "no_sync", None)
            sync = contextlib.nullcontext() if last or no_sync is None else no_sync()
            with sync:
                loss = self._micro_loss(closure, k)
                value += self._checked_value(loss) / k
                self.scaler.scale(loss / k if k > 1 else loss).backward()
        average_gradients([*average, *self._addon_params], self.dist)
        for opt in optimizers:
            self.scaler.step(opt)
        self.scaler.update()
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        return value

    def _micro_loss(self, closure: Callable[[], Tensor], parts: int) -> Tensor:
        """The closure's loss plus the add-ons' terms (logged), under autocast."""
        self._step = None
        with self.autocast():
            loss = closure()
            terms = self._addon_loss_terms(loss)
            if terms:
                loss = loss + sum(terms.values())
        if terms:
            values = all_reduce_mean(torch.stack([v.detach().float() for v in terms.values()]), self.dist)
            for name, v in zip(terms, values.tolist(), strict=True):
                self.accum["terms"][name] = self.accum["terms"].get(name, 0.0) + v / parts
        return loss

    def _checked_value(self, loss: Tensor) -> float:
        """The loss averaged over processes; raises when it is not finite on any of them."""
        value = float(all_reduce_mean(loss.detach().float(), self.dist))
        if not math.isfinite(value):
            lr = self.optimizer.param_groups[0]["lr"]
            last = self.run_dir / "last.pt"
            resume = f"; the last good checkpoint is {last}" if last.exists() else ""
            raise NonFiniteLossError(
                f"the training loss is {value} at epoch {self.epochs_done + 1}, step {self.global_step + 1} "
                f"(lr {lr:g}, precision {self.precision}): training diverged. Lower optim.lr, use "
                f"runtime.precision=fp32, or check the data{resume}"
            )
        return value

    def _addon_loss_terms(self, loss: Tensor) -> dict[str, Tensor]:
        if not self.addons:
            return {}
        if self._step is None:
            raise RuntimeError(
                f"{type(self).__name__} did not describe its batch with Trainer.forward(): add-ons need it"
            )
        batch, out = self._step
        out.loss = loss
        terms: dict[str, Tensor] = {}
        for addon in self.addons:
            for name, value in addon.loss_terms(batch, out).items():
                terms[f"{addon.name}/{name}"] = value
        return terms

    def reset_step_timer(self) -> None:
        """Start timing the next step now (after work that is not a training step, e.g. mining)."""
        self._last_step_time = time.perf_counter()

    def to_device(self, images: Tensor) -> Tensor:
        """Move a batch to the device (NHWC when the run uses channels_last)."""
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def augment_on_device(self, augment: BatchAugment, images: Tensor, seeds: Tensor) -> Tensor:
        """Copy a decoded ``uint8`` batch to the device, augment and normalise it there.

        Args:
            augment: The batched augmentation.
            images: ``(B, 3, H, W)`` uint8 from the DataLoader (pinned on CUDA).
            seeds: ``(B,)`` per-sample augmentation seeds.

        Returns:
            ``(B, 3, H, W)`` float32 on the device (NHWC when the run uses channels_last).
        """
        x = augment(images.to(self.device, non_blocking=True), seeds)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    @property
    def augment_in_workers(self) -> bool:
        """Whether DataLoader workers augment whole batches (CPU training with workers).

        On a GPU the batch is augmented on the device (:meth:`augment_on_device`); on a
        CPU the device is the CPU, and the workers' batched augmentation overlaps with
        the main process's forward and backward pass instead of adding to it.
        """
        return self.device.type == "cpu" and self.num_workers > 0

    @property
    def accumulation_steps(self) -> int:
        """Micro-batches per optimizer step (``runtime.accumulation_steps``)."""
        return int(self.cfg.runtime.accumulation_steps)

    def loader_generator(self, *key: int) -> torch.Generator:
        """A DataLoader generator seeded from a counter key, so that creating loaders
        does not consume the global torch RNG (and worker seeds are reproducible)."""
        return torch.Generator().manual_seed(int(sample_seeds(*key, n=1)[0]))
