"""Training augmentation of a whole batch on the device, as batched tensor ops.

:class:`BatchAugment` gives, for a batch of ``uint8`` images and their per-sample seeds,
the same pixels as :class:`~vgloc.training.augment.TrainAugment` applied to each image
with its seed (up to float rounding in the hue shift), but works on the batch at once
on the training device: the DataLoader workers only decode (``uint8``, 4x less to copy
than float), and the per-image Python work is a few scalar draws.

CosPlace does the same on the GPU (CP train.py:85-94, augmentations.py:7-35: a loop of
per-image torchvision transforms over the batch on the device); here colour jitter,
darkening and normalisation are single batched ops with per-sample factors (images are
grouped by the position of each jitter operation in their random order), and only the
crop-and-resize, whose output size is fixed but whose input size differs per image, is a
per-image call. When training on the CPU with DataLoader workers, :class:`AugmentingCollate`
runs the same batched ops in the workers instead, overlapping them with the network.

Parameters are drawn exactly as torchvision's ``v2.ColorJitter`` and
``v2.RandomResizedCrop`` draw them, in the order :class:`TrainAugment` draws them,
from a generator seeded with the sample's seed: a sample's augmentation is still a
function of (image, seed) only, whatever the batch, worker or process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import default_collate
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from vgloc.config import AugmentConfig
from vgloc.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from vgloc.training.augment import augmentation_enabled

__all__ = ["AugmentingCollate", "BatchAugment", "SampleParams"]

# Weights of torchvision's rgb_to_grayscale (ITU-R 601-2 luma), used by its contrast
# and saturation adjustments.
_GRAY = (0.2989, 0.587, 0.114)


@dataclass(frozen=True)
class SampleParams:
    """One sample's random draws.

    Attributes:
        order: Order of the jitter operations (0 brightness, 1 contrast, 2 saturation, 3 hue).
        factors: Per operation its factor, None when the operation is off.
        crop: ``(top, left, height, width)`` of the random crop, None without cropping.
        night: Whether the fixed darkening applies.
    """

    order: tuple[int, ...]
    factors: tuple[float | None, float | None, float | None, float | None]
    crop: tuple[int, int, int, int] | None
    night: bool


class BatchAugment:
    """ColorJitter -> RandomResizedCrop -> darkening -> normalisation of a batch, seeded per sample.

    Args:
        cfg: The augmentation section.
        image_size: ``(H, W)`` of the output (the crop is resized back to it).

    Shape:
        - Input: ``(B, 3, H, W)`` uint8 (any device), ``B`` seeds
        - Output: ``(B, 3, H, W)`` float32 on the input's device, ImageNet-normalised
    """

    def __init__(self, cfg: AugmentConfig, image_size: tuple[int, int]) -> None:
        self.cfg = cfg
        self.size = (int(image_size[0]), int(image_size[1]))
        self.enabled = augmentation_enabled(cfg)
        self.jitter = bool(cfg.brightness or cfg.contrast or cfg.saturation or cfg.hue)
        # torchvision's own objects hold the factor ranges, checked as ColorJitter checks them.
        cj = v2.ColorJitter(
            brightness=cfg.brightness or None,
            contrast=cfg.contrast or None,
            saturation=cfg.saturation or None,
            hue=cfg.hue or None,
        )
        self._ranges = (cj.brightness, cj.contrast, cj.saturation, cj.hue)
        self._scale: tuple[float, float] | None = None
        if cfg.random_resized_crop is not None:
            rrc = v2.RandomResizedCrop(self.size, scale=tuple(cfg.random_resized_crop), antialias=True)
            self._scale = (float(rrc.scale[0]), float(rrc.scale[1]))
            self._log_ratio = (math.log(rrc.ratio[0]), math.log(rrc.ratio[1]))

    def sample(self, seed: int, height: int, width: int) -> SampleParams:
        """The random draws of one sample, as :class:`TrainAugment` makes them.

        Args:
            seed: The sample's seed.
            height: Input image height.
            width: Input image width.
        """
        g = torch.Generator().manual_seed(int(seed))
        order: tuple[int, ...] = ()
        factors: list[float | None] = [None, None, None, None]
        if self.jitter:
            # v2.ColorJitter.make_params: a permutation, then one uniform per enabled factor.
            order = tuple(int(i) for i in torch.randperm(4, generator=g))
            for k, rng in enumerate(self._ranges):
                if rng is not None:
                    factors[k] = float(torch.empty(1).uniform_(rng[0], rng[1], generator=g).item())
        crop = None if self._scale is None else self._sample_crop(g, height, width)
        night = False
        nb = self.cfg.night_brightness
        if nb is not None:
            night = float(torch.rand((), generator=g)) < self.cfg.night_probability
        f = (factors[0], factors[1], factors[2], factors[3])
        return SampleParams(order, f, crop, night)

    def _sample_crop(self, g: torch.Generator, height: int, width: int) -> tuple[int, int, int, int]:
        # v2.RandomResizedCrop.make_params, draw for draw.
        assert self._scale is not None
        area = height * width
        for _ in range(10):
            target_area = area * torch.empty(1).uniform_(self._scale[0], self._scale[1], generator=g).item()
            lr = self._log_ratio
            aspect = math.exp(torch.empty(1).uniform_(lr[0], lr[1], generator=g).item())
            w = round(math.sqrt(target_area * aspect))
            h = round(math.sqrt(target_area / aspect))
            if 0 < w <= width and 0 < h <= height:
                i = int(torch.randint(0, height - h + 1, size=(1,), generator=g).item())
                j = int(torch.randint(0, width - w + 1, size=(1,), generator=g).item())
                return i, j, h, w
        ratio = (math.exp(self._log_ratio[0]), math.exp(self._log_ratio[1]))
        in_ratio = width / height
        if in_ratio < min(ratio):
            w, h = width, round(width / min(ratio))
        elif in_ratio > max(ratio):
            h, w = height, round(height * max(ratio))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, images: Tensor, seeds: Sequence[int] | Tensor | None) -> Tensor:
        """Augment (when ``seeds`` is given and augmentation is on) and normalise.

        Args:
            images: ``(B, 3, H, W)`` uint8 batch.
            seeds: ``B`` per-sample seeds; None: no augmentation (evaluation-identical).

        Returns:
            ``(B, 3, H, W)`` float32, normalised.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) batch, got shape {tuple(images.shape)}")
        x = TF.to_dtype(images, torch.float32, scale=True)
        if seeds is not None and self.enabled:
            seed_list = [int(s) for s in (seeds.tolist() if isinstance(seeds, Tensor) else seeds)]
            if len(seed_list) != len(x):
                raise ValueError(f"{len(seed_list)} seeds for a batch of {len(x)} images")
            params = [self.sample(s, x.shape[-2], x.shape[-1]) for s in seed_list]
            if self.jitter:
                x = self._color_jitter(x, params)
            if self._scale is not None:
                x = self._resized_crops(x, params)
            nb = self.cfg.night_brightness
            dark = [i for i, p in enumerate(params) if p.night]
            if nb is not None and dark:
                x[dark] = x[dark].mul(float(nb)).clamp_(0.0, 1.0)
        return TF.normalize(x, mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))

    def _color_jitter(self, x: Tensor, params: list[SampleParams]) -> Tensor:
        """Each sample's jitter operations in its own order, batched over samples sharing a step."""
        dev = x.device
        for position in range(4):
            for op in range(4):
                rows = [
                    i for i, p in enumerate(params) if p.order[position] == op and p.factors[op] is not None
                ]
                if not rows:
                    continue
                f = torch.tensor([params[i].factors[op] for i in rows], dtype=x.dtype, device=dev)
                x[rows] = _ADJUST[op](x[rows], f)
        return x

    def _resized_crops(self, x: Tensor, params: list[SampleParams]) -> Tensor:
        """Per sample: crop, resize back to ``image_size`` (bilinear, antialiased, as torchvision)."""
        out = torch.empty((len(x), 3, *self.size), dtype=x.dtype, device=x.device)
        for i, p in enumerate(params):
            assert p.crop is not None
            top, left, h, w = p.crop
            out[i] = TF.resized_crop(
                x[i],
                top,
                left,
                h,
                w,
                list(self.size),
                interpolation=v2.InterpolationMode.BILINEAR,
                antialias=True,
            )
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, ranges={self._ranges}, crop_scale={self._scale})"


class AugmentingCollate:
    """A DataLoader ``collate_fn`` that stacks ``(uint8 image, label, seed)`` samples and augments the batch.

    For training on the CPU: there the "device" is the CPU itself, and augmenting each
    batch in a DataLoader worker (single-threaded, batched ops) overlaps it with the
    previous step's forward and backward pass instead of adding to it.

    Args:
        augment: The batched augmentation.

    Shape:
        - Output: ``((B, 3, H, W) float32, (B,) labels, (B,) seeds)``
    """

    def __init__(self, augment: BatchAugment) -> None:
        self.augment = augment

    def __call__(self, samples: Sequence[tuple[Tensor, int, int]]) -> tuple[Tensor, Tensor, Tensor]:
        """Collate and augment one batch."""
        images, labels, seeds = default_collate(list(samples))
        return self.augment(images, seeds), labels, seeds


def _gray(x: Tensor) -> Tensor:
    """``(B, 1, H, W)`` luma, as torchvision's ``rgb_to_grayscale`` computes it for float images."""
    r, g, b = x.unbind(dim=1)
    return (r * _GRAY[0]).add_(g, alpha=_GRAY[1]).add_(b, alpha=_GRAY[2]).unsqueeze(1)


def _blend(x: Tensor, other: Tensor, f: Tensor) -> Tensor:
    """``clamp(x * f + other * (1 - f), 0, 1)`` with per-sample ``f`` (torchvision's ``_blend``)."""
    f = f.view(-1, 1, 1, 1)
    return (x * f).add_(other * (1.0 - f)).clamp_(0.0, 1.0)


def _brightness(x: Tensor, f: Tensor) -> Tensor:
    return (x * f.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def _contrast(x: Tensor, f: Tensor) -> Tensor:
    mean = _gray(x).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(x, mean, f)


def _saturation(x: Tensor, f: Tensor) -> Tensor:
    return _blend(x, _gray(x), f)


def _hue(x: Tensor, f: Tensor) -> Tensor:
    # kornia works on batches with a per-sample factor, in radians; torchvision's hue
    # factor is a fraction of the colour circle.
    from kornia.color import hsv_to_rgb, rgb_to_hsv

    hsv = rgb_to_hsv(x)
    h = torch.remainder(hsv[:, 0] + (f * (2 * math.pi)).view(-1, 1, 1), 2 * math.pi)
    return hsv_to_rgb(torch.stack((h, hsv[:, 1], hsv[:, 2]), dim=1)).clamp_(0.0, 1.0)


_ADJUST = (_brightness, _contrast, _saturation, _hue)
