"""Folders of photos with EXIF GPS: formats, missing GPS, ignored and refused files, Lund."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from tests.data.helpers import write_image
from vgloc.data import DataError, detect_layout, load_image_set
from vgloc.data.exif import make_gps_exif
from vgloc.geo import MetricFrame, haversine_m

POINTS = {
    "z.jpg": (-22.95, -43.21, 10.0),
    "a.png": (-22.951, -43.211, None),
    "sub/m.tif": (-22.952, -43.212, 350.0),
    "sub/k.webp": (-22.953, -43.213, None),
}


def _gps_folder(root: Path, points: dict[str, tuple[float, float, float | None]] = POINTS) -> Path:
    # Written in reverse name order so that file-system order differs from sorted order.
    for rel, (lat, lon, heading) in sorted(points.items(), reverse=True):
        write_image(root / rel, exif=make_gps_exif(lat, lon, heading).tobytes())
    return root


def test_gps_folder_all_formats_sorted(tmp_path: Path) -> None:
    root = _gps_folder(tmp_path / "rio")
    assert detect_layout(root) == "exif"
    s = load_image_set(root, progress=False)
    rels = [p.relative_to(root).as_posix() for p in s.paths]
    assert rels == sorted(POINTS)
    expected = np.array([POINTS[r][:2] for r in rels])
    np.testing.assert_allclose(s.latlon, expected, atol=3e-8)
    headings = [POINTS[r][2] for r in rels]
    np.testing.assert_allclose(s.heading, [np.nan if h is None else h for h in headings])
    assert s.frame == MetricFrame(23, False)
    assert s.name == "rio"


def test_order_is_deterministic(tmp_path: Path) -> None:
    a = load_image_set(_gps_folder(tmp_path / "one"), progress=False)
    b = load_image_set(tmp_path / "one", progress=False, workers=1)
    assert a.paths == b.paths
    np.testing.assert_array_equal(a.utm, b.utm)


def test_recursive_false_ignores_subfolders(tmp_path: Path) -> None:
    s = load_image_set(_gps_folder(tmp_path / "r"), recursive=False, progress=False)
    assert sorted(p.name for p in s.paths) == ["a.png", "z.jpg"]


def test_missing_gps_listed_or_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _gps_folder(tmp_path / "r")
    write_image(root / "nogps1.jpg")
    write_image(root / "sub" / "nogps2.jpg")
    with pytest.raises(DataError) as info:
        load_image_set(root, progress=False)
    assert len(info.value.problems) == 2
    assert "nogps1.jpg: no GPS position in EXIF" in str(info.value)
    assert "sub/nogps2.jpg: no GPS position in EXIF" in str(info.value)
    with caplog.at_level(logging.WARNING, logger="vgloc.data.layouts"):
        s = load_image_set(root, skip_missing_gps=True, progress=False)
    assert len(s) == len(POINTS)
    assert "skipped 2 of 6 images without GPS" in caplog.text


def test_no_image_with_gps_even_when_skipping(tmp_path: Path) -> None:
    write_image(tmp_path / "r" / "a.jpg")
    with pytest.raises(DataError, match="none of the 1 images has a GPS position"):
        load_image_set(tmp_path / "r", skip_missing_gps=True, progress=False)


def test_non_images_and_hidden_files_are_ignored(tmp_path: Path) -> None:
    root = _gps_folder(tmp_path / "r")
    (root / "README.txt").write_text("notes")
    (root / "meta.json").write_text("{}")
    (root / "._z.jpg").write_bytes(b"\x00\x05\x16\x07AppleDouble")  # macOS resource fork
    (root / ".cache").mkdir()
    write_image(root / ".cache" / "thumb.jpg")
    s = load_image_set(root, progress=False)
    assert len(s) == len(POINTS)


def test_image_like_files_are_refused_all_at_once(tmp_path: Path) -> None:
    root = _gps_folder(tmp_path / "r")
    write_image(root / "anim.gif")
    (root / "photo.dat").write_bytes((root / "z.jpg").read_bytes())  # a JPEG in disguise
    (root / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    write_image(root / "nogps.jpg")
    with pytest.raises(DataError) as info:
        load_image_set(root, progress=False)
    msg = str(info.value)
    assert "anim.gif: .gif images are not supported" in msg
    assert "photo.dat: looks like a JPEG image" in msg
    assert "nogps.jpg: no GPS" in msg
    heic_problems = [p for p in info.value.problems if "phone.heic" in p]
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        assert heic_problems and "pillow-heif" in heic_problems[0]


def test_empty_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_image_set(tmp_path / "empty", progress=False)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "db.csv").write_text("path,lat,lon\n")
    with pytest.raises(DataError, match="pass the manifest file itself"):
        load_image_set(tmp_path / "m", progress=False)


def test_symlinked_duplicate_is_refused(tmp_path: Path) -> None:
    root = _gps_folder(tmp_path / "r")
    os.symlink(root / "z.jpg", root / "z_copy.jpg")
    with pytest.raises(DataError, match=r"z_copy.jpg: same file as z.jpg"):
        load_image_set(root, progress=False)


def test_broken_symlink_is_reported(tmp_path: Path) -> None:
    root = _gps_folder(tmp_path / "r")
    os.symlink(tmp_path / "gone.jpg", root / "link.jpg")
    os.symlink(tmp_path / "gone.txt", root / "link.txt")  # not an image: ignored
    with pytest.raises(DataError) as info:
        load_image_set(root, progress=False)
    assert info.value.problems == [f"link.jpg: broken symbolic link (to {tmp_path / 'gone.jpg'})"]


def test_corrupt_gps_block_names_file(tmp_path: Path) -> None:
    root = _gps_folder(tmp_path / "r")
    exif = make_gps_exif(10.0, 20.0)
    exif.get_ifd(0x8825)[1] = "Q"
    write_image(root / "bad.jpg", exif=exif.tobytes())
    with pytest.raises(DataError, match=r"bad.jpg: GPSLatitudeRef is 'Q'"):
        load_image_set(root, progress=False)


def test_lund_folder(lund_dir: Path) -> None:
    s = load_image_set(lund_dir, progress=False)
    assert len(s) == 29
    assert [p.name for p in s.paths] == [f"{i:02d}.jpg" for i in range(1, 30)]
    assert s.frame == MetricFrame(33, True)
    assert s.has_latlon
    assert np.all(np.abs(s.latlon[:, 0] - 55.699) < 0.01)
    assert np.all(np.abs(s.latlon[:, 1] - 13.195) < 0.01)
    # A walk: consecutive frames are metres apart (0 to 16 m; median 6 m in this sequence).
    steps = np.linalg.norm(np.diff(s.utm, axis=0), axis=1)
    assert np.all(steps < 20.0)
    assert 1.0 < float(np.median(steps)) < 10.0
    # UTM distances agree with spherical great-circle distances to within the sphere's
    # error against the ellipsoid (up to ~0.5 %); a wrong zone or swapped axes would not.
    gc = haversine_m(s.latlon[:-1, 0], s.latlon[:-1, 1], s.latlon[1:, 0], s.latlon[1:, 1])
    np.testing.assert_allclose(steps, gc, rtol=5e-3, atol=1e-3)
