"""Great-circle distances, per-query errors, unit vectors and chords."""

import numpy as np
import pytest

from vgloc.geo import (
    EARTH_RADIUS_M,
    arc_from_chord,
    chord_from_arc,
    distances_m,
    errors_m,
    haversine_m,
    unit_vectors,
)


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


def test_errors_are_row_wise_and_nan_safe() -> None:
    pred = np.array([[48.8566, 2.3522], [np.nan, np.nan], [0.0, 179.9999]])
    true = np.array([[51.5074, -0.1278], [1.0, 1.0], [0.0, -179.9999]])
    err = errors_m(pred, true)
    assert err[0] == pytest.approx(343_560, rel=2e-3)
    assert np.isnan(err[1])
    assert err[2] == pytest.approx(2 * np.pi * EARTH_RADIUS_M * 0.0002 / 360, rel=1e-9)  # across lon 180
    np.testing.assert_allclose(distances_m(pred[:, 0], pred[:, 1], true[:, 0], true[:, 1]), err)
    with pytest.raises(ValueError, match="2 predicted positions for 3"):
        errors_m(pred[:2], true)


def test_unit_vectors_and_chords() -> None:
    u = unit_vectors(np.array([[0.0, 0.0], [0.0, 90.0], [90.0, 33.0], [0.0, 180.0], [0.0, -180.0]]))
    np.testing.assert_allclose(u[:3], np.eye(3), atol=1e-15)
    np.testing.assert_allclose(u[3], u[4], atol=1e-15)  # the antimeridian is one place
    d = np.array([0.0, 25.0, 1e6, np.pi * EARTH_RADIUS_M, 1e9])
    c = chord_from_arc(d)
    assert c[-1] == pytest.approx(2.0) and c[-2] == pytest.approx(2.0)
    np.testing.assert_allclose(arc_from_chord(c[:4]), d[:4], rtol=1e-9)
    # a chord between unit vectors gives back the haversine distance
    a, b = np.array([[12.0, 34.0]]), np.array([[-56.0, -170.0]])
    chord = np.linalg.norm(unit_vectors(a) - unit_vectors(b))
    assert arc_from_chord(chord) == pytest.approx(float(haversine_m(12, 34, -56, -170)), rel=1e-12)
