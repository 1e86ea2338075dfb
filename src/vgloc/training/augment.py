"""Training-image loading and augmentation, reproducible per sample.

An image goes through two stages:

1. :class:`ImageLoader`: decode (RGB), resize to ``(H, W)`` with antialiasing and
   convert to a ``uint8`` tensor: exactly the first steps of
   :func:`vgloc.data.build_transform`, so an image that is not augmented gives the
   same tensor as in evaluation. The result can be cached in memory.
2. :class:`TrainAugment`: float conversion, ColorJitter, RandomResizedCrop back to
   ``(H, W)``, optional fixed-factor darkening (night simulation), ImageNet
   normalisation (torchvision ``transforms.v2``), in CosPlace's order
   (CP train.py:85-94: jitter -> crop -> normalise).

Reproducibility: every augmented sample carries its own integer seed, and the random
transforms run under :func:`torch.random.fork_rng` seeded with it. A sample's pixels
are therefore a function of (image, seed) only, whatever the DataLoader workers,
batch position or process: a resumed or distributed run sees the same images.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from vgloc.config import AugmentConfig
from vgloc.data.images import load_image
from vgloc.data.transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["ImageLoader", "TrainAugment", "augmentation_enabled"]


def augmentation_enabled(cfg: AugmentConfig) -> bool:
    """Whether ``cfg`` changes any pixel (jitter, crop or darkening).

    Args:
        cfg: The augmentation section.

    Returns:
        True when at least one augmentation is on.
    """
    return bool(cfg.brightness or cfg.contrast or cfg.saturation or cfg.hue or cfg.random_resized_crop) or (
        cfg.night_brightness is not None and cfg.night_probability > 0
    )


class ImageLoader:
    """Decode and resize images to ``uint8`` tensors, optionally caching them.

    Args:
        paths: Image files; items are addressed by their index here.
        image_size: ``(H, W)``.
        cache: Keep every loaded image in memory (each DataLoader worker process
            holds its own copy of what it loaded).

    Shape:
        - Output: ``(3, H, W)`` uint8
    """

    def __init__(
        self, paths: Sequence[str | os.PathLike[str]], image_size: tuple[int, int], cache: bool = False
    ):
        self.paths = [Path(p) for p in paths]
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.cache = cache
        self._cache: dict[int, Tensor] = {}
        # On PIL input v2.Resize uses Pillow's resampling (always antialiased), as build_transform does.
        self._resize = v2.Resize(self.image_size, interpolation=v2.InterpolationMode.BILINEAR, antialias=True)
        self._to_image = v2.ToImage()

    def __len__(self) -> int:
        return len(self.paths)

    def preload(self) -> None:
        """Load every image into the cache now (no-op without ``cache``).

        DataLoader worker processes start from a copy of this object, so images loaded
        here are shared with every worker (copy-on-write under ``fork``) instead of being
        decoded again by each worker of each epoch.
        """
        if self.cache:
            for i in range(len(self.paths)):
                self(i)

    def __call__(self, index: int) -> Tensor:
        """Load image ``index``.

        Args:
            index: Position in ``paths``.

        Returns:
            The resized image.
        """
        hit = self._cache.get(index)
        if hit is not None:
            return hit
        image = self._to_image(self._resize(load_image(self.paths[index])))
        tensor = image.as_subclass(Tensor).contiguous()
        if self.cache:
            self._cache[index] = tensor
        return tensor


class TrainAugment:
    """ColorJitter -> RandomResizedCrop -> darkening -> normalisation, seeded per sample.

    Args:
        cfg: The augmentation section.
        image_size: ``(H, W)`` of the output (the crop is resized back to it).

    Shape:
        - Input: ``(3, H, W)`` uint8
        - Output: ``(3, H, W)`` float32, ImageNet-normalised
    """

    def __init__(self, cfg: AugmentConfig, image_size: tuple[int, int]) -> None:
        self.cfg = cfg
        self.enabled = augmentation_enabled(cfg)
        steps: list[v2.Transform] = []
        if cfg.brightness or cfg.contrast or cfg.saturation or cfg.hue:
            steps.append(
                v2.ColorJitter(
                    brightness=cfg.brightness or None,
                    contrast=cfg.contrast or None,
                    saturation=cfg.saturation or None,
                    hue=cfg.hue or None,
                )
            )
        if cfg.random_resized_crop is not None:
            steps.append(
                v2.RandomResizedCrop(tuple(image_size), scale=tuple(cfg.random_resized_crop), antialias=True)
            )
        self._random = v2.Compose(steps) if steps else None
        self._normalize = v2.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))

    def __call__(self, image: Tensor, seed: int | None) -> Tensor:
        """Augment (when ``seed`` is not None and augmentation is on) and normalise.

        Args:
            image: A uint8 image from :class:`ImageLoader`.
            seed: The sample's seed; None: no augmentation (evaluation-identical).

        Returns:
            The normalised float image.
        """
        x = TF.to_dtype(image, torch.float32, scale=True)
        if seed is not None and self.enabled:
            # fork_rng restores the global CPU generator afterwards, so augmenting in the
            # main process (num_workers=0) does not disturb the training RNG stream.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                if self._random is not None:
                    x = self._random(x)
                nb = self.cfg.night_brightness
                if nb is not None and float(torch.rand(())) < self.cfg.night_probability:
                    x = TF.adjust_brightness(x, nb)
        return self._normalize(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._random}, night_brightness={self.cfg.night_brightness})"
