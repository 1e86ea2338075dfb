"""Image preprocessing for descriptor extraction: RGB, resize, optional darkening, normalisation.

Every model of the field is trained on ImageNet-normalised RGB tensors; the
transform here is the one shared by datasets, evaluation and the locate API, so
that a query is always preprocessed exactly like the database.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported when a transform is built, not when vgloc.data is
    import torch
    from PIL import Image

#: ImageNet channel statistics (RGB), the normalisation of every torchvision backbone.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def check_photometry(
    brightness: float | None = None, contrast: float | None = None, saturation: float | None = None
) -> None:
    """Refuse photometric factors that are not finite, a brightness <= 0 or a contrast/saturation < 0.

    Raises:
        ValueError: naming the factor and its value.
    """
    if brightness is not None and not (math.isfinite(brightness) and brightness > 0):
        raise ValueError(f"brightness must be a positive finite factor, got {brightness!r}")
    for name, value in (("contrast", contrast), ("saturation", saturation)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite factor >= 0, got {value!r}")


def adjust_photometry(
    images: torch.Tensor,
    brightness: float | None = None,
    contrast: float | None = None,
    saturation: float | None = None,
) -> torch.Tensor:
    """Fixed brightness, contrast and saturation factors, in that order (torchvision functional).

    ``adjust_brightness`` multiplies the pixel values; ``adjust_contrast`` blends each
    image with the mean of its greyscale version (0: uniform grey); ``adjust_saturation``
    blends with the greyscale image (0: greyscale). 1 (or None) leaves an image unchanged;
    results are clamped to [0, 1].

    Args:
        images: ``(3, H, W)`` or ``(B, 3, H, W)`` float RGB in [0, 1].
        brightness, contrast, saturation: the factors, or None for none.

    Returns:
        The adjusted images, same shape.
    """
    from torchvision.transforms.v2 import functional as TF

    if brightness is not None:
        images = TF.adjust_brightness(images, brightness)
    if contrast is not None:
        images = TF.adjust_contrast(images, contrast)
    if saturation is not None:
        images = TF.adjust_saturation(images, saturation)
    return images


class _Photometry:
    """:func:`adjust_photometry` with fixed factors, as a transform step.

    A named class rather than a lambda so that transforms pickle into DataLoader
    worker processes.
    """

    def __init__(
        self, brightness: float | None = None, contrast: float | None = None, saturation: float | None = None
    ) -> None:
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return adjust_photometry(image, self.brightness, self.contrast, self.saturation)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(brightness={self.brightness}, contrast={self.contrast}, "
            f"saturation={self.saturation})"
        )


def _check_resize(resize: tuple[int, int] | int | None) -> tuple[int, int] | int | None:
    """Validate ``resize`` and return it as an int or an (H, W) tuple."""
    if resize is None:
        return None
    if isinstance(resize, bool):
        raise ValueError(f"resize must be an int, an (H, W) pair or None, got {resize!r}")
    if isinstance(resize, int):
        if resize < 1:
            raise ValueError(f"resize must be positive, got {resize}")
        return resize
    size = tuple(resize)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise ValueError(f"resize must be an int, an (H, W) pair of positive ints or None, got {resize!r}")
    return (size[0], size[1])


def build_transform(
    resize: tuple[int, int] | int | None = None,
    *,
    brightness: float | None = None,
    contrast: float | None = None,
    saturation: float | None = None,
) -> Callable[[Image.Image], torch.Tensor]:
    """The preprocessing of an image for a descriptor model.

    Steps: convert to RGB; resize (antialiased); convert to a float tensor in
    [0, 1]; optionally multiply by ``brightness`` (the night-simulation trick of
    evaluating on artificially darkened images, e.g. 0.15) and change ``contrast``
    and ``saturation`` (:func:`adjust_photometry`); ImageNet mean/std normalisation.

    Args:
        resize: ``(H, W)`` for a fixed size; an int to resize the shorter side to it
            keeping the aspect ratio; None to keep the full resolution.
        brightness: a fixed brightness factor (> 0; < 1 darkens), applied before
            normalisation with torchvision's ``adjust_brightness``; None for none.
        contrast, saturation: fixed factors (>= 0; 1 = unchanged) of torchvision's
            ``adjust_contrast`` / ``adjust_saturation``, after brightness; None for none.

    Returns:
        A picklable callable mapping a PIL image to a float32 tensor of shape (3, H, W).

    Raises:
        ValueError: for a non-positive size or brightness, a negative contrast or saturation.
    """
    import torch
    from torchvision.transforms import v2

    size = _check_resize(resize)
    check_photometry(brightness, contrast, saturation)
    steps: list[Callable[..., object]] = [v2.RGB()]
    if size is not None:
        # On PIL input, v2.Resize uses Pillow's resampling, which is always antialiased.
        steps.append(v2.Resize(size, interpolation=v2.InterpolationMode.BILINEAR, antialias=True))
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if (brightness, contrast, saturation) != (None, None, None):
        steps.append(_Photometry(brightness, contrast, saturation))
    steps.append(v2.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD)))
    return v2.Compose(steps)


def resized_size(resize: tuple[int, int] | int | None, size: tuple[int, int]) -> tuple[int, int]:
    """The (H, W) :func:`build_transform` gives an image of ``size`` (H, W).

    Args:
        resize: as for :func:`build_transform`.
        size: the image's (H, W).

    Returns:
        The output (H, W): ``resize`` itself, the shorter side scaled to an int
        ``resize`` (torchvision's rule: the longer side is truncated), or ``size``.
    """
    target = _check_resize(resize)
    if target is None:
        return size
    if isinstance(target, tuple):
        return target
    h, w = size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(target * long / short)
    return (new_long, target) if w <= h else (target, new_long)


def resize_image(image: Image.Image, resize: tuple[int, int] | int | None) -> Image.Image:
    """Resize a PIL image exactly as :func:`build_transform` does (Pillow, bilinear, antialiased).

    The same call torchvision's ``resize`` makes for a PIL image (the output size by
    :func:`resized_size`, unchanged when it is the image's own, else Pillow's bilinear
    ``Image.resize``), made directly: importing torchvision costs ~2.4 s that a process
    running a cached ONNX export never needs otherwise. A test pins it to torchvision's.
    """
    size = _check_resize(resize)
    if size is None:
        return image
    height, width = resized_size(size, (image.height, image.width))
    if (height, width) == (image.height, image.width):
        return image
    from PIL import Image as PILImage

    return image.resize((width, height), resample=PILImage.Resampling.BILINEAR)


class NormalizeUint8:
    """The tensor half of :func:`build_transform`, on a batch of uint8 images.

    Maps ``(B, 3, H, W)`` uint8 RGB to float32: scale to [0, 1], optionally multiply
    by ``brightness`` (clamped to [0, 1], like torchvision's ``adjust_brightness``)
    and change ``contrast`` and ``saturation`` (:func:`adjust_photometry`, per image),
    then ImageNet mean/std. Run in the model step (after the batch is on the device),
    so workers ship uint8 (4x less data) and the arithmetic is vectorised per batch.
    Float inputs pass through unchanged (they are already normalised).

    Args:
        brightness: the night-simulation factor of :func:`build_transform`, or None.
        contrast, saturation: the factors of :func:`build_transform`, or None.
        mean, std: per-channel normalisation (default ImageNet's; a published model may
            name its own, see :class:`vgloc.models.published.Preprocessing`).
    """

    def __init__(
        self,
        brightness: float | None = None,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        contrast: float | None = None,
        saturation: float | None = None,
    ) -> None:
        check_photometry(brightness, contrast, saturation)
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        import torch

        if images.is_floating_point():
            return images
        x = images.to(torch.float32).mul_(1.0 / 255.0)  # exactly torchvision's ToDtype(scale=True)
        if self.brightness is not None:
            x = x.mul_(self.brightness).clamp_(0.0, 1.0)
        if self.contrast is not None or self.saturation is not None:
            x = adjust_photometry(x, None, self.contrast, self.saturation)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return x.sub_(mean).div_(std)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(brightness={self.brightness}, contrast={self.contrast}, "
            f"saturation={self.saturation})"
        )
