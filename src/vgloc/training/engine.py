"""The training loop shared by every training method.

:class:`Trainer` owns everything that does not depend on the method: the run folder,
seeding, the distributed job, loading the train/val splits and adapting settings the
data cannot support (:mod:`vgloc.training.adapt`), the model (built from
``model.spec``, early layers frozen as in both recipes), the optimizer and scheduler,
mixed precision, the per-step update with its non-finite-loss check, the add-ons'
hooks (:mod:`vgloc.training.addons`), validation after each epoch with model
selection and early stopping (:mod:`vgloc.training.records`), checkpoints
(``last.pt``, ``best.pt``, ``best_model.pt``; :mod:`vgloc.training.state`) and exact
resumption. Subclasses (registered methods, :mod:`vgloc.training.methods`) prepare
their data, define an epoch, and add their own state to checkpoints; they describe a
batch with :meth:`Trainer.forward` so that add-ons can join the forward pass.

Exact resumption: the data a step sees is a pure function of (seed, epoch, step),
drawn from counter-based generators (see :mod:`vgloc.training.augment`), and a
checkpoint holds the model, optimizer(s), scheduler, grad scaler, counters, the
global RNG states of every process, the method's own state and the add-ons' states.
A run stopped after any checkpoint and resumed therefore continues with the same
per-step losses as a run that was never stopped (bit-identical on CPU; on GPU up to cuDNN nondeterminism).

This module is just over 500 lines because the loop is one piece of state (model,
optimizer, scaler, add-ons, epoch counters) that resume must restore as a whole; the
parts that stand alone already live beside it (setup, steps, state, records, adapt).
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn
from tqdm.auto import tqdm

from vgloc.config import ConfigError, TrainConfig, save_config
from vgloc.training.adapt import AdaptationPlan, apply_adaptations, image_size_adaptation
from vgloc.training.addons.base import StepBatch, StepOutputs, TrainerAddon, build_addons
from vgloc.training.augment import ImageLoader
from vgloc.training.checkpoint import (
    check_resume_config,
    load_training_checkpoint,
    resolve_resume_path,
    restore_rng_state,
    save_training_checkpoint,
)
from vgloc.training.data import (
    EvalImageDataset,
    load_train_split,
    load_val_split,
    sample_seeds,
)
from vgloc.training.distributed import (
    DistInfo,
    broadcast_object,
    distributed_session,
)
from vgloc.training.fastpath import maybe_compile, resolve_channels_last, resolve_precision
from vgloc.training.metrics import RunLogger
from vgloc.training.optim import build_optimizer, build_scheduler
from vgloc.training.records import validate_and_record
from vgloc.training.setup import (
    build_training_model,
    configure_backends,
    seed_everything,
    wrap_ddp,
)
from vgloc.training.state import checkpoint_payload, restore_state
from vgloc.training.steps import NonFiniteLossError, StepMixin

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
        config: The configuration the run used (after adaptation to the data; the
            run folder's ``config.yaml``).
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
    config: TrainConfig | None = field(default=None, repr=False)


def _precision_reason(precision: str, device: torch.device) -> str:
    if device.type != "cpu":
        return "chosen for the GPU"
    if precision == "bf16":
        return "this CPU has native bf16"
    return "no native bf16 on this CPU (emulated bf16 is slower than fp32)"


def _fresh_accum() -> dict[str, Any]:
    return {"loss_sum": 0.0, "loss_count": 0, "images": 0, "seconds": 0.0, "terms": {}}


class Trainer(StepMixin, ABC):
    """Base class of the training loops (see the module docstring).

    Args:
        config: The resolved configuration.
        run_dir: Run folder; None: the resumed run's folder, else
            ``runs/<time>-train-<method>``.
        resume: A run folder or checkpoint file to continue from.

    Subclasses implement :meth:`prepare_data`, :meth:`steps_per_epoch` and
    :meth:`train_epoch`, and may extend :meth:`load_data`, :meth:`adapt_to_data`,
    :meth:`prepare_method`, :meth:`initialize_from_data`, :meth:`method_state`,
    :meth:`load_method_state`. In a step they call :meth:`optimizer_step` with a
    closure that describes the batch with :meth:`forward`, then :meth:`after_step`.
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
        # A copy: adaptation to the data changes it, and the caller's object stays as given.
        self.cfg = config.copy().validate()
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
        self.precision = "fp32"  # runtime.precision resolved for the device (fastpath)
        self.channels_last = False
        self.logger: RunLogger
        self.addons: list[TrainerAddon] = []
        self.train_split: Any = None
        self.val_split: Any = None
        self.epochs_done = 0
        self.epoch_step = 0
        self.global_step = 0
        self.best: dict[str, Any] = {"value": -math.inf, "epoch": -1, "recalls": {}}
        self.not_improved = 0
        self.history: list[dict[str, Any]] = []
        self.stopped_early = False
        self.stopped_by_time = False
        self.accum: dict[str, Any] = _fresh_accum()
        self.val_loaders: dict[tuple[Any, ...], ImageLoader] = {}
        self._epoch = 0
        self._last_step_time = 0.0
        self._bar: Any = None
        self._step: tuple[StepBatch, StepOutputs] | None = None
        self._addon_params: list[nn.Parameter] = []

    # ------------------------------------------------------------------ hooks
    def load_data(self) -> None:
        """Load the datasets (minute zero): ``self.train_split`` and ``self.val_split``.

        Runs before :meth:`adapt_to_data`; checks that depend on settings the data
        may change belong in :meth:`prepare_data`.
        """
        self.train_split = load_train_split(self.cfg)
        self.val_split = load_val_split(self.cfg)

    def adapt_to_data(self) -> AdaptationPlan:
        """Proposed changes of the method's settings that this data cannot support (none by default).

        Only keys the user did not set explicitly may be proposed
        (``self.cfg.is_explicit``); see :mod:`vgloc.training.adapt`.
        """
        return AdaptationPlan()

    @abstractmethod
    def prepare_data(self) -> None:
        """Build the method's data structures with the final settings and check them."""

    def prepare_method(self) -> None:
        """Build method-specific objects that need the model (e.g. classifiers)."""

    def initialize_from_data(self) -> None:
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

    def load_method_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`method_state` output."""

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
        acc = self.accum
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

    def _adapt(self) -> None:
        """Apply the shared and the method's adaptations to the data (``data.adapt``)."""
        if not self.cfg.data.adapt:
            log.info("data.adapt=false: %s settings used as configured", self.method)
            return
        shared = image_size_adaptation(self.cfg, self.train_split.database.paths)
        plan = self.adapt_to_data()
        apply_adaptations(self.cfg, AdaptationPlan([*shared, *plan.changes], plan.summary), what=self.method)
        self.cfg.validate()

    def _run(self) -> TrainResult:
        cfg = self.cfg
        self._started = time.perf_counter()  # schedule.max_minutes counts from here
        ckpt: dict[str, Any] | None = None
        resume_file = None if self._resume_arg is None else resolve_resume_path(self._resume_arg)
        if resume_file is not None:
            ckpt = load_training_checkpoint(resume_file)
        self.run_dir = self._choose_run_dir(resume_file)
        if ckpt is None and (self.run_dir / "last.pt").exists():
            raise ConfigError(
                f"{self.run_dir} already holds a training run (last.pt): resume it (--resume {self.run_dir}) "
                "or choose another run folder"
            )
        seed_everything(cfg.runtime.seed)
        self.precision = resolve_precision(cfg.runtime.precision, self.device)
        self.channels_last = resolve_channels_last(cfg.runtime.channels_last, self.precision, self.device)
        self.amp_dtype = configure_backends(cfg, self.device, self.precision)
        self.logger = RunLogger(
            self.run_dir,
            enabled=self.dist.is_main,
            tensorboard=cfg.runtime.tensorboard,
            log_files=cfg.runtime.log_files,
            resume_step=None if ckpt is None else int(ckpt["global_step"]),
            resume_epoch=None if ckpt is None else int(ckpt["epoch"]),
        )
        try:
            log.info(
                "%s training in %s on %s%s, precision %s%s%s%s",
                self.method,
                self.run_dir,
                self.device,
                f" ({self.dist.world_size} processes)" if self.dist.enabled else "",
                self.precision,
                f" ({cfg.runtime.precision}: {_precision_reason(self.precision, self.device)})"
                if cfg.runtime.precision == "auto"
                else "",
                ", channels_last" if self.channels_last else "",
                ", torch.compile" if cfg.runtime.compile else "",
            )
            self.load_data()
            self._adapt()
            if ckpt is not None:
                # After adaptation: a fresh config adapts to the same data as the checkpoint's did.
                allowed = check_resume_config(ckpt, cfg)
                log.info(
                    "resuming from %s (epoch %d, step %d)", resume_file, ckpt["epoch"], ckpt["global_step"]
                )
                for key, old, new in allowed:
                    log.info("resumed with %s changed: %r -> %r", key, old, new)
            if self.dist.is_main:
                save_config(cfg, self.run_dir / "config.yaml")
            self.prepare_data()
            self.model = build_training_model(cfg, self.device, self.channels_last)
            self.prepare_method()
            self._setup_addons()
            params = [p for p in self.model.parameters() if p.requires_grad]
            self.optimizer = build_optimizer(params, cfg.optim)
            for addon in self.addons:
                if addon.parameters():
                    self.optimizer.add_param_group(
                        {"params": addon.parameters(), **addon.optimizer_options()}
                    )
            self.scheduler = build_scheduler(self.optimizer, cfg.schedule)
            self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype is torch.float16)
            if ckpt is not None:
                restore_state(self, ckpt)
            else:
                self.initialize_from_data()
            self.net = maybe_compile(wrap_ddp(self.model, self.dist, self.device), cfg.runtime.compile)
            if ckpt is None and cfg.validation.before_training:
                validate_and_record(self, epoch=-1)
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
            config=cfg,
        )

    def _setup_addons(self) -> None:
        self.addons = build_addons(self.cfg)
        if self.addons and self.cfg.runtime.accumulation_steps > 1:
            # Their extra inputs and loss terms are defined per step, not per micro-batch.
            raise ConfigError(
                f"runtime.accumulation_steps={self.cfg.runtime.accumulation_steps} cannot be combined with "
                f"training add-ons ({', '.join(a.name for a in self.addons)}): use 1"
            )
        for addon in self.addons:
            addon.setup(self)
        self._addon_params = [p for a in self.addons for p in a.parameters()]
        if self.addons:
            log.info("add-ons: %s", ", ".join(a.name for a in self.addons))

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
                self.accum = _fresh_accum()
            self.net.train()
            self._epoch = epoch
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
            validate_and_record(self, epoch)
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

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: Path) -> None:
        """Write the full training state (collective: every process must call it).

        Args:
            path: Destination (rank 0 writes it).
        """
        payload = checkpoint_payload(self)
        if payload is not None:
            save_training_checkpoint(path, payload)
