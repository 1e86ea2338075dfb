"""UTM frames: round trips, one frame per dataset, and the choice of no frame for world-wide data."""

import numpy as np
import pytest

from vgloc.geo import GeoError, MetricFrame, choose_frame, haversine_m, validate_latlon


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


def test_choose_frame_is_for_points_when_one_zone_fits() -> None:
    rng = np.random.default_rng(5)
    for lat0, lon0 in [(55.7, 13.19), (-33.87, 151.2), (40.44, -79.99), (64.1, -21.9), (-17.7, 179.9)]:
        lat = lat0 + rng.uniform(-0.5, 0.5, 50)
        lon = ((lon0 + rng.uniform(-0.5, 0.5, 50)) + 180) % 360 - 180
        assert choose_frame(lat, lon) == MetricFrame.for_points(lat, lon)
        assert MetricFrame.for_points(lat, lon).fits(lat, lon)


def test_choose_frame_is_none_for_world_wide_or_polar_data() -> None:
    # Paris, Sydney and New York: no zone holds them all.
    lat, lon = np.array([48.85, -33.87, 40.71]), np.array([2.35, 151.21, -74.0])
    assert choose_frame(lat, lon) is None
    assert not MetricFrame(31, True).fits(lat, lon)
    # A polar photo next to an otherwise one-zone set: UTM does not reach it.
    assert choose_frame(np.array([-77.85, -85.0]), np.array([166.67, 166.67])) is None
    assert choose_frame(np.array([-77.85, -77.9]), np.array([166.67, 166.7])) == MetricFrame(58, False)
    with pytest.raises(GeoError, match="latitude 91"):
        choose_frame(np.array([91.0]), np.array([0.0]))
    with pytest.raises(GeoError, match="no coordinates"):
        choose_frame(np.zeros(0), np.zeros(0))


def test_validate_latlon_accepts_the_poles_when_asked() -> None:
    validate_latlon(np.array([90.0, -90.0]), np.array([0.0, 180.0]), utm=False)
    with pytest.raises(GeoError, match="polar"):
        validate_latlon(np.array([90.0]), np.array([0.0]))
    assert not MetricFrame(31, True).fits(np.array([np.nan]), np.array([2.0]))
    assert MetricFrame(31, True).fits(np.zeros(0), np.zeros(0))
