"""Nearest-neighbour matching of descriptors: distances, mutual NN, Lowe's ratio test.

- Float descriptors are compared with the Euclidean distance, binary (packed uint8:
  ORB, AKAZE) with the Hamming distance.
- ``mnn``: mutual nearest neighbours (optionally under a distance threshold).
- ``ratio``: Lowe's ratio test at 0.8 with the mutual check, as hloc's ``NN-ratio``
  configuration (PROTOCOLS 6.3): a pair is kept when, in both directions, the
  nearest distance is at most 0.8 times the second nearest.

Pure numpy (one BLAS GEMM per pair), no weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vgloc.local.features import LocalFeatures
from vgloc.local.matching.base import MATCHERS, MatchResult, SparseMatcher

__all__ = [
    "MNNMatcher",
    "RatioMatcher",
    "descriptor_distances",
    "mutual_nearest_neighbours",
    "ratio_test",
]


def descriptor_distances(desc0: np.ndarray, desc1: np.ndarray, *, squared: bool = False) -> np.ndarray:
    """All pairwise descriptor distances: Euclidean for float, Hamming for packed uint8.

    Args:
        desc0: Shape (N0, D), float or uint8 (packed bits).
        desc1: Shape (N1, D), same dtype kind as ``desc0``.
        squared: return squared Euclidean distances (cheaper; same nearest neighbours).
            Ignored for Hamming distances.

    Returns:
        Distances. Shape: (N0, N1) float32 (Hamming distances are exact integers).
    """
    d0, d1 = np.asarray(desc0), np.asarray(desc1)
    if d0.ndim != 2 or d1.ndim != 2 or d0.shape[1] != d1.shape[1]:
        raise ValueError(f"descriptors must be (N0, D) and (N1, D), got {d0.shape} and {d1.shape}")
    binary0, binary1 = d0.dtype == np.uint8, d1.dtype == np.uint8
    if binary0 != binary1:
        raise ValueError(f"cannot compare {d0.dtype} with {d1.dtype} descriptors (binary vs float)")
    if len(d0) == 0 or len(d1) == 0:
        return np.zeros((len(d0), len(d1)), np.float32)
    # The full matrix serves both directions of the mutual check with one GEMM. OpenCV's
    # batchDistance only returns the top-K per row from Python, and BFMatcher returns
    # per-pair Python objects, so the distances are computed here with BLAS instead.
    if binary0:
        # Hamming distance = popcount(a) + popcount(b) - 2 * <a, b> over the unpacked bits;
        # exact in float32 (integers below 2**24).
        a = np.unpackbits(d0, axis=1).astype(np.float32)
        b = np.unpackbits(d1, axis=1).astype(np.float32)
    else:
        a, b = d0.astype(np.float32, copy=False), d1.astype(np.float32, copy=False)
    # ||a||² + ||b||² - 2 a·b, in place: the temporaries would cost as much as the GEMM.
    dist = a @ b.T
    dist *= -2.0
    dist += (a * a).sum(1)[:, None]
    dist += (b * b).sum(1)[None, :]
    np.maximum(dist, 0.0, out=dist)
    if not binary0 and not squared:
        np.sqrt(dist, out=dist)
    return dist


def mutual_nearest_neighbours(distances: np.ndarray, max_distance: float | None = None) -> np.ndarray:
    """Index pairs that are each other's nearest neighbour.

    Ties are broken towards the lower index (``argmin``).

    Args:
        distances: (N0, N1) pairwise distances (squared distances give the same pairs;
            then pass a squared ``max_distance``).
        max_distance: also require ``distance <= max_distance``.

    Returns:
        Pairs ``(i, j)`` sorted by ``i``. Shape: (M, 2) int64.
    """
    dist = np.asarray(distances)
    if dist.ndim != 2:
        raise ValueError(f"distances must be (N0, N1), got shape {dist.shape}")
    if dist.size == 0:
        return np.zeros((0, 2), np.int64)
    i = np.arange(dist.shape[0])
    nn01 = dist.argmin(axis=1)
    keep = _is_column_argmin(dist, i, nn01)
    if max_distance is not None:
        keep &= dist[i, nn01] <= max_distance
    return np.stack([i[keep], nn01[keep]], axis=1).astype(np.int64)


def _is_column_argmin(dist: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Whether each ``rows[k]`` is ``dist[:, cols[k]].argmin()``, without argmin along axis 0.

    numpy's argmin along axis 0 is ~50x slower than ``min`` along it (a strided loop), and
    the mutual check needs it for every column. A row is the argmin when it attains the
    column minimum and, for the rare columns where the minimum is tied, is the first such
    row (argmin's rule); only those tied columns get a real argmin.
    """
    col_min = dist.min(axis=0)
    ok = dist[rows, cols] == col_min[cols]
    tied = (dist == col_min[None, :]).sum(axis=0) > 1
    if tied.any():
        first = np.full(dist.shape[1], -1)
        first[tied] = dist[:, tied].argmin(axis=0)
        ok &= ~tied[cols] | (first[cols] == rows)
    return ok


def _two_smallest(dist: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """The smallest and second smallest value along ``axis`` (equal when the minimum is tied)."""
    d1 = dist.min(axis=axis)
    at_min = dist == np.expand_dims(d1, axis)
    d2 = np.where(at_min, np.inf, dist).min(axis=axis)
    return d1, np.where(at_min.sum(axis=axis) > 1, d1, d2)


def _ratio_pass(d1: np.ndarray, d2: np.ndarray, ratio: float) -> np.ndarray:
    # d2 == 0 means two identical best candidates: ambiguous, rejected. With a single
    # candidate d2 is inf: nothing to be ambiguous with, accepted.
    return (d1 <= ratio * d2) & (d2 > 0)


def ratio_test(
    distances: np.ndarray, ratio: float = 0.8, mutual: bool = True, *, squared: bool = False
) -> np.ndarray:
    """Lowe's ratio test: keep a nearest neighbour clearly closer than the second one.

    A row's nearest neighbour ``j`` is kept when ``d1 <= ratio * d2`` (``d1``, ``d2``
    the two smallest distances of the row; a row with one candidate always passes,
    ``d1 == d2 == 0`` never does). With ``mutual``, the test must also pass in the
    other direction and pick the same pair (hloc's NN-ratio).

    Args:
        distances: (N0, N1) pairwise distances.
        ratio: the threshold in (0, 1]; 0.8 is Lowe's and hloc's value.
        mutual: require the pair to pass in both directions.
        squared: ``distances`` are squared (then ``ratio²`` is applied, as hloc does).

    Returns:
        Pairs ``(i, j)`` sorted by ``i``. Shape: (M, 2) int64.
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    dist = np.asarray(distances)
    if dist.ndim != 2:
        raise ValueError(f"distances must be (N0, N1), got shape {dist.shape}")
    if dist.size == 0:
        return np.zeros((0, 2), np.int64)
    r = ratio * ratio if squared else ratio
    i = np.arange(dist.shape[0])
    fwd = dist.argmin(axis=1)
    keep = _ratio_pass(*_two_smallest(dist, axis=1), r)
    if mutual:
        keep &= _ratio_pass(*_two_smallest(dist, axis=0), r)[fwd] & _is_column_argmin(dist, i, fwd)
    return np.stack([i[keep], fwd[keep]], axis=1).astype(np.int64)


# ----------------------------------------------------------------------------- matchers


def _nn_result(f0: LocalFeatures, f1: LocalFeatures, pairs_fn: Any) -> MatchResult:
    """Run ``pairs_fn(distances, squared)`` on the descriptors; scores are -distance."""
    # Float descriptors are matched on squared distances (same neighbours, no sqrt of
    # the whole matrix); only the kept pairs' distances are rooted for the scores.
    squared = not (f0.binary or f1.binary)
    dist = descriptor_distances(f0.descriptors, f1.descriptors, squared=squared)
    pairs = pairs_fn(dist, squared)
    d = dist[pairs[:, 0], pairs[:, 1]].astype(np.float32)
    return MatchResult(pairs, -(np.sqrt(d) if squared else d))


@MATCHERS.register("mnn", dense=False, learned=False, description="mutual nearest neighbours (L2 / Hamming)")
class MNNMatcher(SparseMatcher):
    """Mutual nearest neighbour matching (Euclidean or Hamming by descriptor type).

    Args:
        max_distance: optional distance threshold (none by default; hloc's NN-superpoint
            uses 0.7 on unit descriptors).
    """

    name = "mnn"

    def __init__(self, max_distance: float | None = None) -> None:
        self.max_distance = max_distance

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "max_distance": self.max_distance}

    def match(self, f0: LocalFeatures, f1: LocalFeatures) -> MatchResult:
        def pairs(dist: np.ndarray, squared: bool) -> np.ndarray:
            limit = self.max_distance
            if limit is not None and squared:
                limit = limit * limit
            return mutual_nearest_neighbours(dist, limit)

        return _nn_result(f0, f1, pairs)


@MATCHERS.register("ratio", dense=False, learned=False, description="Lowe's ratio test 0.8 + mutual check")
class RatioMatcher(SparseMatcher):
    """Lowe's ratio test (default 0.8, with the mutual check: hloc's NN-ratio).

    Args:
        ratio: the ratio threshold.
        mutual: also require the pair to pass in the other direction.
    """

    name = "ratio"

    def __init__(self, ratio: float = 0.8, mutual: bool = True) -> None:
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {ratio}")
        self.ratio = float(ratio)
        self.mutual = bool(mutual)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "ratio": self.ratio, "mutual": self.mutual}

    def match(self, f0: LocalFeatures, f1: LocalFeatures) -> MatchResult:
        return _nn_result(f0, f1, lambda d, sq: ratio_test(d, self.ratio, self.mutual, squared=sq))
