"""Training: registered methods (VG-benchmark triplets, CosPlace) on shared infrastructure, with add-ons.

Submodules (import them directly; this package imports nothing heavy itself, so
importing it stays cheap):

- :mod:`~vgloc.training.methods`: the methods, each registered in
  :data:`vgloc.registry.TRAINING_METHODS` with its trainer, config section, preset(s)
  and help (:mod:`~vgloc.training.methods.triplet`,
  :mod:`~vgloc.training.methods.cosplace`).
- :mod:`~vgloc.training.addons`: add-ons plugged into every trainer through hooks
  (:mod:`~vgloc.training.addons.snapshots`).
- :mod:`~vgloc.training.engine`: the shared loop (validation, model selection, early
  stopping, checkpoints, exact resume, mixed precision, non-finite-loss check), with
  :mod:`~vgloc.training.steps`, :mod:`~vgloc.training.records`,
  :mod:`~vgloc.training.state`, :mod:`~vgloc.training.setup`,
  :mod:`~vgloc.training.data` and :mod:`~vgloc.training.adapt` (settings that follow
  the data).
- :mod:`~vgloc.training.checkpoint`, :mod:`~vgloc.training.optim`,
  :mod:`~vgloc.training.augment`, :mod:`~vgloc.training.metrics`,
  :mod:`~vgloc.training.validation`, :mod:`~vgloc.training.distributed` (DDP under
  torchrun).

The configuration lives in :mod:`vgloc.config`; the ``vgloc train`` command in
:mod:`vgloc.cli.train`.

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
    from vgloc.training.methods import get_method

    try:
        method = get_method(config.method)
    except KeyError as err:  # UnknownNameError: the message lists the registered methods
        from vgloc.config import ConfigError

        raise ConfigError(str(err)) from None
    return method.train(config, run_dir=run_dir, resume=resume)
