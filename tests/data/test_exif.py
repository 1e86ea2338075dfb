"""EXIF GPS parsing: rationals and floats, hemisphere references, headings, bad blocks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin

from tests.data.helpers import write_image
from vgloc.data.exif import ExifGPSError, gps_from_exif, make_gps_exif, read_exif_gps

R = TiffImagePlugin.IFDRational


def _gps_exif(tags: dict[int, object]) -> bytes:
    """An EXIF block whose GPS IFD holds exactly ``tags`` (written by hand, not by vgloc)."""
    exif = Image.Exif()
    gps = exif.get_ifd(0x8825)
    gps.update(tags)
    return exif.tobytes()


def test_rationals_with_south_west_refs(tmp_path: Path) -> None:
    # Sydney Opera House-ish: 33 deg 51' 31.41" S, 151 deg 12' 30.5" E written as W to test the sign.
    exif = _gps_exif(
        {
            1: "S",
            2: (R(33, 1), R(51, 1), R(3141, 100)),
            3: "W",
            4: (R(151, 1), R(12, 1), R(305, 10)),
            16: "T",
            17: R(2705, 10),
        }
    )
    path = write_image(tmp_path / "a.jpg", exif=exif)
    gps = read_exif_gps(path)
    assert gps is not None
    assert gps.lat == pytest.approx(-(33 + 51 / 60 + 31.41 / 3600), abs=1e-12)
    assert gps.lon == pytest.approx(-(151 + 12 / 60 + 30.5 / 3600), abs=1e-12)
    assert gps.heading == pytest.approx(270.5)
    assert math.isnan(gps.altitude)


def test_north_east_refs_and_decimal_minutes(tmp_path: Path) -> None:
    exif = _gps_exif(
        {1: "N", 2: (R(55, 1), R(4189, 100), R(0, 1)), 3: "E", 4: (R(13, 1), R(1173, 100), R(0, 1))}
    )
    gps = read_exif_gps(write_image(tmp_path / "b.jpg", exif=exif))
    assert gps is not None
    assert (gps.lat, gps.lon) == pytest.approx((55 + 41.89 / 60, 13 + 11.73 / 60), abs=1e-12)
    assert math.isnan(gps.heading)


def test_signed_floats_without_refs_keep_their_sign() -> None:
    # Signed values need SRATIONAL on disk; the parser is tested on the in-memory block.
    exif = Image.Exif()
    exif.get_ifd(0x8825).update({2: (-22.0, 54.0, 0.0), 4: -43.25})
    gps = gps_from_exif(exif)
    assert gps is not None
    assert (gps.lat, gps.lon) == pytest.approx((-22.9, -43.25))


def test_altitude_below_sea_level() -> None:
    exif = Image.Exif()
    exif.load(
        _gps_exif({1: "N", 2: (10.0, 0.0, 0.0), 3: "E", 4: (20.0, 0.0, 0.0), 5: b"\x01", 6: R(125, 10)})
    )
    gps = gps_from_exif(exif)
    assert gps is not None and gps.altitude == pytest.approx(-12.5)


@pytest.mark.parametrize("tags", [{}, {1: "N", 2: (R(55, 1), R(0, 1), R(0, 1))}])
def test_missing_gps_gives_none(tmp_path: Path, tags: dict[int, object]) -> None:
    path = write_image(tmp_path / "c.jpg", exif=_gps_exif(tags) if tags else None)
    assert read_exif_gps(path) is None


def test_zero_zero_is_no_fix(tmp_path: Path) -> None:
    exif = _gps_exif({1: "N", 2: (R(0, 1), R(0, 1), R(0, 1)), 3: "E", 4: (R(0, 1), R(0, 1), R(0, 1))})
    assert read_exif_gps(write_image(tmp_path / "d.jpg", exif=exif)) is None


@pytest.mark.parametrize(
    ("tags", "match"),
    [
        ({1: "X", 2: (10.0, 0.0, 0.0), 3: "E", 4: (20.0, 0.0, 0.0)}, "GPSLatitudeRef is 'X'"),
        ({1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (20.0, 0.0, 0.0)}, "outside"),
        ({1: "N", 2: (10.0, 75.0, 0.0), 3: "E", 4: (20.0, 0.0, 0.0)}, "minutes and seconds"),
        ({1: "N", 2: (R(10, 1), R(0, 0), R(0, 1)), 3: "E", 4: (20.0, 0.0, 0.0)}, "undefined"),
    ],
)
def test_malformed_gps_names_the_file(tmp_path: Path, tags: dict[int, object], match: str) -> None:
    path = write_image(tmp_path / "bad.jpg", exif=_gps_exif(tags))
    with pytest.raises(ExifGPSError, match=match) as info:
        read_exif_gps(path)
    assert str(path) in str(info.value)


def test_not_an_image_raises_oserror(tmp_path: Path) -> None:
    path = tmp_path / "x.jpg"
    path.write_text("not a jpeg")
    with pytest.raises(OSError):
        read_exif_gps(path)


@pytest.mark.parametrize("ext", [".jpg", ".png", ".tif", ".webp"])
def test_make_gps_exif_round_trip(tmp_path: Path, ext: str) -> None:
    lat, lon, heading = -33.8567844, -151.2152967, 359.99
    path = write_image(tmp_path / f"r{ext}", exif=make_gps_exif(lat, lon, heading).tobytes())
    gps = read_exif_gps(path)
    assert gps is not None
    # Seconds are stored to 1e-4 arc-seconds: 2.8e-8 degrees.
    assert gps.lat == pytest.approx(lat, abs=3e-8)
    assert gps.lon == pytest.approx(lon, abs=3e-8)
    assert gps.heading == pytest.approx(heading)


def test_make_gps_exif_never_writes_sixty_seconds() -> None:
    # 10.99999999 deg would naively round to 10 deg 59' 60.0000".
    exif = make_gps_exif(10.99999999, 20.0)
    dms = exif.get_ifd(0x8825)[2]
    assert float(dms[2]) < 60 and float(dms[1]) < 60
    gps = gps_from_exif(exif)
    assert gps is not None and gps.lat == pytest.approx(11.0, abs=3e-8)


def test_lund_photos_have_gps_in_lund(lund_dir: Path) -> None:
    files = sorted(lund_dir.glob("*.jpg"))
    assert len(files) == 29
    fixes = [read_exif_gps(f) for f in files]
    assert all(g is not None for g in fixes)
    lat = np.array([g.lat for g in fixes if g is not None])
    lon = np.array([g.lon for g in fixes if g is not None])
    assert np.all((lat > 55.69) & (lat < 55.71)) and np.all((lon > 13.18) & (lon < 13.21))
    # 01.jpg's EXIF: 55 deg 41' 53.4" N, 13 deg 11' 43.4" E.
    assert (lat[0], lon[0]) == pytest.approx((55 + 41 / 60 + 53.4 / 3600, 13 + 11 / 60 + 43.4 / 3600))
