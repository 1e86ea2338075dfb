"""Position prediction: nearest neighbour, kNN kernel density, the consensus confidence, planar and on lat/lon."""

from pathlib import Path

import numpy as np
import pytest

from vgloc.data import GeoImageSet
from vgloc.geo import LocalTangentPlane, MetricFrame, haversine_m
from vgloc.predict import (
    KDEParams,
    Prediction,
    estimate_positions,
    kernel_density,
    predict_latlon,
    predict_position,
    predict_positions,
)


def test_nearest_returns_top1_position() -> None:
    xy, conf = predict_position(np.array([0.9, 0.8]), np.array([[10.0, 0.0], [500.0, 0.0]]), "nearest")
    assert xy.tolist() == [10.0, 0.0]
    # weights 0.9^4=0.6561 and 0.8^4=0.4096; the far neighbour adds ~0 density
    assert conf == pytest.approx(0.6561 / (0.6561 + 0.4096), rel=1e-6)


def test_kde_prefers_a_consistent_cluster_over_a_lone_top1() -> None:
    # Top-1 is an outlier 1 km away; ranks 2-5 agree on a place around (0, 0).
    sims = np.array([0.80, 0.78, 0.77, 0.76, 0.75])
    xy = np.array([[1000.0, 1000.0], [0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    pred, conf = predict_position(sims, xy, "kde")
    # the mode of four equal-ish kernels at the corners of a 10 m square is near its centre
    assert np.linalg.norm(pred - np.array([5.0, 5.0])) < 1.0
    w = sims**4
    assert conf == pytest.approx(kernel_density(pred[None], xy, w, 25.0)[0] / w.sum())
    assert 0.6 < conf < 1.0
    nearest, nearest_conf = predict_position(sims, xy, "nearest")
    assert nearest.tolist() == [1000.0, 1000.0] and nearest_conf < 0.3


def test_confidence_is_one_when_all_neighbours_agree() -> None:
    xy, conf = predict_position(np.array([0.5, 0.4, 0.3]), np.zeros((3, 2)) + 7.0, "kde")
    assert xy == pytest.approx([7.0, 7.0]) and conf == pytest.approx(1.0)


def test_only_k_neighbours_are_used_and_negative_similarities_fall_back() -> None:
    sims = np.array([0.9, 0.9, 0.9])
    xy = np.array([[0.0, 0.0], [0.0, 0.0], [9999.0, 0.0]])
    _, conf = predict_position(sims, xy, "kde", KDEParams(k=2))
    assert conf == pytest.approx(1.0)
    # all similarities <= 0: equal weights, no division by zero
    pred, conf = predict_position(np.array([-0.2, -0.3]), np.array([[0.0, 0.0], [1000.0, 0.0]]), "kde")
    assert np.isfinite(pred).all() and conf == pytest.approx(0.5, abs=1e-6)


def test_vectorised_predictions_skip_empty_slots() -> None:
    db = np.array([[0.0, 0.0], [100.0, 0.0]])
    xy, conf = predict_positions(np.array([[0.9, 0.1], [0.5, 0.4]]), np.array([[1, -1], [-1, -1]]), db)
    assert xy[0].tolist() == [100.0, 0.0] and conf[0] == pytest.approx(1.0)
    assert np.isnan(xy[1]).all() and conf[1] == 0


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="sigma"):
        KDEParams(sigma_m=0)
    with pytest.raises(ValueError, match="unknown prediction method 'mean'"):
        predict_position(np.array([1.0]), np.zeros((1, 2)), "mean")


def test_prediction_json_has_no_nan() -> None:
    p = Prediction("q.jpg", float("nan"), float("nan"), 1.0, 2.0, 0.5, "kde")
    assert p.to_dict()["lat"] is None and p.to_dict()["utm_east"] == 1.0


def _city(seed: int = 0) -> tuple[GeoImageSet, np.ndarray, np.ndarray]:
    """A 2 km city at 55.7 N (UTM zone 33) and 200 queries' top-10 neighbours among 20 near ones."""
    rng = np.random.default_rng(seed)
    m, q, k = 2000, 200, 10
    ll = np.stack([55.70 + rng.uniform(-0.01, 0.01, m), 13.19 + rng.uniform(-0.015, 0.015, m)], 1)
    db = GeoImageSet.from_latlon([Path(f"{i}.jpg") for i in range(m)], ll[:, 0], ll[:, 1])
    ids = np.zeros((q, k), dtype=np.int64)
    for i in range(q):
        centre = rng.integers(m)
        near = np.argsort(np.linalg.norm(db.utm - db.utm[centre], axis=1))[:20]
        ids[i] = near[rng.permutation(20)[:k]]
    sims = np.sort(rng.uniform(0.5, 0.9, (q, k)))[:, ::-1]
    return db, sims, ids


def test_latlon_kde_agrees_with_utm_kde_on_a_city() -> None:
    db, sims, ids = _city()
    assert db.frame == MetricFrame(33, True)
    utm_xy, utm_conf = predict_positions(sims, ids, db.utm, "kde")
    latlon, conf = predict_latlon(sims, ids, db, "kde")
    gap = np.linalg.norm(db.frame.to_utm(latlon[:, 0], latlon[:, 1]) - utm_xy, axis=1)
    # UTM metres are 0.99976 true metres here, so a 25 "UTM metre" sigma is a slightly
    # different kernel: predictions move by millimetres (a few cm where the density is
    # flat and 10 mean-shift steps do not converge). Where two neighbours' densities tie
    # to 1e-5, the start of the climb can differ and an unconverged climb ends up to
    # ~1.5 m away (one query in 200 here).
    assert np.median(gap) < 0.005 and np.quantile(gap, 0.99) < 0.05
    np.testing.assert_allclose(conf, utm_conf, atol=1e-3)
    # With the sigma corrected by that scale factor, only the 1 mm stopping rule remains.
    scale = float(np.linalg.norm(db.utm[1] - db.utm[0]) / _true_metres(db, 0, 1))
    scaled_xy, _ = predict_positions(sims, ids, db.utm, "kde", KDEParams(sigma_m=25.0 * scale))
    assert np.linalg.norm(db.frame.to_utm(latlon[:, 0], latlon[:, 1]) - scaled_xy, axis=1).max() < 1e-3
    # nearest: the top-1 database image, exactly
    nearest, _ = predict_latlon(sims, ids, db)
    np.testing.assert_array_equal(nearest, db.latlon[ids[:, 0]])


def _true_metres(db: GeoImageSet, i: int, j: int) -> float:
    """True (ellipsoidal) metres between two database images, from local ENU chords."""
    enu = LocalTangentPlane(*db.latlon[i]).to_local(db.latlon[[i, j]])
    return float(np.linalg.norm(enu[1] - enu[0]))


def test_estimate_positions_keeps_utm_numbers_for_one_zone_data() -> None:
    db, sims, ids = _city(1)
    ids[3] = -1  # a query without neighbours
    est = estimate_positions(sims, ids, db, "kde", sigma_m=50.0)
    want_xy, want_conf = predict_positions(sims, ids, db.utm, "kde", KDEParams(sigma_m=50.0))
    np.testing.assert_array_equal(est.utm, want_xy)
    np.testing.assert_array_equal(est.confidence, want_conf)
    assert est.planar and est.frame == db.frame and np.isnan(est.latlon[3]).all()
    lat, lon = db.frame.to_latlon(want_xy[:3])
    np.testing.assert_allclose(est.latlon[:3], np.stack([lat, lon], 1))
    # errors: planar against queries in the same frame, NaN without a prediction
    queries = db.subset(ids[:, 0])
    err = est.errors_m(queries)
    np.testing.assert_allclose(err[:3], np.linalg.norm(want_xy[:3] - queries.utm[:3], axis=1))
    assert np.isnan(err[3])


def test_estimate_positions_on_a_world_wide_database() -> None:
    ll = np.array([[48.8566, 2.3522], [48.8567, 2.3523], [-33.8688, 151.2093], [40.7128, -74.0060]])
    db = GeoImageSet.from_latlon([Path(f"{i}.jpg") for i in range(4)], ll[:, 0], ll[:, 1])
    assert db.is_world and db.frame is None
    sims, ids = np.array([[0.9, 0.8], [0.9, 0.1]]), np.array([[0, 1], [2, 3]])
    est = estimate_positions(sims, ids, db, "nearest", sigma_m=50_000)
    assert not est.planar and np.isnan(est.utm).all()
    np.testing.assert_array_equal(est.latlon, ll[[0, 2]])
    assert est.confidence[0] == pytest.approx(1.0, abs=1e-6)
    assert est.confidence[1] == pytest.approx(0.9**4 / (0.9**4 + 0.1**4))
    queries = db.subset([1, 3])
    np.testing.assert_allclose(
        est.errors_m(queries), haversine_m(ll[[0, 2], 0], ll[[0, 2], 1], ll[[1, 3], 0], ll[[1, 3], 1])
    )
    # a metric-only database stays planar, without lat/lon
    metric = GeoImageSet(
        [Path("a"), Path("b")],
        np.array([[0.0, 0.0], [10.0, 0.0]]),
        np.full((2, 2), np.nan),
        np.full(2, np.nan),
        None,
    )
    m_est = estimate_positions(np.array([[0.9, 0.9]]), np.array([[0, 1]]), metric, "kde")
    assert m_est.planar and np.isnan(m_est.latlon).all()
    np.testing.assert_allclose(m_est.utm[0], [5.0, 0.0], atol=1e-3)
