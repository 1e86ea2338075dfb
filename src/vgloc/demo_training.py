"""The demo's short training run: CosPlace on the synthetic city's training split, within a time budget.

``vgloc demo`` shows an untrained model next to the same architecture after a short
training run, so a reader sees what training buys over random weights (and over the
chance level). The run is the one a user would start with

    vgloc train cosplace --dataset CITY --model SPEC --set schedule.max_minutes=M --set runtime.seed=S

(:func:`vgloc.training.train` through the public entry point; the settings adapt to
the small city, see :mod:`vgloc.training.adapt`). It trains on ``images/train`` and
picks its best epoch on ``images/val``; the demo then evaluates that model on
``images/test``, so no test image takes part in training or model selection.

Training never takes the demo down: a failure, or a budget too short for one epoch,
leaves the untrained baseline alone in the report with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["DEMO_TRAIN_METHOD", "DemoTraining", "train_demo_model"]

#: CosPlace: on the tiny and small cities it raises val R@1 within a minute on 2 CPU cores
#: (benchmarks/results/train_defaults.json), where the triplet recipe barely moves.
DEMO_TRAIN_METHOD = "cosplace"


@dataclass
class DemoTraining:
    """What the demo's training run produced.

    Attributes:
        checkpoint: ``best_model.pt`` (the epoch with the best validation metric), or
            None when training failed or finished no epoch.
        model_spec: the trained architecture (as the run's configuration says).
        run_dir: the training run folder (``config.yaml``, ``info.log``, ``metrics.csv``).
        minutes: the budget given (``schedule.max_minutes``).
        seconds: wall time of the training call.
        epochs: epochs completed.
        best_epoch: the selected epoch (1-based).
        select_metric: the validation metric that selected it (``R@1`` for CosPlace).
        best_val: its value on the validation split (percent).
        stopped_by_time: the budget ended training (rather than the epoch count or patience).
        note: why there is no trained model (empty when there is one).
    """

    checkpoint: Path | None
    model_spec: str
    run_dir: Path
    minutes: float
    seconds: float
    epochs: int = 0
    best_epoch: int = 0
    select_metric: str = ""
    best_val: float = float("nan")
    stopped_by_time: bool = False
    note: str = ""

    def describe(self) -> str:
        """One line for the console and the report: what was trained, on what, for how long."""
        if self.checkpoint is None:
            return f"no trained model: {self.note}"
        return (
            f"{DEMO_TRAIN_METHOD} on the train split, {self.epochs} epoch(s) in {self.seconds:.0f} s "
            f"(budget {self.minutes:g} min{', reached' if self.stopped_by_time else ''}); "
            f"epoch {self.best_epoch} selected by validation {self.select_metric} = {self.best_val:.1f} %"
        )


def train_demo_model(
    city: str | Path,
    run_dir: str | Path,
    *,
    model: str,
    minutes: float,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
    overrides: Sequence[str] = (),
) -> DemoTraining:
    """Train ``model`` with CosPlace on ``city``'s train split for at most about ``minutes``.

    The budget is checked after each epoch (``schedule.max_minutes``): the first epoch
    always completes, later ones start only if they fit.

    Args:
        city: a dataset root with ``images/{train,val}/{database,queries}``.
        run_dir: the training run folder to create.
        model: the model spec to train from random initialisation (``model.pretrained=false``,
            even for backbones with ImageNet weights), e.g. ``tiny+gem``.
        minutes: the wall-clock budget (> 0).
        seed: the run's seed (weights, sampling, augmentation).
        device: ``cpu`` or a CUDA device.
        progress: show training progress bars.
        overrides: more ``key=value`` settings for the run (``vgloc train --set``), applied
            last; e.g. ``cosplace.iterations_per_epoch=2`` for a quick test.

    Returns:
        A :class:`DemoTraining`; ``checkpoint`` is None (with ``note``) when training
        failed or finished no epoch. Bad arguments raise before anything runs.
    """
    if not minutes > 0:
        raise ValueError(f"the training budget must be > 0 minutes, got {minutes}")
    from vgloc.config import resolve_config
    from vgloc.training import train

    run = Path(run_dir)
    overrides = [
        f"data.root={Path(city)}",
        f"model.spec={model}",
        # Random initialisation like the untrained row (the recipes start from ImageNet where a
        # backbone has torchvision weights): training is then the only difference between them.
        "model.pretrained=false",
        f"schedule.max_minutes={minutes:g}",
        f"runtime.seed={seed}",
        f"runtime.device={device}",
        f"runtime.progress={'true' if progress else 'false'}",
        *overrides,
    ]
    t0 = time.perf_counter()
    try:
        cfg = resolve_config(DEMO_TRAIN_METHOD, None, overrides)
        result = train(cfg, run_dir=run)
    except Exception as err:  # the demo still shows the baseline, with the reason
        seconds = time.perf_counter() - t0
        log.warning("demo training failed after %.0f s: %s", seconds, err, exc_info=True)
        return DemoTraining(
            checkpoint=None,
            model_spec=model,
            run_dir=run,
            minutes=minutes,
            seconds=seconds,
            note=f"training failed ({type(err).__name__}: {err}); see {run / 'debug.log'}",
        )
    seconds = time.perf_counter() - t0
    trained_cfg = result.config or cfg
    epochs = max((int(row.get("epoch", 0)) for row in result.history), default=0)
    out = DemoTraining(
        checkpoint=result.best_model,
        model_spec=trained_cfg.model.spec,
        run_dir=result.run_dir,
        minutes=minutes,
        seconds=seconds,
        epochs=epochs,
        best_epoch=result.best_epoch,
        select_metric=trained_cfg.schedule.select_metric,
        best_val=float(result.best_metric),
        stopped_by_time=result.stopped_by_time,
    )
    if result.best_model is None or result.best_epoch < 1:
        out.checkpoint = None
        out.note = f"no training epoch finished within {minutes:g} min (run folder {result.run_dir})"
    return out
