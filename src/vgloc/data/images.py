"""Image inputs in every form a caller may hold: a path, a PIL image, an array or encoded bytes.

The Localizer (and the HTTP service after it) locates photos that never touched the
disk, so everything that reads images goes through :func:`open_image_input`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from PIL import Image, ImageOps

from vgloc.data.validation import DataError

__all__ = ["ImageInput", "describe_input", "image_size", "is_path_input", "load_image", "open_image_input"]

#: What a locate call accepts for one photo: a file path, a PIL image, an
#: ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` grey) array, or the bytes of an encoded file.
ImageInput: TypeAlias = "str | os.PathLike[str] | Image.Image | np.ndarray | bytes | bytearray"


def load_image(
    path: str | os.PathLike[str],
    *,
    exif_transpose: bool = True,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Open an image as RGB, fully decoded.

    Args:
        path: the image file.
        exif_transpose: apply the EXIF orientation tag, so a phone photo taken upright
            is seen upright (a no-op for images without the tag, such as benchmark images).
        draft_size: the (H, W) the image will be resized to (as seen after the EXIF
            orientation), if any: a JPEG at least four times as large is then decoded at
            1/2, 1/4 or 1/8 scale by libjpeg (Pillow's ``draft``), never below twice this
            size (:data:`DRAFT_MARGIN`), so the resize still antialiases the last step.
            None decodes at full size.

    Returns:
        The RGB PIL image.

    Raises:
        DataError: naming the file when it cannot be opened or decoded.
    """
    return _decode(path, exif_transpose, draft_size, f"{os.fspath(path)}: cannot read image")


def _decode(
    source: Any, exif_transpose: bool, draft_size: tuple[int, int] | None, failure: str
) -> Image.Image:
    """Decode a file or file object to RGB (drafted, oriented); ``failure`` starts the error."""
    try:
        with Image.open(source) as im:
            if draft_size is not None and im.format == "JPEG":
                _draft(im, draft_size, exif_transpose)
            im.load()
            out = ImageOps.exif_transpose(im) if exif_transpose else im
            return out.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{failure} ({type(exc).__name__}: {exc})") from exc


# EXIF orientations that swap width and height (transpose, rotate 90/270, transverse).
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
    except (ValueError, TypeError, OSError, SyntaxError):
        return 1


# The drafted image stays at least this many times the target size, so the antialiased
# resize that follows still does the last step. With a margin of 1 (draft straight down to
# the target) a 72x96 network's descriptors of 480x640 files fell to cosine 0.97-0.986 of a
# full decode's and single queries flipped; with 2 they agree to 0.9999 and a 12 MP photo
# still decodes 2.8x faster (benchmarks/bench_jpeg_draft.py, bench_draft_recall.py).
DRAFT_MARGIN = 2


def _draft(im: Image.Image, size: tuple[int, int], exif_transpose: bool) -> None:
    """Ask libjpeg for the smallest DCT scale (1/2, 1/4, 1/8) that keeps the image at least
    :data:`DRAFT_MARGIN` times ``size`` (H, W); a no-op for smaller files."""
    h, w = size
    if exif_transpose and _orientation(im) in _SWAPPING_ORIENTATIONS:
        h, w = w, h
    h, w = DRAFT_MARGIN * h, DRAFT_MARGIN * w
    if im.width >= 2 * w and im.height >= 2 * h:
        im.draft("RGB", (w, h))


def image_size(item: Any, *, exif_transpose: bool = True, name: str = "image") -> tuple[int, int]:
    """The (H, W) an image input decodes to, from the header when it is a file or encoded bytes.

    Raises:
        DataError: naming the file when its header cannot be read.
    """
    encoded = isinstance(item, (bytes, bytearray))
    if isinstance(item, Path) or is_path_input(item) or encoded:
        try:
            with Image.open(io.BytesIO(item) if encoded else item) as im:
                w, h = im.size
                if exif_transpose and _orientation(im) in _SWAPPING_ORIENTATIONS:
                    w, h = h, w
                return h, w
        except (OSError, SyntaxError, ValueError) as exc:
            what = name if encoded else os.fspath(item)
            raise DataError(f"{what}: cannot read image ({type(exc).__name__}: {exc})") from exc
    if isinstance(item, np.ndarray):
        return int(item.shape[0]), int(item.shape[1])
    if isinstance(item, Image.Image):
        return item.height, item.width
    image = open_image_input(item, exif_transpose=exif_transpose, name=name)
    return image.height, image.width


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


def open_image_input(
    item: object,
    *,
    exif_transpose: bool = True,
    name: str = "image",
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode one :data:`ImageInput` into an RGB PIL image.

    Args:
        item: a path, PIL image, numpy array ``(H, W)`` / ``(H, W, 3)`` / ``(H, W, 4)``
            (uint8, or float in [0, 1]) or encoded bytes (JPEG, PNG, ...).
        exif_transpose: apply the EXIF orientation of files and encoded bytes.
        name: a label for error messages.
        draft_size: as :func:`load_image`'s, for files and encoded bytes (a JPEG at least
            four times that size is decoded at a reduced scale); None decodes at full size.

    Returns:
        The RGB image.

    Raises:
        DataError: the input cannot be decoded, or is of an unsupported kind.
    """
    if is_path_input(item):
        return load_image(Path(item), exif_transpose=exif_transpose, draft_size=draft_size)  # type: ignore[arg-type]
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, np.ndarray):
        return _array_to_image(item, name)
    if isinstance(item, (bytes, bytearray)):
        return _decode(io.BytesIO(item), exif_transpose, draft_size, f"{name}: cannot decode image bytes")
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
