"""What an upload may be: size, pixel count and format, checked before the image is decoded.

Every refusal is a :class:`UploadRefusedError` carrying the HTTP status and a stable error
code, so the service answers a clear 4xx JSON error instead of a 500 (or an
out-of-memory kill). The pixel count comes from the image header (Pillow opens files
lazily), so a decompression bomb -- a small file that claims a huge canvas -- is
refused before a single pixel is decoded.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image

__all__ = ["DEFAULT_FORMATS", "UploadLimits", "UploadRefusedError", "check_image_header"]

#: Pillow format names the service decodes by default: what cameras and browsers write.
DEFAULT_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP")


class UploadRefusedError(ValueError):
    """An upload the service will not process.

    Attributes:
        status: the HTTP status to answer (400, 413, 415, 422).
        code: a stable machine-readable reason (``"too_large"``, ``"too_many_pixels"``...).
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class UploadLimits:
    """Limits on one uploaded photo.

    Attributes:
        max_bytes: largest encoded upload accepted (413 above).
        max_pixels: largest width x height accepted (413 above; decompression bombs).
        formats: Pillow format names accepted (415 otherwise).
    """

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    formats: tuple[str, ...] = DEFAULT_FORMATS

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.max_pixels < 1:
            raise ValueError(
                f"upload limits must be positive, got {self.max_bytes} bytes, {self.max_pixels} pixels"
            )
        if not self.formats:
            raise ValueError("at least one image format must be allowed")
        object.__setattr__(self, "formats", tuple(f.upper() for f in self.formats))

    def check_size(self, n_bytes: int) -> None:
        """Refuse an upload of ``n_bytes`` (also used on a declared Content-Length)."""
        if n_bytes > self.max_bytes:
            raise UploadRefusedError(
                413, "too_large", f"upload of {n_bytes} bytes exceeds the limit of {self.max_bytes} bytes"
            )


def check_image_header(data: bytes, limits: UploadLimits) -> tuple[str, int, int]:
    """Check an encoded image against ``limits`` from its header only.

    Args:
        data: the encoded file.
        limits: the limits to apply.

    Returns:
        ``(format, width, height)`` as the header declares them.

    Raises:
        UploadRefusedError: empty (400), too large (413), not an image (415), a format not
            allowed (415), or too many pixels (413).
    """
    if not data:
        raise UploadRefusedError(400, "empty", "the upload is empty; send an image file")
    limits.check_size(len(data))
    try:
        # Pillow's own bomb check (a warning, or an error at twice its limit) fires in
        # open(); ours below is stricter and configurable, so silence the warning and
        # turn Pillow's error into the same refusal.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=None) as im:
                fmt, (width, height) = (im.format or "?").upper(), im.size
    except Image.DecompressionBombError as exc:
        raise UploadRefusedError(413, "too_many_pixels", f"image refused: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UploadRefusedError(
            415, "not_an_image", f"the upload is not a readable image ({type(exc).__name__})"
        ) from exc
    if fmt not in limits.formats:
        raise UploadRefusedError(
            415,
            "format_not_allowed",
            f"image format {fmt} is not accepted; send one of {', '.join(limits.formats)}",
        )
    if width * height > limits.max_pixels:
        raise UploadRefusedError(
            413,
            "too_many_pixels",
            f"image of {width}x{height} = {width * height} pixels exceeds the limit of {limits.max_pixels} pixels",
        )
    return fmt, width, height
