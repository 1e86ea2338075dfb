"""Snapshots for model soups: the model after every epoch, as ``snapshots/epoch_001.pt`` and so on.

``--set snapshots.enabled=true`` saves the exported model (a vgloc model file, the
same format as ``best_model.pt``, loadable by :func:`vgloc.models.load_model`) after
each ``snapshots.every``-th epoch, atomically, in the run folder's ``snapshots/``
folder. Averaging the weights of several such snapshots ("model soups",
Wortsman et al. 2022) is ``vgloc soup`` (:mod:`vgloc.training.soup`). The add-on's
state (which epochs were saved) is in every checkpoint, so a resumed run continues the list and
``snapshots.keep`` prunes the right files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vgloc.training.addons.base import TrainerAddon, TrainingAddon, register_addon

__all__ = ["SnapshotsAddon", "SnapshotsConfig", "check_snapshots", "snapshot_path"]


@dataclass
class SnapshotsConfig:
    """Model snapshots after every epoch (vgloc add-on).

    Attributes:
        enabled: Save snapshots.
        every: Save after every N-th epoch (1: each epoch).
        keep: Keep only the newest N snapshots (older files are deleted); None: all.
    """

    enabled: bool = False
    every: int = 1
    keep: int | None = None


def snapshot_path(run_dir: str | Path, epoch: int) -> Path:
    """``<run_dir>/snapshots/epoch_007.pt`` for 1-based epoch 7 (three digits, zero-padded)."""
    return Path(run_dir) / "snapshots" / f"epoch_{epoch:03d}.pt"


class SnapshotsAddon(TrainerAddon):
    """Saves the model after epochs (see the module docstring).

    Args:
        config: The ``snapshots`` section.
    """

    name = "snapshots"

    def __init__(self, config: SnapshotsConfig) -> None:
        super().__init__(config)
        self.saved: list[int] = []

    def on_epoch_end(self, epoch: int, row: Mapping[str, Any]) -> None:
        """Save the epoch's snapshot (:func:`snapshot_path`) when ``epoch`` is a multiple of ``every``."""
        trainer = self.trainer
        assert trainer is not None, "setup() was not called"
        if epoch % self.config.every:
            return
        # Every process keeps the same list (it is checkpointed); only rank 0 writes files.
        self.saved.append(epoch)
        dropped = []
        if self.config.keep is not None and len(self.saved) > self.config.keep:
            dropped, self.saved = self.saved[: -self.config.keep], self.saved[-self.config.keep :]
        if not trainer.dist.is_main:
            return
        from vgloc.models import save_model

        extra = {
            "method": trainer.method,
            "epoch": epoch,
            "global_step": trainer.global_step,
            "image_size": list(trainer.cfg.val_image_size),
            "metrics": {k: float(v) for k, v in row.items() if k.startswith("val/")},
            "config": trainer.cfg.to_dict(),
        }
        save_model(trainer.model, snapshot_path(trainer.run_dir, epoch), extra)
        for old in dropped:
            snapshot_path(trainer.run_dir, old).unlink(missing_ok=True)

    def state_dict(self) -> dict[str, Any]:
        """``{"saved": [epochs]}``."""
        return {"saved": list(self.saved)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the list of saved epochs (empty for a checkpoint without snapshots)."""
        self.saved = [int(e) for e in state.get("saved", [])]

    def log_metrics(self) -> dict[str, float]:
        """``{"count": snapshots on disk}``."""
        return {"count": float(len(self.saved))}


def check_snapshots(s: SnapshotsConfig, cfg: Any) -> list[str]:
    """Value rules of the ``snapshots`` section."""
    problems = []
    if s.every < 1:
        problems.append(f"snapshots.every={s.every} must be >= 1")
    if s.keep is not None and s.keep < 1:
        problems.append(f"snapshots.keep={s.keep} must be >= 1 or null (all)")
    return problems


register_addon(
    TrainingAddon(
        name="snapshots",
        config_class=SnapshotsConfig,
        addon="vgloc.training.addons.snapshots:SnapshotsAddon",
        help="save the model after every epoch as snapshots/epoch_001.pt, epoch_002.pt, ... (for model soups)",
        resumable=True,
        check=check_snapshots,
    )
)
