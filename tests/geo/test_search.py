"""Radius searches and nearest neighbours, planar and on the sphere, against brute force."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from vgloc.geo import (
    EARTH_RADIUS_M,
    GeoError,
    MetricFrame,
    haversine_m,
    nearest,
    nearest_latlon,
    positives,
    positives_within,
    positives_within_latlon,
)


def _random_latlon(rng: np.random.Generator, n: int) -> np.ndarray:
    """Points uniform on the sphere (so the poles get their share)."""
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    return np.stack([lat, rng.uniform(-180, 180, n)], 1)


def _jitter(rng: np.random.Generator, centres: np.ndarray, n: int, metres: float) -> np.ndarray:
    """``n`` points scattered up to ~``metres`` around random ``centres`` (clipped to valid lat/lon)."""
    c = centres[rng.integers(0, len(centres), n)]
    dlat = np.degrees(rng.normal(0, metres, n) / EARTH_RADIUS_M)
    cos_lat = np.maximum(np.cos(np.radians(c[:, 0])), 1e-6)
    dlon = np.degrees(rng.normal(0, metres, n) / EARTH_RADIUS_M) / cos_lat
    lat = np.clip(c[:, 0] + dlat, -90, 90)
    lon = (c[:, 1] + dlon + 180) % 360 - 180
    return np.stack([lat, lon], 1)


# Hot spots: cities on several continents, both sides of the antimeridian (Fiji,
# Samoa), and both poles (the South Pole station, a point 1 km from the North Pole).
HOT_SPOTS = np.array(
    [
        [48.8566, 2.3522],  # Paris
        [-33.8688, 151.2093],  # Sydney
        [40.7128, -74.0060],  # New York
        [-17.7134, 179.9990],  # Fiji, east of the antimeridian's west side
        [-17.7134, -179.9990],  # ... and just across it
        [-90.0, 0.0],  # South Pole
        [89.991, 45.0],  # 1 km from the North Pole
        [0.0, 0.0],
    ]
)


def _brute_force(db: np.ndarray, q: np.ndarray, radius_m: float) -> list[np.ndarray]:
    d = haversine_m(q[:, None, 0], q[:, None, 1], db[None, :, 0], db[None, :, 1])
    out = []
    for row in d:
        idx = np.flatnonzero(row <= radius_m)
        out.append(idx[np.lexsort((idx, row[idx]))])
    return out


@pytest.mark.parametrize("radius_m", [25.0, 1_000.0, 2_000_000.0])
def test_latlon_positives_match_brute_force_haversine_anywhere(radius_m: float) -> None:
    rng = np.random.default_rng(7)
    spread = min(radius_m * 2, 3_000_000.0)
    db = np.concatenate([_jitter(rng, HOT_SPOTS, 1500, spread), _random_latlon(rng, 300)])
    q = np.concatenate([_jitter(rng, HOT_SPOTS, 200, spread), _random_latlon(rng, 50)])
    got = positives_within_latlon(db, q, radius_m)
    want = _brute_force(db, q, radius_m)
    assert sum(len(w) for w in want) > 100  # the test exercises real neighbourhoods
    for g, w in zip(got, want, strict=True):
        assert g.dtype == np.int64
        np.testing.assert_array_equal(g, w)


def test_latlon_positives_cross_the_antimeridian_and_the_poles() -> None:
    db = np.array(
        [
            [-17.0, 179.99990],  # 1: ~10.6 m west of the query across lon 180
            [-17.0, -179.99985],  # 2: ~16 m east of it
            [-17.0, 179.9990],  # 3: ~106 m away
            [90.0, 0.0],  # 4: the North Pole ...
            [89.99990, 123.0],  # 5: ... and a point 11 m from it on another meridian
            [-90.0, 17.0],  # 6: the South Pole under another longitude
        ]
    )
    q = np.array([[-17.0, -180.0], [90.0, -77.0], [-90.0, 0.0]])
    pos = positives_within_latlon(db, q, 25.0)
    assert pos[0].tolist() == [0, 1]
    assert pos[1].tolist() == [3, 4]
    assert pos[2].tolist() == [5]


def test_latlon_positives_boundary_is_inclusive() -> None:
    db = np.array([[10.0, 20.0], [10.0, 20.0002], [10.0, 20.0003]])
    q = np.array([[10.0, 20.0]])
    r = float(haversine_m(10.0, 20.0, 10.0, 20.0002))  # exactly the distance to image 1
    assert positives_within_latlon(db, q, r)[0].tolist() == [0, 1]
    assert positives_within_latlon(db, q, np.nextafter(r, 0))[0].tolist() == [0]
    # a radius beyond half the circumference holds everything
    assert positives_within_latlon(db, np.array([[-10.0, -160.0]]), 3e7)[0].size == 3


def test_latlon_search_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="positive"):
        positives_within_latlon(np.zeros((1, 2)), np.zeros((1, 2)), 0.0)
    with pytest.raises(GeoError, match="finite"):
        positives_within_latlon(np.full((1, 2), np.nan), np.zeros((1, 2)), 10.0)
    assert positives_within_latlon(np.zeros((0, 2)), np.zeros((2, 2)), 10.0)[1].size == 0


def test_nearest_latlon_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    db = np.concatenate([_jitter(rng, HOT_SPOTS, 800, 5_000.0), _random_latlon(rng, 200)])
    q = np.concatenate([_jitter(rng, HOT_SPOTS, 100, 5_000.0), _random_latlon(rng, 40)])
    dist, idx = nearest_latlon(db, q, k=3)
    assert dist.shape == idx.shape == (len(q), 3)
    full = haversine_m(q[:, None, 0], q[:, None, 1], db[None, :, 0], db[None, :, 1])
    want = np.sort(full, axis=1)[:, :3]
    np.testing.assert_allclose(dist, want, rtol=1e-12, atol=1e-6)
    np.testing.assert_allclose(np.take_along_axis(full, idx, 1), dist, rtol=1e-12, atol=1e-6)
    # k is capped at the database size; an empty database gives empty rows
    assert nearest_latlon(db[:2], q, k=5)[1].shape == (len(q), 2)
    assert nearest_latlon(np.zeros((0, 2)), q)[1].shape == (len(q), 0)


def _set(latlon: np.ndarray, frame: MetricFrame | None, planar: bool = True) -> SimpleNamespace:
    utm_xy = frame.to_utm(latlon[:, 0], latlon[:, 1]) if (frame and planar) else np.full(latlon.shape, np.nan)
    return SimpleNamespace(utm=utm_xy, latlon=latlon, frame=frame if planar else None, name="")


def test_one_zone_sets_use_utm_exactly() -> None:
    rng = np.random.default_rng(0)
    city = np.array([[55.70, 13.19]])
    db_ll, q_ll = _jitter(rng, city, 2000, 300.0), _jitter(rng, city, 300, 300.0)
    frame = MetricFrame.for_points(db_ll[:, 0], db_ll[:, 1])
    db, q = _set(db_ll, frame), _set(q_ll, frame)
    got = positives(db, q, 25.0)
    want = positives_within(db.utm, q.utm, 25.0)
    assert sum(len(w) for w in want) > 200
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    d, _ = nearest(db, q, k=2)
    brute = np.linalg.norm(q.utm[:, None] - db.utm[None], axis=2)
    np.testing.assert_allclose(d, np.sort(brute, 1)[:, :2])
    # The sphere agrees with UTM except within the ~0.3 % scale difference of the boundary.
    sphere = positives_within_latlon(db_ll, q_ll, 25.0)
    differ = sum(set(a.tolist()) != set(b.tolist()) for a, b in zip(sphere, want, strict=True))
    assert differ <= len(q_ll) * 0.02


def test_sets_without_a_shared_frame_use_great_circles() -> None:
    rng = np.random.default_rng(1)
    db_ll = _jitter(rng, HOT_SPOTS, 1000, 50.0)
    q_ll = _jitter(rng, HOT_SPOTS, 100, 50.0)
    world_db, world_q = _set(db_ll, None, planar=False), _set(q_ll, None, planar=False)
    want = _brute_force(db_ll, q_ll, 25.0)
    for g, w in zip(positives(world_db, world_q, 25.0), want, strict=True):
        np.testing.assert_array_equal(g, w)
    # A database in one zone with queries in another zone: compared on the sphere too.
    paris = np.array([[48.8566, 2.3522]])
    db_ll, q_ll = _jitter(rng, paris, 200, 30.0), _jitter(rng, paris, 20, 30.0)
    db = _set(db_ll, MetricFrame(31, True))
    q = _set(q_ll, MetricFrame(30, True))
    for g, w in zip(positives(db, q, 25.0), _brute_force(db_ll, q_ll, 25.0), strict=True):
        np.testing.assert_array_equal(g, w)
    assert nearest(db, q)[1].shape == (20, 1)


def test_metric_only_sets_stay_planar_and_cannot_meet_world_sets() -> None:
    xy = np.array([[0.0, 0.0], [10.0, 0.0], [30.0, 0.0]])
    metric = SimpleNamespace(utm=xy, latlon=np.full((3, 2), np.nan), frame=None, name="metric")
    assert [p.tolist() for p in positives(metric, metric, 15.0)] == [[0, 1], [1, 0], [2]]
    world = _set(np.array([[0.0, 0.0]]), None, planar=False)
    with pytest.raises(GeoError, match="no latitude/longitude"):
        positives(metric, world, 25.0)


def test_positives_within_radius_sorted_and_inclusive() -> None:
    db = np.array([[0.0, 0.0], [10.0, 0.0], [25.0, 0.0], [26.0, 0.0], [0.0, -5.0]])
    q = np.array([[0.0, 0.0], [1000.0, 1000.0]])
    pos = positives_within(db, q, 25.0)
    assert pos[0].tolist() == [0, 4, 1, 2]  # 25 m exactly is a positive; 26 m is not
    assert pos[1].tolist() == []
    with pytest.raises(ValueError):
        positives_within(db, q, 0)
