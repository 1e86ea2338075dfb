"""Small builders for data tests: tiny images, @UTM names with consistent coordinates."""

from __future__ import annotations

import math
from pathlib import Path

import utm
from PIL import Image

from vgloc.data.vgnames import VGName, format_vg_name


def write_image(
    path: Path,
    *,
    size: tuple[int, int] = (16, 12),
    color: tuple[int, int, int] = (128, 128, 128),
    exif: bytes | None = None,
) -> Path:
    """Write a small constant-colour image (format from the extension); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", size, color)
    if exif is None:
        im.save(path)
    else:
        im.save(path, exif=exif)
    return path


def vg_file_name(
    lat: float,
    lon: float,
    *,
    zone: bool = True,
    latlon: bool = True,
    heading: float = math.nan,
    force_zone: int | None = None,
) -> str:
    """An @UTM name for (lat, lon), with UTM computed in the point's zone (or ``force_zone``)."""
    east, north, number, letter = utm.from_latlon(lat, lon, force_zone_number=force_zone)
    return format_vg_name(
        VGName(
            utm_east=east,
            utm_north=north,
            zone_number=number if zone else None,
            zone_letter=letter if zone else "",
            lat=lat if latlon else math.nan,
            lon=lon if latlon else math.nan,
            heading=heading,
        )
    )
