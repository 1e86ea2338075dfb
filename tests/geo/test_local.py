"""East-north-up coordinates on WGS84: round trips anywhere, distances, the way back to the surface."""

import numpy as np
import pytest

from vgloc.geo import LocalTangentPlane, MetricFrame, ecef_to_latlon, haversine_m, latlon_to_ecef


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(55.7, 13.19), (-33.87, 151.2), (0.0, 180.0), (-17.0, -179.9999), (90.0, 0.0), (-90.0, 45.0)],
)
def test_round_trip_and_local_distances_anywhere(lat: float, lon: float) -> None:
    rng = np.random.default_rng(0)
    plane = LocalTangentPlane(lat, lon)
    # points within ~1 km of the origin, wrapped across the antimeridian / poles as they fall
    east, north = rng.uniform(-1000, 1000, (2, 50))
    pts = plane.to_latlon(np.stack([east, north, np.zeros(50)], 1))
    assert np.all(np.abs(pts[:, 0]) <= 90) and np.all(np.abs(pts[:, 1]) <= 180)
    enu = plane.to_local(pts)
    np.testing.assert_allclose(plane.to_latlon(enu), pts, atol=1e-10)
    # horizontal ENU is the (east, north) we started from, up to the plane's curvature (< 1 mm at 1 km)
    np.testing.assert_allclose(enu[:, :2], np.stack([east, north], 1), atol=1e-3)
    assert np.all(enu[:, 2] <= 0) and np.all(enu[:, 2] > -0.2)  # the surface falls below the plane
    # chords in ENU are surface distances (to the sphere/ellipsoid gap, < 0.7 %)
    chord = np.linalg.norm(enu[1:] - enu[:1], axis=1)
    np.testing.assert_allclose(chord, haversine_m(pts[0, 0], pts[0, 1], pts[1:, 0], pts[1:, 1]), rtol=7e-3)


def test_local_metres_match_utm_up_to_the_scale_factor() -> None:
    frame = MetricFrame(33, True)
    rng = np.random.default_rng(1)
    ll = np.stack([55.7 + rng.uniform(-0.01, 0.01, 30), 13.19 + rng.uniform(-0.01, 0.01, 30)], 1)
    enu = LocalTangentPlane(*ll[0]).to_local(ll)
    xy = frame.to_utm(ll[:, 0], ll[:, 1])
    d_local = np.linalg.norm(enu[1:] - enu[0], axis=1)
    d_utm = np.linalg.norm(xy[1:] - xy[0], axis=1)
    # The UTM point scale factor: 0.9996 on the central meridian (15 E), growing with
    # the squared distance from it (Lund is 1.8 degrees west of it).
    scale = d_utm / d_local
    expected = 0.9996 * (1 + (np.radians(15 - 13.19) * np.cos(np.radians(55.7))) ** 2 / 2)
    assert np.ptp(scale) < 2e-6 and scale.mean() == pytest.approx(expected, abs=2e-6)


def test_points_below_the_surface_go_to_the_foot_of_the_normal() -> None:
    ll = np.array([[45.0, 10.0], [89.9, -30.0], [-60.0, 179.0], [0.0, 0.0], [90.0, 0.0]])
    xyz = latlon_to_ecef(ll)
    assert np.linalg.norm(xyz[0]) == pytest.approx(6_367_489.5, abs=1.0)
    np.testing.assert_allclose(ecef_to_latlon(xyz), ll, atol=1e-12)
    # 80 km down the normal (the middle of neighbours 2000 km apart dips about that much)
    normal = np.stack(
        [
            np.cos(np.radians(ll[:, 0])) * np.cos(np.radians(ll[:, 1])),
            np.cos(np.radians(ll[:, 0])) * np.sin(np.radians(ll[:, 1])),
            np.sin(np.radians(ll[:, 0])),
        ],
        1,
    )
    np.testing.assert_allclose(ecef_to_latlon(xyz - 80_000 * normal), ll, atol=1e-11)
