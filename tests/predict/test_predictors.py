"""The predictor registry and predictions anywhere on Earth (hand-derived cases)."""

from __future__ import annotations

import numpy as np
import pytest

from vgloc.geo import LocalTangentPlane, haversine_m
from vgloc.predict import (
    KDEParams,
    KDEPredictor,
    NearestPredictor,
    Predictor,
    predict_latlon,
    resolve_predictor,
)
from vgloc.registry import PREDICTORS, UnknownNameError


def test_registry_lists_nearest_and_kde_with_parameters() -> None:
    assert {"nearest", "kde"} <= set(PREDICTORS.names())
    assert PREDICTORS.get("kde") is KDEPredictor and PREDICTORS.get("nearest") is NearestPredictor
    assert "sigma_m" in PREDICTORS.metadata("kde")["parameters"]
    assert "mean_shift_steps" not in PREDICTORS.metadata("nearest")["parameters"]
    assert PREDICTORS.entry("kde").description and PREDICTORS.entry("nearest").description


def test_unknown_names_and_parameters_are_explained() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown predictor 'kdf'; did you mean: kde\?"):
        resolve_predictor("kdf")
    with pytest.raises(TypeError, match=r"takes no sigma \(it takes: k, m, sigma_m"):
        resolve_predictor("kde", sigma=50.0)
    with pytest.raises(ValueError, match="sigma"):
        resolve_predictor("kde", sigma_m=-1.0)
    with pytest.raises(TypeError, match="a name"):
        resolve_predictor(3)  # type: ignore[arg-type]


def test_resolve_builds_and_updates_predictors() -> None:
    kde = resolve_predictor("kde", sigma_m=50_000, k=5)
    assert isinstance(kde, Predictor) and kde.name == "kde"
    assert kde.params == KDEParams(k=5, sigma_m=50_000)
    assert resolve_predictor(kde) is kde
    assert resolve_predictor(kde, k=3).params == KDEParams(k=3, sigma_m=50_000)
    assert KDEPredictor.from_params(KDEParams(m=2.0)) == KDEPredictor(m=2.0)
    # one KDEParams configures either predictor (nearest ignores mean_shift_steps)
    assert resolve_predictor("nearest", mean_shift_steps=3).k == 10


def _around(lat: float, lon: float, east_north: list[tuple[float, float]]) -> np.ndarray:
    """Lat/lon of points given in metres east/north of (lat, lon) on its tangent plane."""
    plane = LocalTangentPlane(lat, lon)
    return plane.to_latlon(np.array([[e, n, 0.0] for e, n in east_north]))


def test_kde_finds_the_mode_across_the_antimeridian() -> None:
    # Four equal neighbours at the corners of a 20 m square centred on (0, 180):
    # by symmetry the mode is the centre, which no neighbour is on.
    ll = _around(0.0, 180.0, [(10, 10), (-10, 10), (-10, -10), (10, -10)])
    assert {np.sign(v) for v in ll[:, 1]} == {-1.0, 1.0}  # they straddle lon 180
    pred, conf = KDEPredictor(mean_shift_steps=100).predict_latlon(np.full(4, 0.8), ll)
    assert float(haversine_m(pred[0], pred[1], 0.0, 180.0)) < 1e-3
    # each corner is sqrt(200) m away: conf = exp(-200 / (2 * 25^2))
    assert conf == pytest.approx(np.exp(-200 / 1250), rel=1e-4)


def test_kde_finds_the_mode_at_the_pole() -> None:
    # Three equal neighbours 11 m from the North Pole, 120 degrees apart: the mode is the pole.
    ll = np.array([[89.9999, 0.0], [89.9999, 120.0], [89.9999, -120.0]])
    pred, conf = KDEPredictor(mean_shift_steps=100).predict_latlon(np.full(3, 0.7), ll)
    assert float(haversine_m(pred[0], pred[1], 90.0, 0.0)) < 1e-3
    r = float(haversine_m(89.9999, 0, 90, 0))
    assert conf == pytest.approx(np.exp(-(r**2) / 1250), rel=1e-3)


def test_world_scale_kde_ignores_a_far_top1_and_sigma_in_km_works() -> None:
    # Top-1 is in New York; ranks 2-5 form a 20 km square around the centre of Paris.
    paris = (48.8566, 2.3522)
    square = _around(*paris, [(10_000, 10_000), (-10_000, 10_000), (-10_000, -10_000), (10_000, -10_000)])
    ll = np.concatenate([[[40.7128, -74.0060]], square])
    sims = np.full(5, 0.8)
    pred, conf = resolve_predictor("kde", sigma_m=50_000).predict_latlon(sims, ll)
    # by symmetry the mode is the square's centre (to the ellipsoid's slight asymmetry)
    assert float(haversine_m(pred[0], pred[1], *paris)) < 5.0
    # New York adds nothing; each corner is sqrt(2) * 10 km from the centre
    assert conf == pytest.approx(4 * np.exp(-2e8 / (2 * 50_000**2)) / 5, rel=1e-3)
    nearest, nearest_conf = NearestPredictor(sigma_m=50_000).predict_latlon(sims, ll)
    assert nearest.tolist() == ll[0].tolist() and nearest_conf == pytest.approx(0.2, rel=1e-6)


def test_kde_with_a_wide_kernel_is_the_weighted_mean() -> None:
    # Two neighbours 20 m apart across lon 180, kernel 10 km wide: the density has
    # one mode at the similarity-weighted mean, 0.9^4 : 0.6^4 of the way.
    ll = _around(-17.0, 180.0, [(-10, 0), (10, 0)])
    w1, w2 = 0.9**4, 0.6**4
    expected = _around(-17.0, 180.0, [(-10 * (w1 - w2) / (w1 + w2), 0)])[0]
    pred, _ = KDEPredictor(sigma_m=10_000).predict_latlon(np.array([0.9, 0.6]), ll)
    assert float(haversine_m(pred[0], pred[1], expected[0], expected[1])) < 1e-3


def test_batch_latlon_prediction_skips_empty_rows_and_needs_latlon() -> None:
    db = np.array([[0.0, 179.9999], [0.0, -179.9999], [50.0, 10.0]])
    latlon, conf = predict_latlon(np.array([[0.9, 0.8], [0.5, 0.4]]), np.array([[2, 0], [-1, -1]]), db)
    assert latlon[0].tolist() == [50.0, 10.0] and 0 < conf[0] < 1
    assert np.isnan(latlon[1]).all() and conf[1] == 0
    kde, _ = predict_latlon(np.array([[0.9, 0.9]]), np.array([[0, 1]]), db, "kde", sigma_m=100.0)
    assert float(haversine_m(kde[0, 0], kde[0, 1], 0.0, 180.0)) < 1e-3
    with pytest.raises(ValueError, match="metric-only"):
        predict_latlon(np.ones((1, 1)), np.zeros((1, 1), dtype=int), np.full((1, 2), np.nan))
