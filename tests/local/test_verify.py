"""Geometric verification on synthetic point sets with known inliers, and RSS by hand."""

from __future__ import annotations

import numpy as np
import pytest

from vgloc.local import (
    Correspondences,
    FundamentalVerifier,
    HomographyVerifier,
    RapidSpatialVerifier,
    fit_fundamental,
    fit_homography,
    rapid_spatial_score,
)

H_TRUE = np.array([[0.9, 0.05, 30.0], [-0.04, 1.1, 12.0], [1e-4, 5e-5, 1.0]])


def apply_h(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ H.T
    return p[:, :2] / p[:, 2:]


def homography_set(
    n_in: int = 60, n_out: int = 40, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n_in matches under H_TRUE (0.3 px noise) and n_out matches >= 30 px off it, shuffled."""
    rng = np.random.default_rng(seed)
    p0 = rng.uniform([0, 0], [640, 480], (n_in + n_out, 2))
    p1 = apply_h(H_TRUE, p0)
    p1[:n_in] += rng.normal(0, 0.3, (n_in, 2))
    for i in range(n_in, n_in + n_out):
        while True:
            cand = rng.uniform([0, 0], [640, 480])
            if np.linalg.norm(cand - apply_h(H_TRUE, p0[i : i + 1])[0]) > 30:
                p1[i] = cand
                break
    truth = np.r_[np.ones(n_in, bool), np.zeros(n_out, bool)]
    perm = rng.permutation(n_in + n_out)
    return p0[perm], p1[perm], truth[perm]


def corr(p0: np.ndarray, p1: np.ndarray, scale: float = 1.0, n0: int | None = None) -> Correspondences:
    size = (round(640 * scale), round(480 * scale))
    return Correspondences(
        points0=np.asarray(p0, np.float32),
        points1=np.asarray(p1, np.float32),
        scores=np.zeros(len(p0), np.float32),
        scale0=(scale, scale),
        scale1=(scale, scale),
        working_size0=size,
        working_size1=size,
        num_keypoints0=len(p0) if n0 is None else n0,
    )


def test_homography_recovers_the_known_inlier_set() -> None:
    p0, p1, truth = homography_set()
    H, mask = fit_homography(p0, p1)
    np.testing.assert_array_equal(mask, truth)
    assert H is not None
    np.testing.assert_allclose(apply_h(H, p0[truth]), apply_h(H_TRUE, p0[truth]), atol=1.0)
    ver = HomographyVerifier().verify(corr(p0, p1))
    assert ver.num_inliers == 60 and ver.score == 60.0
    np.testing.assert_array_equal(ver.inliers, truth)


def test_homography_is_deterministic_and_ransac_method_agrees() -> None:
    p0, p1, truth = homography_set(seed=3)
    assert np.array_equal(fit_homography(p0, p1)[1], fit_homography(p0, p1)[1])
    np.testing.assert_array_equal(fit_homography(p0, p1, method="ransac")[1], truth)


def test_fewer_than_four_matches_give_zero_inliers() -> None:
    p0, p1, _ = homography_set(n_in=3, n_out=0)
    H, mask = fit_homography(p0, p1)
    assert H is None and mask.shape == (3,) and not mask.any()
    ver = HomographyVerifier().verify(corr(p0, p1))
    assert ver.num_inliers == 0 and ver.score == 0.0
    assert HomographyVerifier().verify(corr(np.zeros((0, 2)), np.zeros((0, 2)))).num_inliers == 0


def test_threshold_is_in_working_frame_pixels() -> None:
    """A 4 px original-frame error is 2 working px at scale 0.5: inside the 3 px threshold."""
    p0 = np.random.default_rng(1).uniform([0, 0], [640, 480], (40, 2))
    p1 = apply_h(H_TRUE, p0)
    p1[:5, 0] += 4.0  # five matches 4 px off in the original frame
    full = HomographyVerifier().verify(corr(p0, p1, scale=1.0))
    half = HomographyVerifier().verify(corr(p0, p1, scale=0.5))
    assert full.num_inliers == 35 and not full.inliers[:5].any()
    assert half.num_inliers == 40


def fundamental_set(
    n_in: int = 60, n_out: int = 40, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random 3-D scene seen by two cameras, plus matches >= 20 px off their epipolar line."""
    rng = np.random.default_rng(seed)
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    X = np.c_[rng.uniform(-4, 4, (n_in + n_out, 2)), rng.uniform(6, 14, n_in + n_out)]  # depth varies
    a = 0.15
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    t = np.array([1.0, 0.1, 0.2])

    def project(P: np.ndarray) -> np.ndarray:
        x = P @ K.T
        return x[:, :2] / x[:, 2:]

    p0 = project(X)
    p1 = project(X @ R.T + t)
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    F = np.linalg.inv(K).T @ tx @ R @ np.linalg.inv(K)
    p1[:n_in] += rng.normal(0, 0.3, (n_in, 2))

    def line_dist(a0: np.ndarray, a1: np.ndarray) -> float:
        line = F @ np.r_[a0, 1.0]
        return abs(line @ np.r_[a1, 1.0]) / np.hypot(line[0], line[1])

    for i in range(n_in, n_in + n_out):
        while True:
            cand = rng.uniform([0, 0], [640, 480])
            if line_dist(p0[i], cand) > 20:
                p1[i] = cand
                break
    truth = np.r_[np.ones(n_in, bool), np.zeros(n_out, bool)]
    return p0, p1, truth


def test_fundamental_recovers_the_known_inlier_set() -> None:
    p0, p1, truth = fundamental_set()
    F, mask = fit_fundamental(p0, p1)
    assert F is not None
    np.testing.assert_array_equal(mask, truth)
    assert FundamentalVerifier().verify(corr(p0, p1)).num_inliers == 60
    assert FundamentalVerifier(method="ransac").verify(corr(p0, p1)).num_inliers == 60


def test_fewer_than_eight_matches_give_zero_fundamental_inliers() -> None:
    p0, p1, _ = fundamental_set(n_in=7, n_out=0)
    F, mask = fit_fundamental(p0, p1)
    assert F is None and not mask.any()
    assert FundamentalVerifier().verify(corr(p0, p1)).score == 0.0


def test_verifier_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="threshold"):
        HomographyVerifier(threshold=0)
    with pytest.raises(ValueError, match="method"):
        FundamentalVerifier(method="lmeds")


def test_rapid_spatial_score_hand_computed() -> None:
    # dx = (2, 2, 3): mean 7/3, |dev| = (1/3, 1/3, 2/3); dy = (1, 1, 1): |dev| = 0.
    # s = (4 - 1/3)² + (4 - 1/3)² + (4 - 2/3)² + 3 · 3² = (121 + 121 + 100) / 9 + 27 = 65.
    q = np.array([[0, 0], [1, 1], [2, 0]])
    d = np.array([[2, 1], [3, 2], [5, 1]])
    assert rapid_spatial_score(q, d, x_max=4, y_max=3) == pytest.approx(65.0)
    assert rapid_spatial_score(q, d, x_max=4, y_max=3, num_query=5) == pytest.approx(13.0)
    assert rapid_spatial_score(np.zeros((0, 2)), np.zeros((0, 2)), 4, 3) == 0.0


def test_rss_prefers_a_consistent_translation() -> None:
    rng = np.random.default_rng(0)
    q = rng.uniform([0, 0], [640, 480], (50, 2))
    shifted = q + np.array([40.0, -10.0])
    scattered = rng.uniform([0, 0], [640, 480], (50, 2))
    v = RapidSpatialVerifier()
    good, bad = v.verify(corr(q, shifted, n0=200)), v.verify(corr(q, scattered, n0=200))
    # A pure translation has zero deviation: s = 50 · (639² + 479²), over 200 query keypoints.
    assert good.score == pytest.approx(50 * (639**2 + 479**2) / 200)
    assert good.score > bad.score and good.num_inliers == 50


def test_degenerate_correspondences_give_no_model_instead_of_an_opencv_error() -> None:
    # Real SIFT ratio-test matches from a synthetic-city pair (duplicate keypoints):
    # OpenCV's USAC raises "!model.empty()" on them instead of returning no model.
    import cv2

    from vgloc.local.verify import fit_fundamental

    p0 = np.array(
        [[111.69, 114.31], [135.61, 113.15], [119.88, 112.21], [125.57, 113.37], [244.98, 136.67],
         [244.98, 136.67], [153.98, 75.98], [153.98, 75.98], [134.89, 116.73]], np.float32
    )  # fmt: skip
    p1 = np.array(
        [[126.28, 130.26], [154.06, 129.19], [135.70, 128.31], [142.24, 129.30], [232.49, 115.96],
         [232.49, 115.96], [103.65, 28.06], [103.65, 28.06], [149.66, 133.79]], np.float32
    )  # fmt: skip
    try:
        cv2.findFundamentalMat(p0, p1, cv2.USAC_MAGSAC, 3.0, 0.95, 2000)
        raw_raises = False
    except cv2.error:
        raw_raises = True
    model, inliers = fit_fundamental(p0, p1)
    assert inliers.dtype == bool and inliers.shape == (9,)
    if raw_raises:
        assert model is None and not inliers.any()
