"""Training: VG-benchmark triplets and CosPlace classification, with shared infrastructure.

Submodules (import them directly; this package imports nothing heavy itself, so
importing it stays cheap):

- :mod:`~vgloc.training.groups`: CosPlace classes and groups.
- :mod:`~vgloc.training.mining`: VG-benchmark triplet mining.
- :mod:`~vgloc.training.triplet`: the triplet training loop (:func:`train_triplet`).
- :mod:`~vgloc.training.cosplace`: the CosPlace training loop (:func:`train_cosplace`).
- :mod:`~vgloc.training.engine`: the shared loop (validation, model selection, early
  stopping, checkpoints, exact resume, mixed precision, non-finite-loss check).
- :mod:`~vgloc.training.checkpoint`, :mod:`~vgloc.training.optim`,
  :mod:`~vgloc.training.augment`, :mod:`~vgloc.training.metrics`,
  :mod:`~vgloc.training.validation`, :mod:`~vgloc.training.distributed` (DDP under
  torchrun), :mod:`~vgloc.training.cli` (``vgloc train``).

The configuration lives in :mod:`vgloc.config`.

Example:
    >>> from vgloc.config import resolve_config
    >>> from vgloc.training import train
    >>> cfg = resolve_config("cosplace", overrides=["data.root=data/city"])  # doctest: +SKIP
    >>> result = train(cfg, run_dir="runs/cp")  # doctest: +SKIP
    >>> result.best_model  # a vgloc model file for `vgloc eval --checkpoint`  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vgloc.config import TrainConfig
    from vgloc.training.engine import TrainResult

__all__ = ["train"]


def train(
    config: TrainConfig, *, run_dir: str | Path | None = None, resume: str | Path | None = None
) -> TrainResult:
    """Train with the method named in ``config.method``.

    Args:
        config: A resolved configuration (:func:`vgloc.config.resolve_config`).
        run_dir: Run folder; default: the resumed run's folder, else
            ``runs/<time>-train-<method>``.
        resume: A run folder (its ``last.pt``) or a checkpoint file to continue from.

    Returns:
        A :class:`~vgloc.training.engine.TrainResult` (paths of ``best_model.pt``,
        ``best.pt``, ``last.pt``, the per-epoch history, the final model).

    Raises:
        vgloc.config.ConfigError: Bad configuration or untrainable data (before training).
        vgloc.training.checkpoint.CheckpointMismatchError: ``resume`` does not fit.
        vgloc.training.engine.NonFiniteLossError: The loss became NaN/inf.
    """
    if config.method == "triplet":
        from vgloc.training.triplet import train_triplet

        return train_triplet(config, run_dir=run_dir, resume=resume)
    if config.method == "cosplace":
        from vgloc.training.cosplace import train_cosplace

        return train_cosplace(config, run_dir=run_dir, resume=resume)
    from vgloc.config import ConfigError

    raise ConfigError(f"unknown training method {config.method!r}; choose triplet or cosplace")
