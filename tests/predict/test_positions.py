"""Position prediction: nearest neighbour, kNN kernel density, and the consensus confidence."""

import numpy as np
import pytest

from vgloc.predict import KDEParams, Prediction, kernel_density, predict_position, predict_positions


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
