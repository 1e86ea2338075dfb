"""Fusion with the global similarity, by hand, and the shared ordering rule."""

from __future__ import annotations

import numpy as np
import pytest

from vgloc.rerank import fuse_scores, order_by_scores
from vgloc.rerank.fusion import check_fusion


def test_fuse_scores_hand_computed() -> None:
    local = np.array([10.0, 0.0, 5.0])
    sims = np.array([0.5, 0.9, 0.7])
    # z(local) = (1, -1, 0) · sqrt(3/2); z(global) = (-1, 1, 0) · sqrt(3/2).
    z = np.sqrt(1.5)
    np.testing.assert_allclose(fuse_scores(local, sims, "zscore", 0.25), [0.5 * z, -0.5 * z, 0.0], atol=1e-12)
    np.testing.assert_allclose(fuse_scores(local, sims, "zscore", 0.5), [0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(fuse_scores(local, sims, "linear", 2.0), [11.0, 1.8, 6.4])
    # A constant local score contributes nothing.
    np.testing.assert_allclose(fuse_scores(np.ones(3), sims, "zscore", 0.0), [0, 0, 0])
    with pytest.raises(ValueError, match="fusion mode"):
        fuse_scores(local, sims, "max")


def test_order_is_a_stable_descending_sort_of_the_ranking_score() -> None:
    order, scores = order_by_scores(np.array([5.0, 7.0, 5.0, 1.0]))
    # the 5-5 tie keeps the given order (0 before 2)
    assert order.tolist() == [1, 0, 2, 3] and order.dtype == np.int64
    np.testing.assert_array_equal(scores, [5, 7, 5, 1])
    # with fusion the ranking score is the fused one, in the given order
    sims = np.array([0.1, 0.2, 0.9, 0.0])
    order, fused = order_by_scores(np.array([5.0, 7.0, 5.0, 1.0]), sims, "linear", 10.0)
    np.testing.assert_allclose(fused, [6.0, 9.0, 14.0, 1.0])
    assert order.tolist() == [2, 1, 0, 3]
    with pytest.raises(ValueError, match="needs the global similarities"):
        order_by_scores(np.ones(2), None, "zscore")


def test_check_fusion_names_the_argument() -> None:
    check_fusion(None, 7.0)  # the weight is unused without fusion
    check_fusion("linear", 7.0)  # any weight for linear
    with pytest.raises(ValueError, match="rerank_fusion must be None, 'zscore' or 'linear', got 'mean'"):
        check_fusion("mean", 0.5, what="rerank_fusion")
    with pytest.raises(ValueError, match=r"zscore fusion weight must be in \[0, 1\], got 1.5"):
        check_fusion("zscore", 1.5)
