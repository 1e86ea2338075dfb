"""What happens at the end of an epoch: validation, model selection, checkpoints, metrics, add-on hooks.

Split from the engine. :func:`validate_and_record` validates the model (with
:mod:`vgloc.training.validation`, on rank 0; the recalls are broadcast), builds the
epoch's metrics row (training loss, add-on loss terms and metrics, validation
recalls), updates the best model and the patience counter, steps the scheduler, calls
the add-ons' ``on_epoch_end`` and writes ``last.pt``, ``best.pt`` and
``best_model.pt``. Epoch ``-1`` validates the initial model and saves it as
``initial_model.pt``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch.utils.data import Dataset

from vgloc.training.augment import ImageLoader, TrainAugment
from vgloc.training.data import EvalImageDataset
from vgloc.training.distributed import broadcast_object
from vgloc.training.optim import step_scheduler
from vgloc.training.validation import metric_value, validation_recalls

if TYPE_CHECKING:
    from vgloc.training.engine import Trainer

__all__ = ["run_summary", "validate_and_record"]

log = logging.getLogger("vgloc.training.engine")


def validate_and_record(trainer: Trainer, epoch: int) -> None:
    """Validate, update best/patience/scheduler, run add-on hooks, write checkpoints and metrics.

    Args:
        trainer: The trainer.
        epoch: 0-based epoch just trained; -1 validates the initial model (no checkpoint).
    """
    t = trainer
    cfg = t.cfg
    t0 = time.perf_counter()
    recalls: dict[str, dict[int, float]] | None = None
    if t.dist.is_main:
        recalls = _validation_recalls(t)
    recalls = broadcast_object(recalls, t.dist)
    assert recalls is not None
    metric = metric_value(recalls, cfg.schedule.select_metric)
    row: dict[str, Any] = {"epoch": epoch + 1, "step": t.global_step}
    if epoch >= 0:
        acc = t.accum
        count = max(acc["loss_count"], 1)
        row["train_loss"] = acc["loss_sum"] / count
        for name, total in acc["terms"].items():
            row[f"loss/{name}"] = total / count
        row["lr"] = float(t.optimizer.param_groups[0]["lr"])
        row["train_seconds"] = acc["seconds"]
        row["images_per_s"] = acc["images"] / max(acc["seconds"], 1e-9)
    for dom, rec in recalls.items():
        for n, v in rec.items():
            row[f"val/{dom}/R@{n}"] = v
    row[f"val/{cfg.schedule.select_metric}"] = metric
    row["val_seconds"] = time.perf_counter() - t0
    improved = metric > t.best["value"]  # strict, as VGB (train.py:184-216)
    if improved:
        t.best = {"value": metric, "epoch": epoch + 1, "recalls": recalls}
        t.not_improved = 0
    elif epoch >= 0:
        t.not_improved += 1
    row["best"] = bool(improved)
    shown = ", ".join(
        f"{dom} " + " ".join(f"R@{n} {v:.1f}" for n, v in rec.items()) for dom, rec in recalls.items()
    )
    if epoch >= 0:
        log.info(
            "epoch %d: loss %.4f, val %s%s",
            epoch + 1,
            row["train_loss"],
            shown,
            " (best)" if improved else f" (best {t.best['value']:.2f} at epoch {t.best['epoch']})",
        )
        step_scheduler(t.scheduler, metric)
        # Add-ons see the validated epoch before last.pt is written, so that their state in
        # the checkpoint includes what they did for it (e.g. the snapshot saved).
        for addon in t.addons:
            addon.on_epoch_end(epoch + 1, row)
        for addon in t.addons:
            row.update({f"{addon.name}/{k}": float(v) for k, v in addon.log_metrics().items()})
        t.history.append(row)
        t.save_checkpoint(t.run_dir / "last.pt")
        if improved and t.dist.is_main:
            # best.pt = last.pt at this point: copy the file instead of serialising twice.
            import shutil

            from vgloc.io import atomic_path

            with atomic_path(t.run_dir / "best.pt") as tmp:
                shutil.copyfile(t.run_dir / "last.pt", tmp)
    else:
        t.history.append(row)
        log.info("untrained model: val %s", shown)
        if t.dist.is_main:
            # The exact weights training starts from, to compare before and after on other splits.
            from vgloc.models import save_model

            save_model(t.model, t.run_dir / "initial_model.pt", {"method": t.method, "epoch": 0})
    if improved and t.dist.is_main:
        _export_best(t, epoch + 1, recalls)
    t.logger.log_epoch(row, t.history, run_summary(t))


def _validation_recalls(t: Trainer) -> dict[str, dict[int, float]]:
    cfg = t.cfg
    size = cfg.val_image_size
    augment = TrainAugment(type(cfg.augment)(), size)  # normalisation only

    def factory(paths: Sequence[Path]) -> Dataset[Any]:
        return EvalImageDataset(_val_loader(t, paths, size), range(len(paths)), augment)

    return validation_recalls(
        t.model,
        t.val_split,
        factory,
        domains=cfg.validation.domains,
        recall_values=cfg.validation.recall_values,
        threshold_m=cfg.validation.threshold_m,
        batch_size=cfg.validation.batch_size,
        device=t.device,
        precision=t.extract_precision,
        channels_last=t.channels_last,
        num_workers=t.num_workers,
        progress=cfg.runtime.progress,
    )


def _val_loader(t: Trainer, paths: Sequence[Path], size: tuple[int, int]) -> ImageLoader:
    # One loader per image list, kept across epochs so that data.cache_images caches them.
    key = (tuple(str(p) for p in paths[:1]), len(paths), size)
    if key not in t.val_loaders:
        t.val_loaders[key] = ImageLoader(paths, size, cache=t.cfg.data.cache_images)
        t.val_loaders[key].preload()
    return t.val_loaders[key]


def run_summary(t: Trainer) -> dict[str, Any]:
    """Run-level facts for ``metrics.json`` (method, best epoch, counters)."""
    return {
        "method": t.method,
        "model_spec": t.model.spec,
        "select_metric": t.cfg.schedule.select_metric,
        "best_epoch": t.best["epoch"],
        "best_value": t.best["value"] if math.isfinite(t.best["value"]) else None,
        "global_step": t.global_step,
        "stopped_early": t.stopped_early,
        "stopped_by_time": t.stopped_by_time,
    }


def _export_best(t: Trainer, epoch: int, recalls: dict[str, dict[int, float]]) -> None:
    from vgloc.models import save_model

    extra = {
        "method": t.method,
        "epoch": epoch,
        "global_step": t.global_step,
        "select_metric": t.cfg.schedule.select_metric,
        "value": float(t.best["value"]),
        "recalls": {d: {str(n): float(v) for n, v in r.items()} for d, r in recalls.items()},
        "image_size": list(t.cfg.val_image_size),
        "config": t.cfg.to_dict(),
    }
    save_model(t.model, t.run_dir / "best_model.pt", extra)
