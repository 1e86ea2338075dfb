"""Data helpers shared by the trainers: the train/val splits, evaluation datasets, counter-based seeds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset

from vgloc.config import ConfigError, TrainConfig

if TYPE_CHECKING:
    from vgloc.training.augment import ImageLoader, TrainAugment

__all__ = ["EvalImageDataset", "ReindexedSubset", "load_train_split", "load_val_split", "sample_seeds"]


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
        augment: Normalisation (an augmentation without random parts).
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


class ReindexedSubset(Dataset[tuple[Tensor, int]]):
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
