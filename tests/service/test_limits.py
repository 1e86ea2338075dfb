"""Upload limits: every refusal is decided from the header, before any pixel is decoded."""

from __future__ import annotations

import io
from unittest import mock

import pytest
from PIL import Image, ImageFile

from tests.service.conftest import encoded, png_claiming
from vgloc.service.limits import UploadLimits, UploadRefusedError, check_image_header


def _refusal(data: bytes, limits: UploadLimits) -> tuple[int, str]:
    with pytest.raises(UploadRefusedError) as info:
        check_image_header(data, limits)
    return info.value.status, info.value.code


def test_a_good_image_reports_its_header() -> None:
    data = encoded(Image.new("RGB", (64, 48), "red"), "JPEG")
    assert check_image_header(data, UploadLimits()) == ("JPEG", 64, 48)


def test_each_bad_upload_gets_its_own_status_and_code() -> None:
    limits = UploadLimits(max_bytes=50_000, max_pixels=10_000, formats=("JPEG", "PNG"))
    assert _refusal(b"", limits) == (400, "empty")
    assert _refusal(b"\xff" * 50_001, limits) == (413, "too_large")
    assert _refusal(b"/etc/passwd", limits) == (415, "not_an_image")
    assert _refusal(encoded(Image.new("RGB", (8, 8)), "GIF"), limits) == (415, "format_not_allowed")
    assert _refusal(encoded(Image.new("RGB", (101, 100)), "PNG"), limits) == (413, "too_many_pixels")
    # Exactly at the limit is accepted.
    assert check_image_header(encoded(Image.new("RGB", (100, 100)), "PNG"), limits)[1:] == (100, 100)


def test_a_decompression_bomb_is_refused_without_decoding() -> None:
    bomb = png_claiming(200_000, 200_000)  # 4e10 pixels in a ~70-byte file
    smaller = png_claiming(8000, 8000)
    assert len(bomb) < 200
    # File-backed images decode in ImageFile.load: make any decode fail the test.
    with mock.patch.object(ImageFile.ImageFile, "load", side_effect=AssertionError("decoded")):
        # Pillow's own bomb error (past twice its limit) and ours both answer 413.
        assert _refusal(bomb, UploadLimits()) == (413, "too_many_pixels")
        assert _refusal(smaller, UploadLimits(max_pixels=1_000_000)) == (413, "too_many_pixels")
        with pytest.raises(AssertionError, match="decoded"):  # the guard does catch a decode
            Image.open(io.BytesIO(smaller)).load()


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="positive"):
        UploadLimits(max_bytes=0)
    with pytest.raises(ValueError, match="format"):
        UploadLimits(formats=())
    assert UploadLimits(formats=("jpeg",)).formats == ("JPEG",)
