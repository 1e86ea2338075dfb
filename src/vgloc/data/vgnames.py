"""File names of the field's dataset layout (gmberton's VG benchmark format).

A file is named
``@UTM_east@UTM_north@zone_num@zone_letter@lat@lon@pano_id@tile_num@heading@pitch@roll@height@timestamp@note@.jpg``;
only the first two fields are required, the others may be empty. This module
parses and writes such names so that every reader and writer (loaders, the
synthetic city) agrees on one implementation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

FIELDS = (
    "utm_east",
    "utm_north",
    "zone_number",
    "zone_letter",
    "lat",
    "lon",
    "pano_id",
    "tile_num",
    "heading",
    "pitch",
    "roll",
    "height",
    "timestamp",
    "note",
)


class VGNameError(ValueError):
    """A file name that does not follow the ``@UTM_east@UTM_north@...@`` layout."""


@dataclass(frozen=True)
class VGName:
    """The parsed fields of one file name; NaN / empty string where a field is absent."""

    utm_east: float
    utm_north: float
    zone_number: int | None = None
    zone_letter: str = ""
    lat: float = math.nan
    lon: float = math.nan
    pano_id: str = ""
    tile_num: str = ""
    heading: float = math.nan
    pitch: float = math.nan
    roll: float = math.nan
    height: float = math.nan
    timestamp: str = ""
    note: str = ""


def is_vg_name(name: str) -> bool:
    """True when ``name`` (a file name, not a path) looks like the ``@east@north@...`` layout."""
    return name.startswith("@") and name.count("@") >= 3


def _float(value: str, field: str, name: str) -> float:
    if value == "":
        return math.nan
    try:
        out = float(value)
    except ValueError:
        raise VGNameError(f"{name}: field {field}={value!r} is not a number") from None
    if not math.isfinite(out):
        raise VGNameError(f"{name}: field {field}={value!r} is not finite")
    return out


def parse_vg_name(path: str | Path) -> VGName:
    """Parse the fields of a ``@UTM_east@UTM_north@...@.ext`` file name.

    Args:
        path: a file name or path; only the final component is read.

    Returns:
        The parsed :class:`VGName`.

    Raises:
        VGNameError: naming the file when the layout or a numeric field is wrong.
    """
    name = Path(path).name
    if not is_vg_name(name):
        raise VGNameError(f"{name}: not in the @UTM_east@UTM_north@...@ layout")
    parts = name.split("@")[1:-1]  # drop the empty head and the extension tail
    if len(parts) < 2:
        raise VGNameError(f"{name}: needs at least @UTM_east@UTM_north@")
    values = dict(zip(FIELDS, parts + [""] * (len(FIELDS) - len(parts)), strict=False))
    east = _float(values["utm_east"], "UTM_east", name)
    north = _float(values["utm_north"], "UTM_north", name)
    if math.isnan(east) or math.isnan(north):
        raise VGNameError(f"{name}: UTM_east and UTM_north are required")
    zone_number: int | None = None
    if values["zone_number"]:
        try:
            zone_number = int(float(values["zone_number"]))
        except ValueError:
            raise VGNameError(f"{name}: zone number {values['zone_number']!r} is not an integer") from None
        if not 1 <= zone_number <= 60:
            raise VGNameError(f"{name}: zone number {zone_number} outside 1..60")
    return VGName(
        utm_east=east,
        utm_north=north,
        zone_number=zone_number,
        zone_letter=values["zone_letter"].upper(),
        lat=_float(values["lat"], "lat", name),
        lon=_float(values["lon"], "lon", name),
        pano_id=values["pano_id"],
        tile_num=values["tile_num"],
        heading=_float(values["heading"], "heading", name),
        pitch=_float(values["pitch"], "pitch", name),
        roll=_float(values["roll"], "roll", name),
        height=_float(values["height"], "height", name),
        timestamp=values["timestamp"],
        note=values["note"],
    )


def format_vg_name(fields: VGName, extension: str = ".jpg", precision: int = 2) -> str:
    """Write a file name in the ``@UTM_east@UTM_north@...@`` layout.

    Args:
        fields: the values; NaN and empty strings become empty fields.
        extension: the file extension, with its dot.
        precision: decimals for UTM metres (lat/lon always get 7 decimals, about 1 cm).

    Returns:
        The file name (no directory).
    """

    def num(value: float, decimals: int) -> str:
        return "" if math.isnan(value) else f"{value:.{decimals}f}"

    for text_field in ("zone_letter", "pano_id", "tile_num", "timestamp", "note"):
        if "@" in getattr(fields, text_field) or "/" in getattr(fields, text_field):
            raise VGNameError(
                f"field {text_field}={getattr(fields, text_field)!r} may not contain '@' or '/'"
            )
    parts = [
        num(fields.utm_east, precision),
        num(fields.utm_north, precision),
        "" if fields.zone_number is None else str(fields.zone_number),
        fields.zone_letter,
        num(fields.lat, 7),
        num(fields.lon, 7),
        fields.pano_id,
        fields.tile_num,
        num(fields.heading, 2),
        num(fields.pitch, 2),
        num(fields.roll, 2),
        num(fields.height, 2),
        fields.timestamp,
        fields.note,
    ]
    return "@" + "@".join(parts) + "@" + extension
