"""Image inputs in every form a caller may hold: a path, a PIL image, an array or encoded bytes.

The Localizer (and the HTTP service after it) locates photos that never touched the
disk, so everything that reads images goes through :func:`open_image_input`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TypeAlias

import numpy as np
from PIL import Image, ImageOps

from vgloc.data.validation import DataError

__all__ = ["ImageInput", "describe_input", "is_path_input", "open_image_input"]

#: What a locate call accepts for one photo: a file path, a PIL image, an
#: ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` grey) array, or the bytes of an encoded file.
ImageInput: TypeAlias = "str | os.PathLike[str] | Image.Image | np.ndarray | bytes | bytearray"


def is_path_input(item: object) -> bool:
    """Whether ``item`` names a file (``str`` or path-like) rather than holding pixels."""
    return isinstance(item, (str, os.PathLike))


def describe_input(item: object, position: int) -> str:
    """A label for ``item`` in results and error messages: its path, else ``<kind #i>``."""
    if is_path_input(item):
        return os.fspath(item)  # type: ignore[call-overload]
    kind = {Image.Image: "image", np.ndarray: "array", bytes: "bytes", bytearray: "bytes"}
    for cls, name in kind.items():
        if isinstance(item, cls):
            return f"<{name} #{position}>"
    return f"<{type(item).__name__} #{position}>"


def open_image_input(item: object, *, exif_transpose: bool = True, name: str = "image") -> Image.Image:
    """Decode one :data:`ImageInput` into an RGB PIL image.

    Args:
        item: a path, PIL image, numpy array ``(H, W)`` / ``(H, W, 3)`` / ``(H, W, 4)``
            (uint8, or float in [0, 1]) or encoded bytes (JPEG, PNG, ...).
        exif_transpose: apply the EXIF orientation of files and encoded bytes.
        name: a label for error messages.

    Returns:
        The RGB image.

    Raises:
        DataError: the input cannot be decoded, or is of an unsupported kind.
    """
    if is_path_input(item):
        from vgloc.data.datasets import load_image  # imports torch; only paths need it here

        return load_image(Path(item), exif_transpose=exif_transpose)  # type: ignore[arg-type]
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, np.ndarray):
        return _array_to_image(item, name)
    if isinstance(item, (bytes, bytearray)):
        try:
            with Image.open(io.BytesIO(item)) as im:
                im.load()
                out = ImageOps.exif_transpose(im) if exif_transpose else im
                return out.convert("RGB")
        except (OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"{name}: cannot decode image bytes ({type(exc).__name__}: {exc})") from exc
    raise DataError(
        f"{name}: unsupported image input {type(item).__name__}; pass a path, a PIL image, "
        "a numpy array (H, W, 3) or encoded image bytes"
    )


def _array_to_image(array: np.ndarray, name: str) -> Image.Image:
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))) or min(a.shape[:2]) < 1:
        raise DataError(f"{name}: an image array must be (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.floating):
            raise DataError(f"{name}: image arrays must be uint8 or float in [0, 1], got {a.dtype}")
        if not np.all(np.isfinite(a)) or a.min() < 0.0 or a.max() > 1.0:
            raise DataError(f"{name}: a float image array must hold values in [0, 1]")
        a = np.round(a * 255.0).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(a)).convert("RGB")
