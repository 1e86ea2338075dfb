"""Geodesy: haversine on known city pairs, UTM round trips, one frame per dataset, positives."""

import numpy as np
import pytest

from vgloc.geo import GeoError, MetricFrame, haversine_m, positives_within


@pytest.mark.parametrize(
    ("a", "b", "expected_km"),
    [
        # Great-circle distances on a 6371.0088 km sphere, computed independently
        # from the spherical law of cosines; published values agree within ~0.5 %.
        ((48.8566, 2.3522), (51.5074, -0.1278), 343.56),  # Paris - London
        ((40.7128, -74.0060), (34.0522, -118.2437), 3935.8),  # New York - Los Angeles
        ((-33.8688, 151.2093), (-37.8136, 144.9631), 713.8),  # Sydney - Melbourne
    ],
)
def test_haversine_city_pairs(a: tuple, b: tuple, expected_km: float) -> None:
    d = float(haversine_m(a[0], a[1], b[0], b[1])) / 1000
    # law of cosines on the same sphere as an independent check
    p1, p2 = np.radians(a), np.radians(b)
    cos_c = np.sin(p1[0]) * np.sin(p2[0]) + np.cos(p1[0]) * np.cos(p2[0]) * np.cos(p2[1] - p1[1])
    assert d == pytest.approx(6371.0088 * np.arccos(cos_c), rel=1e-9)
    assert d == pytest.approx(expected_km, rel=2e-3)


def test_haversine_is_zero_and_symmetric() -> None:
    assert float(haversine_m(55.7, 13.19, 55.7, 13.19)) == 0.0
    assert float(haversine_m(1, 2, 3, 4)) == pytest.approx(float(haversine_m(3, 4, 1, 2)))


def test_utm_round_trip_and_metric_distances() -> None:
    rng = np.random.default_rng(0)
    lat = 55.70 + rng.uniform(-0.01, 0.01, 200)
    lon = 13.19 + rng.uniform(-0.01, 0.01, 200)
    frame = MetricFrame.for_points(lat, lon)
    assert frame == MetricFrame(zone_number=33, northern=True)
    xy = frame.to_utm(lat, lon)
    lat2, lon2 = frame.to_latlon(xy)
    assert np.abs(lat2 - lat).max() < 1e-8 and np.abs(lon2 - lon).max() < 1e-8
    # planar UTM distance agrees with the great circle to < 0.5 % at city scale (the
    # remaining gap is the ellipsoid against the sphere of haversine, ~0.3 % at 55N)
    planar = np.linalg.norm(xy[1:] - xy[:1], axis=1)
    sphere = haversine_m(lat[0], lon[0], lat[1:], lon[1:])
    assert np.allclose(planar, sphere, rtol=5e-3)


def test_one_frame_across_a_zone_boundary() -> None:
    # Points on both sides of the 12E boundary between zones 32 and 33.
    lat = np.array([55.0, 55.0])
    lon = np.array([11.999, 12.001])
    frame = MetricFrame.for_points(lat, lon)
    xy = frame.to_utm(lat, lon)
    # in one frame the two points are ~128 m apart, as on the sphere
    assert np.linalg.norm(xy[0] - xy[1]) == pytest.approx(
        float(haversine_m(55, 11.999, 55, 12.001)), rel=5e-3
    )


def test_southern_hemisphere_and_too_wide_sets() -> None:
    frame = MetricFrame.for_points(np.array([-33.87, -33.86]), np.array([151.20, 151.21]))
    assert not frame.northern
    assert frame.to_utm(np.array([-33.87]), np.array([151.2]))[0, 1] > 6_000_000  # false northing
    with pytest.raises(GeoError, match="too far for one planar metric frame"):
        MetricFrame.for_points(np.array([48.0, 48.0, 48.0]), np.array([0.0, 10.0, 20.0]))
    with pytest.raises(GeoError, match="latitude 95"):
        MetricFrame.for_points(np.array([95.0]), np.array([0.0]))


def test_positives_within_radius_sorted_and_inclusive() -> None:
    db = np.array([[0.0, 0.0], [10.0, 0.0], [25.0, 0.0], [26.0, 0.0], [0.0, -5.0]])
    q = np.array([[0.0, 0.0], [1000.0, 1000.0]])
    pos = positives_within(db, q, 25.0)
    assert pos[0].tolist() == [0, 4, 1, 2]  # 25 m exactly is a positive; 26 m is not
    assert pos[1].tolist() == []
    with pytest.raises(ValueError):
        positives_within(db, q, 0)
