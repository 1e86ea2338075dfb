"""Training checkpoints: everything needed to continue a run exactly, loadable with ``weights_only=True``.

A run folder holds:

* ``last.pt``: written at the end of every epoch (and every
  ``runtime.checkpoint_every_steps`` steps when set);
* ``best.pt``: the same content, at the epoch with the best validation metric;
* ``best_model.pt``: the best model alone, in vgloc's model format
  (:func:`vgloc.models.save_model`), for ``vgloc index build / locate / eval --checkpoint``.

A training checkpoint is a dict of plain types and tensors::

    {"format": "vgloc-train-checkpoint", "format_version": 1, "vgloc_version": str,
     "method": a registered method name, "config": {...resolved TrainConfig...},
     "model_spec": str, "model": state_dict,
     "optimizer": state_dict, "scheduler": state_dict | None, "scaler": state_dict | None,
     "epoch": completed epochs, "epoch_step": steps done in the current epoch,
     "global_step": int, "best": {...}, "history": [per-epoch metrics],
     "rng": [per rank: {"python", "numpy", "torch", "cuda"}],
     "method_state": {... miner / classifiers / current refresh ...},
     "addons": {add-on name: its state_dict()}}

Files are written atomically (:func:`vgloc.io.atomic_path`): a crash leaves the
previous checkpoint intact. RNG states are stored as lists and tensors so that
``torch.load(..., weights_only=True)`` reads them.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vgloc._version import __version__
from vgloc.config import TrainConfig, config_diff
from vgloc.config.values import flatten
from vgloc.io import atomic_path

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "RESUMABLE_KEYS",
    "CheckpointMismatchError",
    "capture_rng_state",
    "check_resume_config",
    "load_training_checkpoint",
    "resolve_resume_path",
    "restore_rng_state",
    "resumable_keys",
    "save_training_checkpoint",
]

CHECKPOINT_FORMAT = "vgloc-train-checkpoint"
CHECKPOINT_VERSION = 1

#: Config keys (or ``prefix.`` for whole sections) that may change when a run is
#: resumed: where and how it runs, how long it runs, and where the data now lives.
#: Any other difference would make the continued run a different experiment.
RESUMABLE_KEYS: tuple[str, ...] = (
    "runtime.",
    "schedule.epochs",
    "schedule.patience",
    "schedule.max_minutes",
    "data.root",
    "data.cache_images",
    "data.validate_images",
    "validation.batch_size",
    "validation.before_training",
    # The adapted values themselves are in the checkpoint's config and compared like any other.
    "data.adapt",
)


class CheckpointMismatchError(ValueError):
    """A checkpoint does not belong to the configuration or model it is loaded into."""


def capture_rng_state() -> dict[str, Any]:
    """The python, numpy, torch (and CUDA) global RNG states, as weights_only-safe values.

    Returns:
        ``{"python": [version, [ints], gauss], "numpy": [name, [ints], pos,
        has_gauss, cached], "torch": ByteTensor, "cuda": [ByteTensor, ...]}``.
    """
    version, state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": [int(version), [int(v) for v in state], gauss],
        "numpy": [
            str(name),
            np.asarray(keys).astype(np.int64).tolist(),
            int(pos),
            int(has_gauss),
            float(cached),
        ],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore states captured by :func:`capture_rng_state`.

    Args:
        state: The captured dict. CUDA states are restored for as many devices as
            both the checkpoint and this machine have.
    """
    version, values, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in values), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
    cuda = list(state.get("cuda") or [])
    if cuda and torch.cuda.is_available():
        for i, s in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(torch.as_tensor(s, dtype=torch.uint8).cpu(), i)


def save_training_checkpoint(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Write a training checkpoint atomically.

    Args:
        path: Destination (``last.pt`` / ``best.pt``).
        payload: The content (see the module docstring); ``format``,
            ``format_version`` and ``vgloc_version`` are added.

    Returns:
        ``path``.
    """
    data = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "vgloc_version": __version__,
        **payload,
    }
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    return Path(path)


def resolve_resume_path(path: str | os.PathLike[str]) -> Path:
    """The checkpoint file to resume from.

    Args:
        path: A run folder (its ``last.pt`` is used) or a checkpoint file.

    Returns:
        The file.

    Raises:
        FileNotFoundError: No such folder/file, or a folder without ``last.pt``.
    """
    p = Path(path)
    if p.is_dir():
        last = p / "last.pt"
        if not last.is_file():
            raise FileNotFoundError(
                f"{p} holds no last.pt: not a vgloc training run folder, or the run was stopped before "
                "its first checkpoint"
            )
        return last
    if not p.is_file():
        raise FileNotFoundError(f"resume checkpoint not found: {p}")
    return p


def load_training_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a training checkpoint with ``weights_only=True`` onto the CPU.

    Args:
        path: A ``last.pt``/``best.pt`` file or a run folder.

    Returns:
        The checkpoint dict.

    Raises:
        FileNotFoundError: See :func:`resolve_resume_path`.
        CheckpointMismatchError: Not a vgloc training checkpoint (e.g. a
            ``best_model.pt`` model file), or written by a newer vgloc.
    """
    file = resolve_resume_path(path)
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or foreign files fail in many ways
        raise CheckpointMismatchError(
            f"{file} is not a readable training checkpoint ({type(err).__name__}: {err})"
        ) from err
    fmt = obj.get("format") if isinstance(obj, Mapping) else None
    if fmt != CHECKPOINT_FORMAT:
        hint = (
            " (a model file: use it with --checkpoint, or create_model(spec, weights=...))"
            if fmt == "vgloc-model"
            else ""
        )
        raise CheckpointMismatchError(f"{file} is not a vgloc training checkpoint (format={fmt!r}){hint}")
    version = obj.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= CHECKPOINT_VERSION:
        raise CheckpointMismatchError(
            f"{file} has checkpoint format_version {version!r} (vgloc {obj.get('vgloc_version', '?')}); this "
            f"vgloc {__version__} reads version {CHECKPOINT_VERSION}"
        )
    return dict(obj)


def _resumable(key: str, allowed: Sequence[str]) -> bool:
    return any(key == a or (a.endswith(".") and key.startswith(a)) for a in allowed)


def resumable_keys() -> tuple[str, ...]:
    """:data:`RESUMABLE_KEYS` plus the sections of add-ons registered as resumable (``snapshots.``)."""
    from vgloc.training.addons import addon_names, get_addon

    return RESUMABLE_KEYS + tuple(f"{n}." for n in addon_names() if get_addon(n).resumable)


def check_resume_config(
    checkpoint: Mapping[str, Any], config: TrainConfig, *, allowed: Sequence[str] | None = None
) -> list[tuple[str, Any, Any]]:
    """Refuse to continue a run under a different recipe.

    A key the checkpoint does not have (it was written before the key existed) is no
    difference when the new value is the key's default.

    Args:
        checkpoint: From :func:`load_training_checkpoint`.
        config: The configuration of the run that wants to continue it.
        allowed: Keys that may differ; default :func:`resumable_keys`.

    Returns:
        The allowed differences ``(key, checkpoint value, new value)`` (to log).

    Raises:
        CheckpointMismatchError: The method or any other key differs; the message lists
            every differing key with both values.
    """
    stored = checkpoint.get("config")
    if not isinstance(stored, Mapping):
        raise CheckpointMismatchError("the checkpoint holds no training configuration")
    if stored.get("method") != config.method:
        raise CheckpointMismatchError(
            f"the checkpoint is a {stored.get('method')!r} run; it cannot be resumed as {config.method!r}"
        )
    if allowed is None:
        allowed = resumable_keys()
    defaults = dict(flatten(TrainConfig().to_dict()))
    diffs = [
        d for d in config_diff(stored, config) if not (d[1] == "<missing>" and defaults.get(d[0], d) == d[2])
    ]
    bad = [d for d in diffs if not _resumable(d[0], allowed)]
    if bad:
        listing = "; ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, a, b in bad)
        raise CheckpointMismatchError(
            f"cannot resume: the configuration differs from the checkpoint's in {len(bad)} key(s): {listing}. "
            "Resume with the checkpoint's values (omit these overrides) or start a new run."
        )
    return [d for d in diffs if _resumable(d[0], allowed)]
