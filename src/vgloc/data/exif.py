"""GPS position and heading from an image's EXIF block (JPEG, PNG, TIFF, WebP, HEIC via a plugin).

EXIF stores latitude and longitude as unsigned degrees/minutes/seconds
rationals plus a hemisphere reference (``N``/``S``, ``E``/``W``). Writers in the
wild also store plain floats, a single decimal-degree value, signed values
without a reference, or ``0/0`` rationals; :func:`gps_from_exif` accepts all of
these and rejects what cannot be a position.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction

from PIL import ExifTags, Image, TiffImagePlugin

GPS_IFD = int(ExifTags.IFD.GPSInfo)  # 0x8825
_LAT = int(ExifTags.GPS.GPSLatitude)
_LAT_REF = int(ExifTags.GPS.GPSLatitudeRef)
_LON = int(ExifTags.GPS.GPSLongitude)
_LON_REF = int(ExifTags.GPS.GPSLongitudeRef)
_ALT = int(ExifTags.GPS.GPSAltitude)
_ALT_REF = int(ExifTags.GPS.GPSAltitudeRef)
_DIR = int(ExifTags.GPS.GPSImgDirection)
_DIR_REF = int(ExifTags.GPS.GPSImgDirectionRef)


class ExifGPSError(ValueError):
    """An EXIF GPS block that exists but cannot be a position (bad reference, value, range)."""


@dataclass(frozen=True)
class ExifGPS:
    """A position read from EXIF.

    Attributes:
        lat: latitude in degrees, south negative.
        lon: longitude in degrees, west negative.
        heading: GPSImgDirection in degrees clockwise from north in [0, 360); NaN when absent.
            True and magnetic references are not distinguished (they differ by the
            local declination, a few degrees in most places).
        altitude: metres above sea level (negative below); NaN when absent.
    """

    lat: float
    lon: float
    heading: float = math.nan
    altitude: float = math.nan


def _number(value: object) -> float:
    """One EXIF number (IFDRational, int, float, Fraction, numeric text) as a float; NaN for 0/0."""
    if isinstance(value, TiffImagePlugin.IFDRational):
        # Pillow represents a zero denominator as NaN; keep that meaning (an unset value).
        return math.nan if value.denominator == 0 else float(value)
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        value = value.strip("\x00 ")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ExifGPSError(f"{value!r} is not a number") from None


def _degrees(value: object, tag: str) -> float:
    """Degrees from a (deg, min, sec) / (deg, min) / deg value."""
    parts = list(value) if isinstance(value, (tuple, list)) else [value]
    if not 1 <= len(parts) <= 3:
        raise ExifGPSError(f"{tag} has {len(parts)} components, expected 1 to 3 (deg, min, sec)")
    try:
        nums = [_number(p) for p in parts]
    except ExifGPSError as exc:
        raise ExifGPSError(f"{tag}: {exc}") from None
    if not all(math.isfinite(n) for n in nums):
        raise ExifGPSError(f"{tag} = {value!r} has an undefined (0/0) or infinite component")
    # 60 itself is tolerated: some writers round 59.9996 seconds up.
    if any(n < 0 or n > 60 for n in nums[1:]):
        raise ExifGPSError(f"{tag} = {value!r}: minutes and seconds must lie in [0, 60]")
    magnitude = abs(nums[0]) + sum(n / 60**i for i, n in enumerate(nums[1:], start=1))
    return math.copysign(magnitude, nums[0])


def _ref(value: object) -> str:
    """A reference letter (``N``, ``S``, ``E``, ``W``, ``T``, ``M``) or ``""`` when absent."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip("\x00 ").upper()[:1]


def _signed(value: float, ref: str, positive: str, negative: str, tag: str) -> float:
    """Apply a hemisphere reference; with no reference the value's own sign is kept."""
    if ref == positive:
        return abs(value)
    if ref == negative:
        return -abs(value)
    if ref == "":
        return value
    raise ExifGPSError(f"{tag}Ref is {ref!r}, expected {positive!r} or {negative!r}")


def gps_from_exif(exif: Image.Exif) -> ExifGPS | None:
    """Read the GPS position of an already opened EXIF block.

    Args:
        exif: e.g. ``Image.open(path).getexif()``.

    Returns:
        The position, or None when there is no GPSLatitude/GPSLongitude or when it is
        exactly (0, 0), which cameras write when they had no fix.

    Raises:
        ExifGPSError: when the GPS tags exist but are malformed or out of range.
    """
    gps = exif.get_ifd(GPS_IFD)
    if not gps or _LAT not in gps or _LON not in gps:
        return None
    lat = _signed(_degrees(gps[_LAT], "GPSLatitude"), _ref(gps.get(_LAT_REF)), "N", "S", "GPSLatitude")
    lon = _signed(_degrees(gps[_LON], "GPSLongitude"), _ref(gps.get(_LON_REF)), "E", "W", "GPSLongitude")
    if abs(lat) > 90:
        raise ExifGPSError(f"GPSLatitude {lat} outside [-90, 90]")
    if abs(lon) > 180:
        raise ExifGPSError(f"GPSLongitude {lon} outside [-180, 180]")
    if lat == 0 and lon == 0:
        return None
    heading = math.nan
    if _DIR in gps:
        direction = _number(gps[_DIR])
        if math.isfinite(direction):
            heading = direction % 360.0
    altitude = math.nan
    if _ALT in gps:
        altitude = _number(gps[_ALT])
        # GPSAltitudeRef 1 means below sea level; the ref is a byte (b"\x01") or an int.
        alt_ref = gps.get(_ALT_REF, 0)
        if isinstance(alt_ref, bytes):
            alt_ref = alt_ref[0] if alt_ref else 0
        if alt_ref == 1 and math.isfinite(altitude):
            altitude = -abs(altitude)
    return ExifGPS(lat=lat, lon=lon, heading=heading, altitude=altitude)


def read_exif_gps(path: str | os.PathLike[str]) -> ExifGPS | None:
    """Read the GPS position and heading stored in an image file's EXIF.

    Only the file header is read (no pixel decoding), so this is fast.

    Args:
        path: a JPEG, PNG, TIFF or WebP file (HEIC/HEIF when a Pillow plugin such as
            pillow-heif is registered).

    Returns:
        The position, or None when the file has no GPS position (see :func:`gps_from_exif`).

    Raises:
        OSError: when the file cannot be opened as an image (``PIL.UnidentifiedImageError``
            is an OSError).
        ExifGPSError: when the GPS block is malformed; the message names the file.
    """
    with Image.open(path) as im:
        try:
            exif = im.getexif()
            return gps_from_exif(exif)
        except ExifGPSError as exc:
            raise ExifGPSError(f"{os.fspath(path)}: {exc}") from None
        except (KeyError, TypeError, ValueError, IndexError, SyntaxError) as exc:
            # A corrupt EXIF block makes Pillow's parser fail in various ways.
            raise ExifGPSError(f"{os.fspath(path)}: unreadable EXIF block ({exc})") from None


def _dms(value: float) -> tuple[TiffImagePlugin.IFDRational, ...]:
    """Unsigned degrees as (deg, min, sec) rationals, seconds to 1e-4 (about 3 mm)."""
    # Integer arithmetic in 1e-4 arc-seconds so that rounding can never give 60 seconds.
    total = round(abs(value) * 3600 * 10_000)
    deg, rest = divmod(total, 3600 * 10_000)
    minutes, seconds = divmod(rest, 60 * 10_000)
    sec = Fraction(seconds, 10_000)
    return (
        TiffImagePlugin.IFDRational(deg, 1),
        TiffImagePlugin.IFDRational(minutes, 1),
        TiffImagePlugin.IFDRational(sec.numerator, sec.denominator),
    )


def make_gps_exif(lat: float, lon: float, heading: float | None = None) -> Image.Exif:
    """An EXIF block holding a GPS position (and heading), the way cameras write it.

    Save it with ``image.save(path, exif=exif.tobytes())``: the bytes form is needed for
    PNG and TIFF, where Pillow skips an ``Image.Exif`` whose first IFD is empty.

    Args:
        lat: latitude in degrees (south negative).
        lon: longitude in degrees (west negative).
        heading: camera direction in degrees clockwise from true north, or None.

    Returns:
        The EXIF block (degrees/minutes/seconds rationals with N/S/E/W references).
    """
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        raise ValueError(f"invalid position lat={lat}, lon={lon}")
    exif = Image.Exif()
    gps = exif.get_ifd(GPS_IFD)
    gps[int(ExifTags.GPS.GPSVersionID)] = b"\x02\x03\x00\x00"
    gps[_LAT_REF] = "N" if lat >= 0 else "S"
    gps[_LAT] = _dms(lat)
    gps[_LON_REF] = "E" if lon >= 0 else "W"
    gps[_LON] = _dms(lon)
    if heading is not None:
        direction = Fraction(round((heading % 360.0) * 100), 100)
        gps[_DIR_REF] = "T"
        gps[_DIR] = TiffImagePlugin.IFDRational(direction.numerator, direction.denominator)
    return exif
