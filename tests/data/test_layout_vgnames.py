"""Folders of @UTM_east@UTM_north@...@ files: zones, frames, derived lat/lon, errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import utm

from tests.data.helpers import vg_file_name, write_image
from vgloc.data import DataError, detect_layout, load_image_set
from vgloc.data.vgnames import parse_vg_name
from vgloc.geo import MetricFrame

PITTS = [(40.4420633, -80.0023244), (40.4421500, -80.0021000), (40.4430000, -80.0010000)]


def _folder(tmp_path: Path, names: list[str], sub: str = "db") -> Path:
    root = tmp_path / sub
    for n in names:
        write_image(root / n)
    return root


def test_full_names_keep_file_utm_and_latlon(tmp_path: Path) -> None:
    names = [vg_file_name(lat, lon, heading=10.0 * i) for i, (lat, lon) in enumerate(PITTS)]
    root = _folder(tmp_path, names)
    assert detect_layout(root) == "vgnames"
    s = load_image_set(root, progress=False)
    assert s.frame == MetricFrame(17, True)
    assert s.name == "db"
    order = sorted(range(3), key=lambda i: names[i])
    assert [p.name for p in s.paths] == [names[i] for i in order]
    assert all(p.is_absolute() for p in s.paths)
    for k, i in enumerate(order):
        v = parse_vg_name(names[i])
        # The file's UTM is kept exactly (benchmark ground truth is not re-computed).
        assert tuple(s.utm[k]) == (v.utm_east, v.utm_north)
        assert tuple(s.latlon[k]) == PITTS[i]
        assert s.heading[k] == 10.0 * i


def test_zone_without_latlon_derives_latlon(tmp_path: Path) -> None:
    root = _folder(tmp_path, [vg_file_name(lat, lon, latlon=False) for lat, lon in PITTS])
    s = load_image_set(root, progress=False)
    assert s.frame == MetricFrame(17, True)
    assert np.all(np.isnan(s.heading))
    expected = sorted(PITTS, key=lambda p: vg_file_name(*p, latlon=False))
    # UTM is written to 1 cm; 1e-6 degrees is about 10 cm.
    np.testing.assert_allclose(s.latlon, np.array(expected), atol=1e-6)


def test_southern_hemisphere_from_zone_letter(tmp_path: Path) -> None:
    sydney = [(-33.8567844, 151.2152967), (-33.8570000, 151.2150000)]
    root = _folder(tmp_path, [vg_file_name(lat, lon, latlon=False) for lat, lon in sydney])
    s = load_image_set(root, progress=False)
    assert s.frame == MetricFrame(56, False)
    assert np.all(s.latlon[:, 0] < 0)
    np.testing.assert_allclose(np.sort(s.latlon[:, 0]), np.sort([p[0] for p in sydney]), atol=1e-6)


def test_only_east_north_gives_no_frame(tmp_path: Path) -> None:
    root = _folder(tmp_path, ["@100.5@200.25@.jpg", "@110@205@.jpg", "@90@190@@@@@pano7@.jpg"])
    s = load_image_set(root, progress=False)
    assert s.frame is None
    assert np.all(np.isnan(s.latlon))
    assert not s.has_latlon
    assert s.utm.tolist() == [[100.5, 200.25], [110.0, 205.0], [90.0, 190.0]]


def test_zoneless_files_with_frame_argument_get_latlon(tmp_path: Path) -> None:
    east, north, _, _ = utm.from_latlon(*PITTS[0])
    root = _folder(tmp_path, [f"@{east:.2f}@{north:.2f}@.jpg"])
    s = load_image_set(root, frame=MetricFrame(17, True), progress=False)
    assert s.frame == MetricFrame(17, True)
    np.testing.assert_allclose(s.latlon[0], PITTS[0], atol=1e-6)


def test_different_zones_with_latlon_share_one_frame(tmp_path: Path) -> None:
    # Lon 12 E is the border of zones 32 and 33: two files each side, one a bit further east.
    pts = [(48.0, 11.990), (48.0, 11.995), (48.0, 11.999), (48.0, 12.005), (48.0, 12.010)]
    names = [vg_file_name(lat, lon) for lat, lon in pts]
    assert {parse_vg_name(n).zone_number for n in names} == {32, 33}
    s = load_image_set(_folder(tmp_path, names), progress=False)
    assert s.frame == MetricFrame(32, True)  # the median point is in zone 32
    for k, p in enumerate(s.paths):
        v = parse_vg_name(p)
        if v.zone_number == 32:
            assert tuple(s.utm[k]) == (v.utm_east, v.utm_north)
        else:
            np.testing.assert_allclose(s.utm[k], s.frame.to_utm(v.lat, v.lon)[0])
    # Neighbouring points 0.005 deg apart at 48 N are ~373 m apart across the zone border too.
    xy = s.utm[np.argsort(s.latlon[:, 1])]
    gaps = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    np.testing.assert_allclose(gaps, [373.0, 298.4, 447.6, 373.0], rtol=0.01)


def test_different_zones_without_latlon_get_it_from_their_zones(tmp_path: Path) -> None:
    # Zone and letter place every file, so lat/lon is derived and one frame chosen from it.
    names = [vg_file_name(48.0, 11.99, latlon=False), vg_file_name(48.0, 12.01, latlon=False)]
    s = load_image_set(_folder(tmp_path, names), progress=False)
    np.testing.assert_allclose(
        s.latlon[np.argsort(s.latlon[:, 1])], [[48.0, 11.99], [48.0, 12.01]], atol=1e-9
    )
    assert s.frame == MetricFrame(33, True)  # the median longitude, 12.0, starts zone 33
    for k, p in enumerate(s.paths):
        v = parse_vg_name(p)
        if v.zone_number == 33:
            assert tuple(s.utm[k]) == (v.utm_east, v.utm_north)


def test_files_on_several_continents_load_as_a_world_wide_set(tmp_path: Path) -> None:
    pts = [(48.8566, 2.3522), (-33.8688, 151.2093), (40.7128, -74.0060)]
    names = [vg_file_name(*p) for p in pts] + [vg_file_name(-33.87, 151.21, latlon=False)]
    s = load_image_set(_folder(tmp_path, names), progress=False)
    assert s.frame is None and s.is_world and not s.is_planar
    assert np.isnan(s.utm).all()
    got = {tuple(np.round(ll, 4)) for ll in s.latlon}
    assert got == {(48.8566, 2.3522), (-33.8688, 151.2093), (40.7128, -74.006), (-33.87, 151.21)}
    # A frame asked for is strict: these files do not fit zone 31.
    with pytest.raises(DataError, match="too far from zone 31"):
        load_image_set(_folder(tmp_path, names), frame=MetricFrame(31, True), progress=False)


def test_zoneless_mixed_with_zoned_is_refused(tmp_path: Path) -> None:
    names = [vg_file_name(*PITTS[0]), "@584300.00@4477200.00@.jpg"]
    with pytest.raises(DataError, match="neither a UTM zone nor lat/lon") as info:
        load_image_set(_folder(tmp_path, names), progress=False)
    assert "@584300.00@4477200.00@.jpg" in str(info.value)


def test_zone_number_without_letter_needs_a_frame(tmp_path: Path) -> None:
    east, north, _, _ = utm.from_latlon(*PITTS[0])
    root = _folder(tmp_path, [f"@{east:.2f}@{north:.2f}@17@.jpg"])
    with pytest.raises(DataError, match="hemisphere is unknown"):
        load_image_set(root, progress=False)
    s = load_image_set(root, frame=MetricFrame(17, True), progress=False)
    np.testing.assert_allclose(s.latlon[0], PITTS[0], atol=1e-6)


def test_utm_latlon_disagreement_names_the_file(tmp_path: Path) -> None:
    good = vg_file_name(*PITTS[0])
    east, north, _, _ = utm.from_latlon(*PITTS[1])
    bad = f"@{east + 500:.2f}@{north:.2f}@17@T@{PITTS[1][0]}@{PITTS[1][1]}@.jpg"
    with pytest.raises(DataError, match="disagree") as info:
        load_image_set(_folder(tmp_path, [good, bad]), progress=False)
    assert bad in str(info.value) and good not in str(info.value)


def test_frame_argument_reprojects_other_zones(tmp_path: Path) -> None:
    root = _folder(tmp_path, [vg_file_name(48.0, 12.01)])
    frame = MetricFrame(32, True)
    s = load_image_set(root, frame=frame, progress=False)
    assert s.frame == frame
    np.testing.assert_allclose(s.utm, frame.to_utm(np.array([48.0]), np.array([12.01])))


def test_every_bad_name_is_reported_at_once(tmp_path: Path) -> None:
    names = [
        vg_file_name(*PITTS[0]),
        "@abc@4477200@.jpg",  # non-numeric east
        "@584300@4477200@17@I@.jpg",  # I is not a UTM band letter
        "@584300@4477200@17@T@95.0@-80.0@.jpg",  # latitude out of range
        "@584300@4477200@17@T@40.4@@.jpg",  # lat without lon
    ]
    with pytest.raises(DataError) as info:
        load_image_set(_folder(tmp_path, names), progress=False)
    err = info.value
    assert len(err.problems) == 4
    msg = str(err)
    assert "4 problems:" in msg.splitlines()[0]
    for n in names[1:]:
        assert n in msg
    assert names[0] not in msg


def test_heading_field_and_subfolders_sorted(tmp_path: Path) -> None:
    a = vg_file_name(*PITTS[0], heading=90.0)
    b = vg_file_name(*PITTS[1], heading=180.0)
    write_image(tmp_path / "db" / "z" / a)
    write_image(tmp_path / "db" / "a" / b)
    s = load_image_set(tmp_path / "db", progress=False)
    assert [p.relative_to(tmp_path / "db").as_posix() for p in s.paths] == [f"a/{b}", f"z/{a}"]
    assert s.heading.tolist() == [180.0, 90.0]
    flat = load_image_set(tmp_path / "db" / "a", recursive=False, progress=False)
    assert len(flat) == 1


def test_mixed_layouts_in_one_folder(tmp_path: Path) -> None:
    root = _folder(tmp_path, [vg_file_name(*PITTS[0]), "photo.jpg"])
    with pytest.raises(DataError, match="mixed layouts") as info:
        load_image_set(root, progress=False)
    assert "photo.jpg" in str(info.value)


def test_latlon_zone_inferred_when_zone_fields_empty(tmp_path: Path) -> None:
    names = [vg_file_name(lat, lon, zone=False) for lat, lon in PITTS]
    s = load_image_set(_folder(tmp_path, names), progress=False)
    assert s.frame == MetricFrame(17, True)
    assert not math.isnan(s.latlon[0, 0])
