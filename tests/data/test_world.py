"""World-wide data: photos on several continents (and at the poles) load and can be compared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.data.helpers import vg_file_name, write_image
from vgloc.data import DataError, GeoImageSet, load_image_set, load_split
from vgloc.data.exif import make_gps_exif
from vgloc.data.records import align_frames
from vgloc.geo import GeoError, MetricFrame, haversine_m, positives

# Two photos per city, ~10 m apart, plus a photo at the South Pole station and one in Fiji
# just west of the antimeridian with a neighbour just east of it.
WORLD = [
    ("paris/1.jpg", 48.85660, 2.35220),
    ("paris/2.jpg", 48.85668, 2.35225),
    ("sydney/1.jpg", -33.86880, 151.20930),
    ("sydney/2.jpg", -33.86885, 151.20940),
    ("nyc/1.jpg", 40.71280, -74.00600),
    ("nyc/2.jpg", 40.71290, -74.00605),
    ("pole/1.jpg", -90.0, 0.0),
    ("fiji/1.jpg", -17.0, 179.99995),
    ("fiji/2.jpg", -17.0, -179.99995),
]


def world_manifest(root: Path, rows: list[tuple[str, float, float]] = WORLD) -> Path:
    """Write tiny images and a CSV manifest for ``rows``; returns the manifest path."""
    for rel, *_ in rows:
        write_image(root / rel)
    manifest = root / "world.csv"
    manifest.write_text("path,lat,lon\n" + "".join(f"{r},{lat},{lon}\n" for r, lat, lon in rows))
    return manifest


def test_manifest_on_several_continents_loads_world_wide(tmp_path: Path) -> None:
    s = load_image_set(world_manifest(tmp_path), progress=False)
    assert len(s) == len(WORLD) and s.is_world and not s.is_planar
    assert s.frame is None and np.isnan(s.utm).all() and s.has_latlon
    by_path = {p.relative_to(tmp_path).as_posix(): ll for p, ll in zip(s.paths, s.latlon, strict=True)}
    assert {k: tuple(v) for k, v in by_path.items()} == {r: (lat, lon) for r, lat, lon in WORLD}
    # positives on the sphere: each photo finds its neighbour, across lon 180 too
    pos = positives(s, s, 25.0)
    for i, p in enumerate(s.paths):
        near = {s.paths[j].parent.name for j in pos[i]}
        assert near == {p.parent.name}
        if p.parent.name != "pole":
            assert len(pos[i]) == 2
    # a subset keeps the state
    sub = s.subset([0, 1])
    assert sub.is_world and np.isnan(sub.utm).all()


def test_one_zone_manifest_is_unchanged_and_can_go_world_wide(tmp_path: Path) -> None:
    s = load_image_set(world_manifest(tmp_path, WORLD[:2]), progress=False)
    assert s.frame == MetricFrame(31, True) and s.is_planar and not s.is_world
    w = s.to_world()
    assert w.is_world and w.frame is None and np.isnan(w.utm).all()
    np.testing.assert_array_equal(w.latlon, s.latlon)
    back = w.in_frame(s.frame)
    np.testing.assert_allclose(back.utm, s.utm)
    with pytest.raises(GeoError, match="too far from UTM zone 56"):
        w.in_frame(MetricFrame(56, False))
    with pytest.raises(ValueError, match="to_world"):
        s.in_frame(None)
    # a frame asked for is strict
    with pytest.raises(DataError, match="too far from UTM zone 31"):
        load_image_set(world_manifest(tmp_path / "w"), frame=MetricFrame(31, True), progress=False)


def test_manifest_accepts_polar_rows_but_not_impossible_ones(tmp_path: Path) -> None:
    rows = [("a.jpg", -89.5, 10.0), ("b.jpg", 95.0, 10.0)]
    with pytest.raises(DataError, match=r"lat 95.0 outside \[-90, 90\]") as info:
        load_image_set(world_manifest(tmp_path, rows), progress=False)
    assert "89.5" not in str(info.value)


def _split(root: Path, database: list[tuple[float, float]], queries: list[tuple[float, float]]) -> Path:
    for folder, pts in [("database", database), ("queries", queries)]:
        for lat, lon in pts:
            write_image(root / "images" / "test" / folder / vg_file_name(lat, lon))
    return root


def test_split_with_queries_on_another_continent_goes_world_wide(tmp_path: Path) -> None:
    db = [(48.8566, 2.3522), (48.8567, 2.3523), (-33.8688, 151.2093)]
    root = _split(tmp_path, db, [(48.85665, 2.35222), (-33.86881, 151.20931)])
    split = load_split(root, "test", progress=False)
    assert split.database.is_world and split.queries["queries"].is_world
    pos = positives(split.database, split.queries["queries"], 25.0)
    d = haversine_m(
        split.queries["queries"].latlon[:, None, 0],
        split.queries["queries"].latlon[:, None, 1],
        split.database.latlon[None, :, 0],
        split.database.latlon[None, :, 1],
    )
    for row, p in zip(d, pos, strict=True):
        np.testing.assert_array_equal(p, np.flatnonzero(row <= 25.0)[np.argsort(row[row <= 25.0])])


def test_split_in_one_city_keeps_the_database_frame(tmp_path: Path) -> None:
    root = _split(tmp_path, [(48.0, 11.990), (48.0, 11.995)], [(48.0, 12.001)])
    split = load_split(root, "test", progress=False)
    assert split.database.frame == MetricFrame(32, True)
    assert split.queries["queries"].frame == MetricFrame(32, True)
    np.testing.assert_allclose(
        split.queries["queries"].utm, MetricFrame(32, True).to_utm(np.array([48.0]), np.array([12.001]))
    )


def test_align_frames_refuses_metric_only_next_to_lat_lon() -> None:
    world = GeoImageSet.from_latlon([Path("a"), Path("b")], np.array([48.0, -33.0]), np.array([2.0, 151.0]))
    assert world.is_world
    metric = GeoImageSet(
        [Path("m")], np.zeros((1, 2)), np.full((1, 2), np.nan), np.full(1, np.nan), None, "m"
    )
    with pytest.raises(ValueError, match="m: metric coordinates without a UTM zone"):
        align_frames(world, [metric])
    paris = GeoImageSet.from_latlon([Path("p")], np.array([48.0]), np.array([2.0]))
    db, (q,) = align_frames(world, [paris])
    assert db is world and q.is_world
    db, (q,) = align_frames(paris, [world])
    assert db.is_world and q is world


def test_exif_folder_on_several_continents_and_a_pole_loads(tmp_path: Path) -> None:
    for rel, lat, lon in WORLD:
        write_image(tmp_path / "photos" / rel, exif=make_gps_exif(lat, lon).tobytes())
    s = load_image_set(tmp_path / "photos", progress=False)
    assert s.is_world and len(s) == len(WORLD)
    # EXIF stores degrees/minutes/seconds as rationals: positions come back to ~1 cm
    want = {r: (lat, lon) for r, lat, lon in WORLD}
    for p, ll in zip(s.paths, s.latlon, strict=True):
        lat, lon = want[p.relative_to(tmp_path / "photos").as_posix()]
        assert float(haversine_m(ll[0], ll[1], lat, lon)) < 0.05
