"""The training loop shared by the triplet and CosPlace trainers.

:class:`Trainer` owns everything that does not depend on the method: the run folder,
seeding, the distributed job, the model (built from ``model.spec``, early layers
frozen as in both recipes), the optimizer and scheduler, mixed precision, the
per-step update with its non-finite-loss check, validation after each epoch with
model selection and early stopping, checkpoints (``last.pt``, ``best.pt``,
``best_model.pt``) and exact resumption. Subclasses (:class:`~vgloc.training.triplet.TripletTrainer`,
:class:`~vgloc.training.cosplace.CosPlaceTrainer`) load their data, define an
epoch, and add their own state to checkpoints.

Exact resumption: the data a step sees is a pure function of (seed, epoch, step),
drawn from counter-based generators (see :mod:`vgloc.training.augment`), and a
checkpoint holds the model, optimizer(s), scheduler, grad scaler, counters, the
global RNG states of every process and the method's own state. A run stopped after
any checkpoint and resumed therefore continues with the same per-step losses as a run
that was never stopped (bit-identical on CPU; on GPU up to cuDNN nondeterminism).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from vgloc.config import ConfigError, TrainConfig, save_config
from vgloc.training.augment import ImageLoader, TrainAugment
from vgloc.training.checkpoint import (
    CheckpointMismatchError,
    capture_rng_state,
    check_resume_config,
    load_training_checkpoint,
    resolve_resume_path,
    restore_rng_state,
    save_training_checkpoint,
)
from vgloc.training.distributed import (
    DistInfo,
    all_gather_object,
    all_reduce_mean,
    average_gradients,
    broadcast_object,
    distributed_session,
    gather_rows,
)
from vgloc.training.metrics import RunLogger
from vgloc.training.optim import build_optimizer, build_scheduler, step_scheduler
from vgloc.training.validation import metric_value, validation_recalls

if TYPE_CHECKING:  # the model zoo is imported when a run starts, not with this module
    from vgloc.models import GeoLocalizationModel

__all__ = [
    "EvalImageDataset",
    "NonFiniteLossError",
    "TrainResult",
    "Trainer",
    "load_train_split",
    "load_val_split",
    "sample_seeds",
]

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The loss (or the descriptors it is computed from) became NaN or infinite."""


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        run_dir: The run folder.
        best_model: ``best_model.pt`` (vgloc model file for ``--checkpoint``), or None
            when no epoch finished.
        best_checkpoint: ``best.pt`` (full training state at the best epoch).
        last_checkpoint: ``last.pt``.
        best_epoch: 1-based epoch of the best validation metric (0: untrained model).
        best_metric: Its value (``schedule.select_metric``, percent).
        history: Per-epoch metric rows (also in ``metrics.json``).
        stopped_early: True when ``schedule.patience`` ended the run.
        stopped_by_time: True when ``schedule.max_minutes`` ended the run.
        global_step: Optimizer steps done.
        model: The model at the end of training (not the best one), unwrapped.
    """

    run_dir: Path
    best_model: Path | None
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    best_epoch: int
    best_metric: float
    history: list[dict[str, Any]]
    stopped_early: bool
    global_step: int
    stopped_by_time: bool
    model: GeoLocalizationModel = field(repr=False)


def sample_seeds(*key: int, n: int) -> np.ndarray:
    """``n`` 63-bit seeds determined by an integer key (a counter-based generator).

    Args:
        *key: Integers, e.g. ``(seed, stream, epoch, step)``.
        n: How many seeds.

    Returns:
        ``(n,)`` int64 seeds.
    """
    return np.random.default_rng([int(k) for k in key]).integers(0, 2**63 - 1, size=n, dtype=np.int64)


class EvalImageDataset(Dataset[tuple[Tensor, int]]):
    """Images addressed by index into an :class:`ImageLoader`, without augmentation.

    Yields the same tensors as :func:`vgloc.data.build_transform` with the loader's
    size, with the loader's in-memory cache.

    Args:
        loader: The image loader.
        indices: Which of its images, in order.
    """

    def __init__(
        self, loader: ImageLoader, indices: Sequence[int] | np.ndarray, augment: TrainAugment
    ) -> None:
        self.loader = loader
        self.indices = [int(i) for i in indices]
        self.augment = augment

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.augment(self.loader(self.indices[i]), None), i


class Trainer(ABC):
    """Base class of the training loops (see the module docstring).

    Args:
        config: The resolved configuration.
        run_dir: Run folder; None: the resumed run's folder, else
            ``runs/<time>-train-<method>``.
        resume: A run folder or checkpoint file to continue from.

    Subclasses implement :meth:`prepare_data`, :meth:`steps_per_epoch` and
    :meth:`train_epoch`, and may extend :meth:`prepare_method`,
    :meth:`initialize_from_data`, :meth:`method_state`, :meth:`load_method_state`.
    """

    method: ClassVar[str] = ""

    def __init__(
        self,
        config: TrainConfig,
        *,
        run_dir: str | Path | None = None,
        resume: str | Path | None = None,
    ) -> None:
        if config.method != self.method:
            raise ConfigError(
                f"{type(self).__name__} trains method {self.method!r}, the config says {config.method!r}"
            )
        self.cfg = config.validate()
        self._run_dir_arg = None if run_dir is None else Path(run_dir)
        self._resume_arg = None if resume is None else Path(resume)
        # Filled in by run():
        self.dist = DistInfo()
        self.device = torch.device("cpu")
        self.run_dir = Path(".")
        self.model: GeoLocalizationModel
        self.net: nn.Module
        self.optimizer: torch.optim.Optimizer
        self.scheduler: Any = None
        self.scaler: torch.amp.GradScaler
        self.amp_dtype: torch.dtype | None = None
        self.epochs_done = 0
        self.epoch_step = 0
        self.global_step = 0
        self.best: dict[str, Any] = {"value": -math.inf, "epoch": -1, "recalls": {}}
        self.not_improved = 0
        self.history: list[dict[str, Any]] = []
        self.stopped_early = False
        self.stopped_by_time = False
        self._accum = {"loss_sum": 0.0, "loss_count": 0, "images": 0, "seconds": 0.0}
        self._last_step_time = 0.0
        self._bar: Any = None
        self._val_loaders: dict[tuple[Any, ...], ImageLoader] = {}
        self.val_split: Any = None

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def prepare_data(self) -> None:
        """Load the datasets and check them (minute zero); sets ``self.val_split``."""

    def prepare_method(self) -> None:  # noqa: B027 (an optional hook: doing nothing is the default)
        """Build method-specific objects that need the model (e.g. classifiers)."""

    def initialize_from_data(self) -> None:  # noqa: B027 (an optional hook: doing nothing is the default)
        """Data-dependent initialisation of a fresh (not resumed) model, e.g. NetVLAD."""

    @abstractmethod
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch."""

    @abstractmethod
    def train_epoch(self, epoch: int, start_step: int) -> None:
        """Run steps ``start_step .. steps_per_epoch() - 1`` of ``epoch`` (0-based).

        Each step goes through :meth:`optimizer_step` and :meth:`after_step`.
        """

    def method_state(self) -> dict[str, Any]:
        """Extra checkpoint content (plain types and tensors)."""
        return {}

    def load_method_state(self, state: dict[str, Any]) -> None:  # noqa: B027 (an optional hook: doing nothing is the default)
        """Restore :meth:`method_state` output."""

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
        """Precision name for :func:`vgloc.models.extract_descriptors`."""
        return self.cfg.runtime.precision

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
            mine = _Reindexed(Subset(dataset, list(range(self.dist.rank, n, self.dist.world_size))))
        local = extract_descriptors(
            self.model,
            mine,
            batch_size=batch_size,
            device=self.device,
            precision=self.extract_precision,
            channels_last=self.cfg.runtime.channels_last,
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

    def optimizer_step(
        self,
        compute_loss: Callable[[], Tensor],
        *,
        optimizers: Sequence[torch.optim.Optimizer],
        average: Sequence[nn.Parameter] = (),
    ) -> float:
        """One update: forward under autocast, non-finite check, backward, step.

        Args:
            compute_loss: Runs the forward pass and returns the (per-process mean) loss.
            optimizers: Optimizers to step (the model's first).
            average: Parameters outside DDP whose gradients are averaged over processes.

        Returns:
            The loss averaged over processes.

        Raises:
            NonFiniteLossError: The loss is NaN or infinite on any process.
        """
        with self.autocast():
            loss = compute_loss()
        value = float(all_reduce_mean(loss.detach().float(), self.dist))
        if not math.isfinite(value):
            lr = self.optimizer.param_groups[0]["lr"]
            last = self.run_dir / "last.pt"
            resume = f"; the last good checkpoint is {last}" if last.exists() else ""
            raise NonFiniteLossError(
                f"the training loss is {value} at epoch {self.epochs_done + 1}, step {self.global_step + 1} "
                f"(lr {lr:g}, precision {self.cfg.runtime.precision}): training diverged. Lower optim.lr, use "
                f"runtime.precision=fp32, or check the data{resume}"
            )
        self.scaler.scale(loss).backward()
        average_gradients(list(average), self.dist)
        for opt in optimizers:
            self.scaler.step(opt)
        self.scaler.update()
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        return value

    def reset_step_timer(self) -> None:
        """Start timing the next step now (after work that is not a training step, e.g. mining)."""
        self._last_step_time = time.perf_counter()

    def after_step(self, epoch: int, loss: float, images: int) -> None:
        """Bookkeeping after a step: counters, logs, progress bar, periodic checkpoint.

        Args:
            epoch: 0-based epoch.
            loss: The step's loss (averaged over processes).
            images: Images processed in the step by all processes.
        """
        now = time.perf_counter()
        dt = max(now - self._last_step_time, 1e-9)
        self._last_step_time = now
        self.global_step += 1
        self.epoch_step += 1
        acc = self._accum
        acc["loss_sum"] += loss
        acc["loss_count"] += 1
        acc["images"] += images
        acc["seconds"] += dt
        ips = images / dt
        lr = float(self.optimizer.param_groups[0]["lr"])
        if self.global_step % self.cfg.runtime.step_log_every == 0:
            self.logger.log_step(epoch + 1, self.global_step, loss, lr, ips)
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{ips:.1f}", refresh=False)
        every = self.cfg.runtime.checkpoint_every_steps
        if every and self.global_step % every == 0 and self.epoch_step < self.steps_per_epoch():
            self.save_checkpoint(self.run_dir / "last.pt")
            log.debug(
                "checkpoint at step %d (epoch %d, step %d of it)",
                self.global_step,
                epoch + 1,
                self.epoch_step,
            )

    # ------------------------------------------------------------------ the run
    def run(self) -> TrainResult:
        """Train (or continue training) until ``schedule.epochs`` or early stopping.

        Returns:
            A :class:`TrainResult`.

        Raises:
            ConfigError: Bad configuration or data that cannot be trained on (found
                before any training step).
            CheckpointMismatchError: ``resume`` does not fit the configuration.
            NonFiniteLossError: The loss became NaN/inf.
        """
        threads = torch.get_num_threads()
        if self.cfg.runtime.num_threads is not None:
            torch.set_num_threads(self.cfg.runtime.num_threads)
        try:
            with distributed_session(self.cfg.runtime.device, self.cfg.runtime.dist_backend) as (
                info,
                device,
            ):
                self.dist, self.device = info, device
                return self._run()
        finally:
            torch.set_num_threads(threads)

    def _choose_run_dir(self, resume_file: Path | None) -> Path:
        if self._run_dir_arg is not None:
            return self._run_dir_arg
        if resume_file is not None:
            return resume_file.parent
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-train-{self.method}"
        return Path(broadcast_object(str(Path("runs") / name), self.dist))

    def _run(self) -> TrainResult:
        cfg = self.cfg
        self._started = time.perf_counter()  # schedule.max_minutes counts from here
        ckpt: dict[str, Any] | None = None
        resume_file = None if self._resume_arg is None else resolve_resume_path(self._resume_arg)
        if resume_file is not None:
            ckpt = load_training_checkpoint(resume_file)
            allowed = check_resume_config(ckpt, cfg)
        self.run_dir = self._choose_run_dir(resume_file)
        if ckpt is None and (self.run_dir / "last.pt").exists():
            raise ConfigError(
                f"{self.run_dir} already holds a training run (last.pt): resume it (--resume {self.run_dir}) "
                "or choose another run folder"
            )
        self._seed_everything(cfg.runtime.seed)
        self._configure_backends()
        self.logger = RunLogger(
            self.run_dir,
            enabled=self.dist.is_main,
            tensorboard=cfg.runtime.tensorboard,
            log_files=cfg.runtime.log_files,
            resume_step=None if ckpt is None else int(ckpt["global_step"]),
            resume_epoch=None if ckpt is None else int(ckpt["epoch"]),
        )
        try:
            if self.dist.is_main:
                save_config(cfg, self.run_dir / "config.yaml")
            log.info(
                "%s training in %s on %s%s, precision %s",
                self.method,
                self.run_dir,
                self.device,
                f" ({self.dist.world_size} processes)" if self.dist.enabled else "",
                cfg.runtime.precision,
            )
            if ckpt is not None:
                log.info(
                    "resuming from %s (epoch %d, step %d)", resume_file, ckpt["epoch"], ckpt["global_step"]
                )
                for key, old, new in allowed:
                    log.info("resumed with %s changed: %r -> %r", key, old, new)
            self.prepare_data()
            self._build_model()
            self.prepare_method()
            params = [p for p in self.model.parameters() if p.requires_grad]
            self.optimizer = build_optimizer(params, cfg.optim)
            self.scheduler = build_scheduler(self.optimizer, cfg.schedule)
            self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype is torch.float16)
            if ckpt is not None:
                self._restore(ckpt)
            else:
                self.initialize_from_data()
            self.net = self._wrap_ddp(self.model)
            if ckpt is None and cfg.validation.before_training:
                self._validate_and_record(epoch=-1)
            if ckpt is not None:
                # Last: everything above may draw random numbers; the loop continues from the saved streams.
                states = ckpt["rng"]
                restore_rng_state(states[self.dist.rank] if self.dist.rank < len(states) else states[0])
            self._loop()
        finally:
            self.logger.close()
        return TrainResult(
            run_dir=self.run_dir,
            best_model=self.run_dir / "best_model.pt" if self.best["epoch"] >= 0 else None,
            best_checkpoint=self.run_dir / "best.pt" if self.best["epoch"] >= 1 else None,
            last_checkpoint=self.run_dir / "last.pt" if self.epochs_done or self.epoch_step else None,
            best_epoch=int(self.best["epoch"]),
            best_metric=float(self.best["value"]),
            history=list(self.history),
            stopped_early=self.stopped_early,
            global_step=self.global_step,
            stopped_by_time=self.stopped_by_time,
            model=self.model,
        )

    def _loop(self) -> None:
        cfg = self.cfg
        patience = cfg.schedule.patience
        if patience is not None and self.not_improved >= patience:
            log.info("early stopping already reached (%d epochs without improvement)", self.not_improved)
            self.stopped_early = True
            return
        for epoch in range(self.epochs_done, cfg.schedule.epochs):
            start_step = self.epoch_step
            if start_step == 0:
                self._accum = {"loss_sum": 0.0, "loss_count": 0, "images": 0, "seconds": 0.0}
            self.net.train()
            epoch_started = self._last_step_time = time.perf_counter()
            self._bar = tqdm(
                total=self.steps_per_epoch(),
                initial=start_step,
                desc=f"epoch {epoch + 1}/{cfg.schedule.epochs}",
                unit="step",
                disable=not (cfg.runtime.progress and self.dist.is_main),
                dynamic_ncols=True,
            )
            try:
                self.train_epoch(epoch, start_step)
            finally:
                self._bar.close()
                self._bar = None
            self.epochs_done = epoch + 1
            self.epoch_step = 0
            self._sync_buffers()
            self._validate_and_record(epoch)
            if self._out_of_time(time.perf_counter() - epoch_started) and epoch + 1 < cfg.schedule.epochs:
                log.info(
                    "stopping after epoch %d: another epoch would exceed schedule.max_minutes=%g",
                    epoch + 1,
                    cfg.schedule.max_minutes,
                )
                self.stopped_by_time = True
                break
            if patience is not None and self.not_improved >= patience:
                log.info(
                    "early stopping: %s has not improved for %d epochs (best %.2f at epoch %d)",
                    cfg.schedule.select_metric,
                    self.not_improved,
                    self.best["value"],
                    self.best["epoch"],
                )
                self.stopped_early = True
                break

    def _out_of_time(self, epoch_seconds: float) -> bool:
        """Whether one more epoch lasting ``epoch_seconds`` would end past ``schedule.max_minutes``.

        Rank 0 decides (clocks differ between processes) so all ranks stop together.
        """
        budget = self.cfg.schedule.max_minutes
        if budget is None:
            return False
        decision = time.perf_counter() - self._started + epoch_seconds > budget * 60
        return bool(broadcast_object(decision, self.dist))

    def _validate_and_record(self, epoch: int) -> None:
        """Validate, update best/patience/scheduler, write checkpoints and metrics.

        ``epoch`` is 0-based; -1 validates the initial model (no checkpoint).
        """
        cfg = self.cfg
        t0 = time.perf_counter()
        recalls: dict[str, dict[int, float]] | None = None
        if self.dist.is_main:
            recalls = self._validation_recalls()
        recalls = broadcast_object(recalls, self.dist)
        assert recalls is not None
        metric = metric_value(recalls, cfg.schedule.select_metric)
        row: dict[str, Any] = {"epoch": epoch + 1, "step": self.global_step}
        if epoch >= 0:
            acc = self._accum
            row["train_loss"] = acc["loss_sum"] / max(acc["loss_count"], 1)
            row["lr"] = float(self.optimizer.param_groups[0]["lr"])
            row["train_seconds"] = acc["seconds"]
            row["images_per_s"] = acc["images"] / max(acc["seconds"], 1e-9)
        for dom, rec in recalls.items():
            for n, v in rec.items():
                row[f"val/{dom}/R@{n}"] = v
        row[f"val/{cfg.schedule.select_metric}"] = metric
        row["val_seconds"] = time.perf_counter() - t0
        improved = metric > self.best["value"]  # strict, as VGB (train.py:184-216)
        if improved:
            self.best = {"value": metric, "epoch": epoch + 1, "recalls": recalls}
            self.not_improved = 0
        elif epoch >= 0:
            self.not_improved += 1
        row["best"] = bool(improved)
        self.history.append(row)
        shown = ", ".join(
            f"{dom} " + " ".join(f"R@{n} {v:.1f}" for n, v in rec.items()) for dom, rec in recalls.items()
        )
        if epoch >= 0:
            log.info(
                "epoch %d: loss %.4f, val %s%s",
                epoch + 1,
                row["train_loss"],
                shown,
                " (best)" if improved else f" (best {self.best['value']:.2f} at epoch {self.best['epoch']})",
            )
            step_scheduler(self.scheduler, metric)
            self.save_checkpoint(self.run_dir / "last.pt")
            if improved and self.dist.is_main:
                # best.pt = last.pt at this point: copy the file instead of serialising twice.
                import shutil

                from vgloc.io import atomic_path

                with atomic_path(self.run_dir / "best.pt") as tmp:
                    shutil.copyfile(self.run_dir / "last.pt", tmp)
        else:
            log.info("untrained model: val %s", shown)
            if self.dist.is_main:
                # The exact weights training starts from, to compare before and after on other splits.
                from vgloc.models import save_model

                save_model(self.model, self.run_dir / "initial_model.pt", {"method": self.method, "epoch": 0})
        if improved and self.dist.is_main:
            self._export_best(epoch + 1, recalls)
        self.logger.log_epoch(row, self.history, self._summary())

    def _validation_recalls(self) -> dict[str, dict[int, float]]:
        cfg = self.cfg
        size = cfg.val_image_size
        augment = TrainAugment(type(cfg.augment)(), size)  # normalisation only

        def factory(paths: Sequence[Path]) -> Dataset[Any]:
            return EvalImageDataset(self._val_loader(paths, size), range(len(paths)), augment)

        return validation_recalls(
            self.model,
            self.val_split,
            factory,
            domains=cfg.validation.domains,
            recall_values=cfg.validation.recall_values,
            threshold_m=cfg.validation.threshold_m,
            batch_size=cfg.validation.batch_size,
            device=self.device,
            precision=self.extract_precision,
            channels_last=cfg.runtime.channels_last,
            num_workers=self.num_workers,
            progress=cfg.runtime.progress,
        )

    def _val_loader(self, paths: Sequence[Path], size: tuple[int, int]) -> ImageLoader:
        # One loader per image list, kept across epochs so that data.cache_images caches them.
        key = (tuple(str(p) for p in paths[:1]), len(paths), size)
        if key not in self._val_loaders:
            self._val_loaders[key] = ImageLoader(paths, size, cache=self.cfg.data.cache_images)
            self._val_loaders[key].preload()
        return self._val_loaders[key]

    def _summary(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "model_spec": self.model.spec,
            "select_metric": self.cfg.schedule.select_metric,
            "best_epoch": self.best["epoch"],
            "best_value": self.best["value"] if math.isfinite(self.best["value"]) else None,
            "global_step": self.global_step,
            "stopped_early": self.stopped_early,
            "stopped_by_time": self.stopped_by_time,
        }

    def _export_best(self, epoch: int, recalls: dict[str, dict[int, float]]) -> None:
        from vgloc.models import save_model

        extra = {
            "method": self.method,
            "epoch": epoch,
            "global_step": self.global_step,
            "select_metric": self.cfg.schedule.select_metric,
            "value": float(self.best["value"]),
            "recalls": {d: {str(n): float(v) for n, v in r.items()} for d, r in recalls.items()},
            "image_size": list(self.cfg.val_image_size),
            "config": self.cfg.to_dict(),
        }
        save_model(self.model, self.run_dir / "best_model.pt", extra)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: Path) -> None:
        """Write the full training state (collective: every process must call it).

        Args:
            path: Destination (rank 0 writes it).
        """
        rng = all_gather_object(capture_rng_state(), self.dist)
        method_state = self.method_state()
        if not self.dist.is_main:
            return
        payload = {
            "method": self.method,
            "config": self.cfg.to_dict(),
            "model_spec": self.model.spec,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "epoch": self.epochs_done,
            "epoch_step": self.epoch_step,
            "global_step": self.global_step,
            "accum": dict(self._accum),
            "best": {
                "value": float(self.best["value"]),
                "epoch": int(self.best["epoch"]),
                "recalls": {
                    d: {int(n): float(v) for n, v in r.items()} for d, r in self.best["recalls"].items()
                },
            },
            "not_improved": self.not_improved,
            "history": [dict(r) for r in self.history],
            "rng": rng,
            "method_state": method_state,
        }
        save_training_checkpoint(path, payload)

    def _restore(self, ckpt: dict[str, Any]) -> None:
        if ckpt.get("model_spec") != self.model.spec:
            raise CheckpointMismatchError(
                f"the checkpoint holds a {ckpt.get('model_spec')!r} model, but this run builds {self.model.spec!r}"
            )
        try:
            self.model.load_state_dict(ckpt["model"], strict=True)
        except RuntimeError as err:
            raise CheckpointMismatchError(
                f"the checkpoint's weights do not fit model {self.model.spec!r}: {str(err).splitlines()[0]}"
            ) from err
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError) as err:
            raise CheckpointMismatchError(
                f"the checkpoint's optimizer state does not fit this run's trainable parameters ({err}); "
                "was model.train_all_layers or optim.name changed?"
            ) from err
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler.is_enabled() and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epochs_done = int(ckpt["epoch"])
        self.epoch_step = int(ckpt["epoch_step"])
        self.global_step = int(ckpt["global_step"])
        self._accum = dict(ckpt.get("accum") or self._accum)
        best = ckpt["best"]
        self.best = {"value": float(best["value"]), "epoch": int(best["epoch"]), "recalls": best["recalls"]}
        self.not_improved = int(ckpt["not_improved"])
        self.history = [dict(r) for r in ckpt.get("history", [])]
        self.load_method_state(ckpt.get("method_state") or {})

    # ------------------------------------------------------------------ setup
    def _seed_everything(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def _configure_backends(self) -> None:
        cfg = self.cfg.runtime
        if cfg.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError(
                f"runtime.precision=fp16 needs a CUDA device (device is {self.device}); use bf16 on CPU"
            )
        self.amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.precision]
        if self.device.type == "cuda":
            # Set when a run starts, never at import (VGB commons.py:16-27 does the same when seeding).
            torch.backends.cudnn.deterministic = cfg.deterministic
            torch.backends.cudnn.benchmark = not cfg.deterministic

    def _build_model(self) -> None:
        from vgloc.models import create_model, freeze_early_layers
        from vgloc.models.spec import ModelSpec
        from vgloc.registry import BACKBONES

        m = self.cfg.model
        spec = ModelSpec.parse(m.spec)
        pretrained = m.pretrained
        if pretrained is None:
            pretrained = "torchvision" in BACKBONES.metadata(spec.backbone) and m.weights is None
        # The model's initial weights depend on the seed only, not on what ran before.
        torch.manual_seed(self.cfg.runtime.seed)
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
        model.to(self.device)
        if self.cfg.runtime.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model

    def _sync_buffers(self) -> None:
        """Give every process rank 0's buffers (BatchNorm statistics).

        DDP broadcasts them at the start of each forward pass, so after the last step of
        an epoch each process still holds the statistics of its own last batch; this makes
        validation, checkpoints and the final model the same on every process.
        """
        if not self.dist.enabled:
            return
        import torch.distributed as dist

        for buf in self.model.buffers():
            dist.broadcast(buf, src=0)

    def _wrap_ddp(self, model: nn.Module) -> nn.Module:
        if not self.dist.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def to_device(self, images: Tensor) -> Tensor:
        """Move a batch to the device (NHWC when ``runtime.channels_last``)."""
        images = images.to(self.device, non_blocking=True)
        if self.cfg.runtime.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def loader_generator(self, *key: int) -> torch.Generator:
        """A DataLoader generator seeded from a counter key, so that creating loaders
        does not consume the global torch RNG (and worker seeds are reproducible)."""
        return torch.Generator().manual_seed(int(sample_seeds(*key, n=1)[0]))


class _Reindexed(Dataset[tuple[Tensor, int]]):
    """A subset whose items report their position in the subset (for extract_descriptors)."""

    def __init__(self, subset: Dataset[Any]) -> None:
        self.subset = subset

    def __len__(self) -> int:
        return len(self.subset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        image, _ = self.subset[i]
        return image, i


def load_train_split(cfg: TrainConfig) -> Any:
    """The training split named in ``cfg.data`` (images validated when asked).

    Raises:
        ConfigError: ``data.root`` is not set.
    """
    from vgloc.data import load_split

    if not cfg.data.root:
        raise ConfigError("data.root is not set: give the dataset root (vgloc train ... --dataset ROOT)")
    return load_split(cfg.data.root, cfg.data.train_split, validate=cfg.data.validate_images, progress=False)


def load_val_split(cfg: TrainConfig) -> Any:
    """The validation split, with every folder of ``validation.domains`` present.

    Raises:
        ConfigError: ``data.root`` unset or a validation folder missing.
    """
    from vgloc.data import load_split

    if not cfg.data.root:
        raise ConfigError("data.root is not set: give the dataset root (vgloc train ... --dataset ROOT)")
    val = load_split(cfg.data.root, cfg.data.val_split, validate=cfg.data.validate_images, progress=False)
    missing = [d for d in cfg.validation.domains if d not in val.queries]
    if missing:
        raise ConfigError(
            f"validation.domains: no folder {missing} in {val.root}/{val.split}; found {val.domains}"
        )
    return val
