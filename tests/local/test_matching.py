"""Descriptor distances, mutual nearest neighbours and the ratio test on constructed descriptors."""

from __future__ import annotations

import numpy as np
import pytest

from vgloc.local import (
    LocalFeatures,
    MNNMatcher,
    RatioMatcher,
    descriptor_distances,
    mutual_nearest_neighbours,
    ratio_test,
)


def feats(desc: np.ndarray) -> LocalFeatures:
    n = len(desc)
    kpts = np.stack([np.arange(n), np.zeros(n)], axis=1).astype(np.float32)
    z = np.zeros(n, np.float32)
    return LocalFeatures(kpts, desc, z, z, z, (100, 100), (100, 100))


def test_euclidean_distances_hand_computed() -> None:
    d0 = np.array([[0, 0], [3, 4]], np.float32)
    d1 = np.array([[0, 0], [3, 0]], np.float32)
    np.testing.assert_allclose(descriptor_distances(d0, d1), [[0, 3], [5, 4]], atol=1e-5)


def test_hamming_distances_on_packed_bits() -> None:
    d0 = np.array([[0b00000000, 0b00000000], [0b11110000, 0b00000001]], np.uint8)
    d1 = np.array([[0b00000000, 0b00000000], [0b11111111, 0b11111111], [0b11110000, 0b00000011]], np.uint8)
    # Row 0 (no bits set) vs the popcounts of d1's rows: 0, 16, 6. Row 1 (5 bits set):
    # 5, 16 - 5 = 11, and XOR with d1 row 2 leaves one bit.
    np.testing.assert_array_equal(descriptor_distances(d0, d1), [[0, 16, 6], [5, 11, 1]])


def test_binary_and_float_descriptors_do_not_mix() -> None:
    with pytest.raises(ValueError, match="binary vs float"):
        descriptor_distances(np.zeros((2, 4), np.uint8), np.zeros((2, 4), np.float32))


def test_mutual_nearest_neighbours_hand_derived() -> None:
    # Rows: nearest columns 0, 0, 2, 2; columns: nearest rows 0, 2 (col 1), 3.
    dist = np.array(
        [
            [1.0, 5.0, 9.0],
            [2.0, 6.0, 9.0],
            [8.0, 4.0, 3.5],
            [9.0, 7.0, 0.5],
        ]
    )
    # Row 0 <-> col 0 mutual; row 1 -> col 0 but col 0 -> row 0; row 2 -> col 2 but
    # col 2 -> row 3; row 3 <-> col 2 mutual. Column 1 -> row 2, row 2 -> col 2: not mutual.
    np.testing.assert_array_equal(mutual_nearest_neighbours(dist), [[0, 0], [3, 2]])
    np.testing.assert_array_equal(mutual_nearest_neighbours(dist, max_distance=0.8), [[3, 2]])
    assert mutual_nearest_neighbours(np.zeros((0, 3))).shape == (0, 2)


def test_ratio_test_hand_derived() -> None:
    dist = np.array(
        [
            [1.0, 2.0, 9.0],  # 1 <= 0.8 * 2: kept -> col 0
            [4.0, 4.5, 9.0],  # 4 > 0.8 * 4.5 = 3.6: ambiguous, dropped
            [9.0, 9.0, 3.0],  # 3 <= 7.2: kept -> col 2
            [9.0, 8.0, 2.0],  # 2 <= 6.4: kept -> col 2
        ]
    )
    np.testing.assert_array_equal(ratio_test(dist, 0.8, mutual=False), [[0, 0], [2, 2], [3, 2]])
    # Mutual: column 2's nearest row is 3 (2.0 <= 0.8 * 3.0), so (2, 2) drops. Column 0:
    # nearest row 0 at 1.0 vs 4.0: passes. Result (0, 0) and (3, 2).
    np.testing.assert_array_equal(ratio_test(dist, 0.8, mutual=True), [[0, 0], [3, 2]])


def test_ratio_test_rejects_exact_ties_and_accepts_single_candidates() -> None:
    assert ratio_test(np.array([[0.0, 0.0]]), mutual=False).shape == (0, 2)
    np.testing.assert_array_equal(ratio_test(np.array([[3.0], [1.0]]), mutual=False), [[0, 0], [1, 0]])
    with pytest.raises(ValueError, match="ratio"):
        ratio_test(np.ones((2, 2)), ratio=1.5)


def test_matchers_on_constructed_float_descriptors() -> None:
    a = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    # b is a permuted, slightly perturbed copy of a plus one distractor between a[0] and a[1].
    b = np.array([[0, 0.05, 1], [0.98, 0, 0], [0, 1, 0.02], [0.6, 0.6, 0]], np.float32)
    res = MNNMatcher().match(feats(a), feats(b))
    np.testing.assert_array_equal(res.matches, [[0, 1], [1, 2], [2, 0]])
    np.testing.assert_allclose(res.scores, -np.linalg.norm(a[[0, 1, 2]] - b[[1, 2, 0]], axis=1), atol=1e-5)
    # The ratio test keeps the three too: the distractor is ~0.72 away vs <= 0.05.
    np.testing.assert_array_equal(RatioMatcher().match(feats(a), feats(b)).matches, [[0, 1], [1, 2], [2, 0]])


def test_mnn_uses_hamming_for_binary_descriptors() -> None:
    a = np.array([[0b11110000], [0b00001111]], np.uint8)
    b = np.array([[0b00001110], [0b11110001]], np.uint8)  # 1 bit off each, swapped
    res = MNNMatcher().match(feats(a), feats(b))
    np.testing.assert_array_equal(res.matches, [[0, 1], [1, 0]])
    np.testing.assert_array_equal(res.scores, [-1, -1])


def test_squared_distances_give_the_same_matches() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 16)).astype(np.float32)
    b = np.r_[a[:200] + rng.normal(0, 0.3, (200, 16)), rng.normal(size=(150, 16))].astype(np.float32)
    d = descriptor_distances(a, b)
    d2 = descriptor_distances(a, b, squared=True)
    np.testing.assert_allclose(d**2, d2, rtol=1e-4, atol=1e-3)
    for mutual in (False, True):
        np.testing.assert_array_equal(ratio_test(d, 0.8, mutual), ratio_test(d2, 0.8, mutual, squared=True))
    np.testing.assert_array_equal(
        MNNMatcher(max_distance=3.0).match(feats(a), feats(b)).matches, mutual_nearest_neighbours(d, 3.0)
    )
    assert len(mutual_nearest_neighbours(d, 3.0)) > 100


def _reference_pairs(dist: np.ndarray, ratio: float | None, mutual: bool) -> np.ndarray:
    """Textbook version with argmin in both directions and sorted rows (slow, obvious)."""

    def nn(d: np.ndarray) -> np.ndarray:
        out = d.argmin(axis=1)
        if ratio is None:
            return out
        for r, row in enumerate(d):
            s = np.sort(row)
            d2 = s[1] if len(s) > 1 else np.inf
            if not (s[0] <= ratio * d2 and d2 > 0):
                out[r] = -1
        return out

    fwd = nn(dist)
    bwd = nn(dist.T) if mutual else None
    pairs = [(i, j) for i, j in enumerate(fwd) if j >= 0 and (bwd is None or bwd[j] == i)]
    return np.array(pairs, np.int64).reshape(-1, 2)


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (6, 1), (7, 9), (40, 30)])
def test_fast_mnn_and_ratio_match_the_textbook_version_with_ties(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    for _ in range(20):
        dist = rng.integers(0, 6, shape).astype(np.float32)  # small integers: many ties and zeros
        np.testing.assert_array_equal(mutual_nearest_neighbours(dist), _reference_pairs(dist, None, True))
        for ratio in (0.5, 0.8, 1.0):
            for mutual in (False, True):
                np.testing.assert_array_equal(
                    ratio_test(dist, ratio, mutual), _reference_pairs(dist, ratio, mutual)
                )
