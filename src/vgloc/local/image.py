"""Image loading and the working-resolution resize shared by extractors and matchers.

Local features are detected on a resized copy of the image (the *working frame*)
but reported in the *original frame* (the file's pixels after the EXIF rotation),
so that matches can be drawn on, or compared with, the original photo whatever
resize an extractor used. The two frames are related per axis by

    x_work = (x_orig + 0.5) * s - 0.5,   s = working size / original size,

the pixel-centre convention of ``cv2.resize``: a point stays on the same scene
point in both frames.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

#: A resize rule: ``int`` caps the longer side (aspect kept, never upscaled);
#: ``(width, height)`` resizes to exactly that size (aspect not kept, as
#: To-Match-or-Not-to-Match's 512x512); ``None`` keeps the original size.
Resize = int | tuple[int, int] | None


def check_resize(resize: Any) -> Resize:
    """Validate a resize rule and return it in canonical form.

    Args:
        resize: ``None``, a positive int, or a ``(width, height)`` pair of positive ints.

    Returns:
        The rule (a tuple for a pair given as a list).

    Raises:
        ValueError: for anything else, naming the value.
    """
    if resize is None:
        return None
    if isinstance(resize, bool):
        raise ValueError(f"resize must be None, a positive int or (width, height), got {resize!r}")
    if isinstance(resize, int | np.integer):
        if resize <= 0:
            raise ValueError(f"resize must be positive, got {resize}")
        return int(resize)
    if (
        isinstance(resize, list | tuple)
        and len(resize) == 2
        and all(isinstance(v, int | np.integer) for v in resize)
    ):
        w, h = int(resize[0]), int(resize[1])
        if w <= 0 or h <= 0:
            raise ValueError(f"resize (width, height) must be positive, got {tuple(resize)}")
        return (w, h)
    raise ValueError(f"resize must be None, a positive int or (width, height), got {resize!r}")


def working_size(size: tuple[int, int], resize: Resize) -> tuple[int, int]:
    """The (width, height) an image of ``size`` (width, height) is resized to.

    Args:
        size: original (width, height).
        resize: the rule (see :data:`Resize`).

    Returns:
        The working (width, height); at least 1 pixel per side.
    """
    w, h = size
    if resize is None:
        return (w, h)
    if isinstance(resize, tuple):
        return resize
    scale = min(1.0, resize / max(w, h))
    return (max(1, round(w * scale)), max(1, round(h * scale)))


def load_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as an RGB uint8 array, EXIF orientation applied.

    Args:
        path: the image file.

    Returns:
        The image. Shape: (H, W, 3) uint8.

    Raises:
        DataError: naming the file when it cannot be read or decoded.
    """
    # vgloc.data.datasets imports torch; imported here so `import vgloc.local` stays light.
    from vgloc.data.images import load_image

    return np.asarray(load_image(path), dtype=np.uint8)


def as_rgb(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Check an in-memory image and return it as (H, W, 3) uint8 RGB.

    Args:
        image: (H, W) grey or (H, W, 3) RGB, uint8 (or float in [0, 1]).
        what: a label for error messages.

    Returns:
        The RGB image. Shape: (H, W, 3) uint8.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{what}: expected an (H, W, 3) RGB or (H, W) grey image, got shape {image.shape}")
    if image.dtype != np.uint8:
        if not np.issubdtype(image.dtype, np.floating):
            raise ValueError(f"{what}: expected uint8 or float pixels, got {image.dtype}")
        image = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def resize_image(image: np.ndarray, resize: Resize) -> tuple[np.ndarray, tuple[float, float]]:
    """Resize an image by ``resize`` with area interpolation (anti-aliased when shrinking).

    Args:
        image: (H, W, C) or (H, W) array.
        resize: the rule (see :data:`Resize`).

    Returns:
        The resized image and the per-axis scale ``(sx, sy)`` = working / original.
    """
    import cv2

    h, w = image.shape[:2]
    ww, wh = working_size((w, h), resize)
    if (ww, wh) == (w, h):
        return image, (1.0, 1.0)
    shrink = ww <= w and wh <= h
    out = cv2.resize(image, (ww, wh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out, (ww / w, wh / h)


def to_working(points: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Map (N, 2) original-frame (x, y) points to the working frame of ``scale``."""
    s = np.asarray(scale, dtype=np.float64)
    return ((np.asarray(points, dtype=np.float64) + 0.5) * s - 0.5).astype(np.float32)


def to_original(points: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Map (N, 2) working-frame (x, y) points back to the original frame (inverse of :func:`to_working`)."""
    s = np.asarray(scale, dtype=np.float64)
    return ((np.asarray(points, dtype=np.float64) + 0.5) / s - 0.5).astype(np.float32)
