"""Geometric verification and scoring of matched point pairs.

Verifiers (registered in :data:`VERIFIERS`) turn a query-candidate set of
correspondences into a score (higher is better):

- ``ransac`` (alias ``homography``): the inlier count of a homography fitted by
  OpenCV's USAC_MAGSAC with a 3 px threshold, confidence 0.95 and at most 2000
  iterations; fewer than 4 matches give 0 inliers. These are vismatch's settings,
  which To-Match-or-Not-to-Match uses to re-rank the top-100 by inlier count
  (PROTOCOLS 6.1, 6.2), including vismatch's confidence of 0.95 (not OpenCV's
  0.995). The threshold is in working-frame pixels: the resolution the features were
  detected at, as in vismatch where everything runs at 512x512.
- ``fundamental``: the inlier count of a fundamental matrix (USAC_MAGSAC or
  ``FM_RANSAC``, same threshold, confidence and iterations; < 8 matches -> 0).
  A homography only fits a plane or a rotation; F accepts any rigid 3-D scene, at
  the price of more chance inliers.
- ``rss``: Patch-NetVLAD's rapid spatial scoring (PROTOCOLS 5) on the matched
  keypoint positions; see :func:`rapid_spatial_score`.
- ``count``: the number of matches (no geometry; a baseline).

Fusing the score with the global similarity is a re-ranking decision, not a local-feature
one: see :func:`vgloc.rerank.fusion.fuse_scores`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from vgloc.local.matching import Correspondences
from vgloc.registry import Registry

__all__ = [
    "VERIFIERS",
    "CountVerifier",
    "FundamentalVerifier",
    "HomographyVerifier",
    "RapidSpatialVerifier",
    "Verification",
    "Verifier",
    "create_verifier",
    "fit_fundamental",
    "fit_homography",
    "rapid_spatial_score",
]

#: name -> verifier class.
VERIFIERS: Registry[type[Verifier]] = Registry("verifier")

#: vismatch's RANSAC settings (PROTOCOLS 6.1).
DEFAULT_THRESHOLD = 3.0
DEFAULT_CONFIDENCE = 0.95
DEFAULT_MAX_ITERS = 2000


@dataclass(frozen=True)
class Verification:
    """The outcome of verifying one query-candidate pair.

    Attributes:
        score: the ranking score (higher is better).
        num_inliers: inlier count (for ``rss`` and ``count``: the number of matches).
        inliers: (M,) bool mask over the correspondences.
        model: the fitted 3x3 matrix (H or F), or None.
    """

    score: float
    num_inliers: int
    inliers: np.ndarray
    model: np.ndarray | None = None


def _points(pts0: np.ndarray, pts1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p0 = np.ascontiguousarray(np.asarray(pts0, np.float32).reshape(-1, 2))
    p1 = np.ascontiguousarray(np.asarray(pts1, np.float32).reshape(-1, 2))
    if len(p0) != len(p1):
        raise ValueError(f"point sets differ in length: {len(p0)} vs {len(p1)}")
    return p0, p1


def _method(method: str, kind: str) -> int:
    import cv2

    table = {
        "homography": {"magsac": cv2.USAC_MAGSAC, "ransac": cv2.RANSAC},
        "fundamental": {"magsac": cv2.USAC_MAGSAC, "ransac": cv2.FM_RANSAC},
    }[kind]
    if method not in table:
        raise ValueError(f"unknown {kind} estimation method {method!r}; use one of {sorted(table)}")
    return int(table[method])


def fit_homography(
    pts0: np.ndarray,
    pts1: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    confidence: float = DEFAULT_CONFIDENCE,
    max_iters: int = DEFAULT_MAX_ITERS,
    method: str = "magsac",
) -> tuple[np.ndarray | None, np.ndarray]:
    """Robustly fit a homography ``pts1 ~ H pts0`` with OpenCV.

    Args:
        pts0: Shape (M, 2) points in image 0.
        pts1: Shape (M, 2) matching points in image 1.
        threshold: reprojection threshold in pixels (of ``pts1``'s frame).
        confidence: RANSAC confidence.
        max_iters: maximum iterations.
        method: ``"magsac"`` (``cv2.USAC_MAGSAC``, default) or ``"ransac"`` (``cv2.RANSAC``).

    Returns:
        ``(H, inliers)``: the 3x3 matrix (None when fewer than 4 matches or no model was
        found) and the (M,) bool inlier mask (all False then).
    """
    import cv2

    p0, p1 = _points(pts0, pts1)
    none = np.zeros(len(p0), bool)
    if len(p0) < 4:
        return None, none
    try:
        H, mask = cv2.findHomography(
            p0,
            p1,
            _method(method, "homography"),
            float(threshold),
            maxIters=int(max_iters),
            confidence=float(confidence),
        )
    except cv2.error:
        # OpenCV's USAC raises on degenerate samples (e.g. repeated keypoints) instead of
        # returning no model; for re-ranking that candidate simply has no verified geometry.
        return None, none
    if H is None or mask is None:
        return None, none
    return np.asarray(H, np.float64), mask.reshape(-1).astype(bool)


def fit_fundamental(
    pts0: np.ndarray,
    pts1: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    confidence: float = DEFAULT_CONFIDENCE,
    max_iters: int = DEFAULT_MAX_ITERS,
    method: str = "magsac",
) -> tuple[np.ndarray | None, np.ndarray]:
    """Robustly fit a fundamental matrix (``x1^T F x0 = 0``) with OpenCV.

    Args:
        pts0: Shape (M, 2) points in image 0.
        pts1: Shape (M, 2) matching points in image 1.
        threshold: distance to the epipolar line in pixels.
        confidence: RANSAC confidence.
        max_iters: maximum iterations.
        method: ``"magsac"`` (``cv2.USAC_MAGSAC``, default) or ``"ransac"`` (``cv2.FM_RANSAC``).

    Returns:
        ``(F, inliers)``: the 3x3 matrix (None when fewer than 8 matches or no model)
        and the (M,) bool inlier mask.
    """
    import cv2

    p0, p1 = _points(pts0, pts1)
    none = np.zeros(len(p0), bool)
    if len(p0) < 8:
        return None, none
    try:
        F, mask = cv2.findFundamentalMat(
            p0, p1, _method(method, "fundamental"), float(threshold), float(confidence), int(max_iters)
        )
    except cv2.error:
        # USAC raises "!model.empty()" when every sample is degenerate (duplicate
        # keypoints); one such pair must not abort a whole evaluation: no model, 0 inliers.
        return None, none
    if F is None or mask is None or np.asarray(F).shape != (3, 3):
        # A (9, 3) result is the 7-point solver's up to three solutions: not expected
        # from the robust methods, and treated as "no unique model" if it happens.
        return None, none
    return np.asarray(F, np.float64), mask.reshape(-1).astype(bool)


def rapid_spatial_score(
    query_xy: np.ndarray,
    database_xy: np.ndarray,
    x_max: float,
    y_max: float,
    num_query: int | None = None,
) -> float:
    """Patch-NetVLAD's rapid spatial score of matched positions (higher is better).

    With ``dx_i, dy_i`` the displacements (database − query) of the M matches,

        s = Σ_i [(x_max − |dx_i − mean dx|)² + (y_max − |dy_i − mean dy|)²]

    and the score is ``s / num_query`` (0 without matches). Patch-NetVLAD returns
    ``-s / #query patches`` and sorts ascending; the positive form sorted descending
    gives the same order. Consistent displacements (a translation) score high,
    scattered ones low. As in Patch-NetVLAD, a deviation larger than ``x_max``
    (possible only with opposite displacements) is squared, not clipped.

    Args:
        query_xy: Shape (M, 2) query positions (Patch-NetVLAD: patch-grid indices; here
            usually working-frame pixels, i.e. a grid of 1-pixel cells).
        database_xy: Shape (M, 2) matching database positions.
        x_max: the largest x index of the grid (width − 1 in pixels).
        y_max: the largest y index of the grid (height − 1 in pixels).
        num_query: the number of query patches/keypoints to normalise by (None: no
            normalisation).

    Returns:
        The score.
    """
    q, d = _points(query_xy, database_xy)
    if len(q) == 0:
        return 0.0
    disp = d.astype(np.float64) - q.astype(np.float64)
    dev = np.abs(disp - disp.mean(axis=0))
    s = float(np.sum((x_max - dev[:, 0]) ** 2 + (y_max - dev[:, 1]) ** 2))
    if num_query is not None:
        if num_query <= 0:
            raise ValueError(f"num_query must be positive, got {num_query}")
        s /= num_query
    return s


# ----------------------------------------------------------------------------- verifiers


class Verifier(ABC):
    """Scores a set of correspondences (higher is better)."""

    name: ClassVar[str] = ""
    #: fewest matches the verifier can use; fewer give a zero score.
    min_matches: ClassVar[int] = 1

    @abstractmethod
    def verify(self, corr: Correspondences) -> Verification:
        """Verify the correspondences of a query (image 0) and a candidate (image 1).

        Args:
            corr: the matched points; pixel thresholds apply in their working frames.

        Returns:
            The score, inlier count and mask.
        """

    def score_bound(self, num_matches: int) -> float | None:
        """The highest score ``verify`` can give ``num_matches`` correspondences, or None if unbounded.

        Lets a re-ranker skip verifying a candidate that cannot beat the ones already
        verified (early exit): e.g. a homography cannot have more inliers than matches.
        """
        del num_matches
        return None

    def config(self) -> dict[str, Any]:
        """The verifier's parameters (for reports)."""
        return {"name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class _RobustVerifier(Verifier):
    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        confidence: float = DEFAULT_CONFIDENCE,
        max_iters: int = DEFAULT_MAX_ITERS,
        method: str = "magsac",
    ) -> None:
        if threshold <= 0:
            raise ValueError(f"threshold must be positive, got {threshold}")
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {confidence}")
        if max_iters < 1:
            raise ValueError(f"max_iters must be >= 1, got {max_iters}")
        if method not in ("magsac", "ransac"):
            raise ValueError(f"method must be 'magsac' or 'ransac', got {method!r}")
        self.threshold = float(threshold)
        self.confidence = float(confidence)
        self.max_iters = int(max_iters)
        self.method = method

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "threshold": self.threshold,
            "confidence": self.confidence,
            "max_iters": self.max_iters,
            "method": self.method,
        }

    @abstractmethod
    def _fit(self, p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]: ...

    def score_bound(self, num_matches: int) -> float | None:
        # The score is the inlier count: at most the matches, and 0 below the minimal sample.
        return float(num_matches) if num_matches >= self.min_matches else 0.0

    def verify(self, corr: Correspondences) -> Verification:
        p0, p1 = corr.working_points()
        model, mask = self._fit(p0, p1)
        n = int(mask.sum())
        return Verification(float(n), n, mask, model)


@VERIFIERS.register("ransac", description="homography inliers, USAC_MAGSAC 3 px / 0.95 / 2000 (vismatch)")
@VERIFIERS.register("homography", description="alias of ransac")
class HomographyVerifier(_RobustVerifier):
    """Score = homography inlier count (USAC_MAGSAC, 3 px, 0.95, 2000 iterations; < 4 matches -> 0).

    Args:
        threshold: reprojection threshold in working-frame pixels.
        confidence: RANSAC confidence.
        max_iters: maximum iterations.
        method: ``"magsac"`` or ``"ransac"``.
    """

    name = "ransac"
    min_matches = 4

    def _fit(self, p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        return fit_homography(p0, p1, self.threshold, self.confidence, self.max_iters, self.method)


@VERIFIERS.register("fundamental", description="fundamental-matrix inliers, USAC_MAGSAC 3 px / 0.95 / 2000")
class FundamentalVerifier(_RobustVerifier):
    """Score = fundamental-matrix inlier count (USAC_MAGSAC by default; < 8 matches -> 0).

    Args:
        threshold: epipolar distance threshold in working-frame pixels.
        confidence: RANSAC confidence.
        max_iters: maximum iterations.
        method: ``"magsac"`` (``USAC_MAGSAC``) or ``"ransac"`` (``FM_RANSAC``).
    """

    name = "fundamental"
    min_matches = 8

    def _fit(self, p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        return fit_fundamental(p0, p1, self.threshold, self.confidence, self.max_iters, self.method)


@VERIFIERS.register("rss", description="Patch-NetVLAD rapid spatial scoring on keypoint positions")
class RapidSpatialVerifier(Verifier):
    """Score = :func:`rapid_spatial_score` of the matches, in working-frame pixels.

    ``x_max``/``y_max`` are the larger working width/height minus one, and the score is
    normalised by the query's keypoint count (Patch-NetVLAD: its number of query
    patches). Every match counts as an "inlier".
    """

    name = "rss"

    def verify(self, corr: Correspondences) -> Verification:
        p0, p1 = corr.working_points()
        x_max = max(corr.working_size0[0], corr.working_size1[0]) - 1
        y_max = max(corr.working_size0[1], corr.working_size1[1]) - 1
        score = rapid_spatial_score(p0, p1, x_max, y_max, max(1, corr.num_keypoints0))
        return Verification(score, len(corr), np.ones(len(corr), bool), None)


@VERIFIERS.register("count", description="number of matches (no geometry)")
class CountVerifier(Verifier):
    """Score = number of matches (no geometric check; a baseline)."""

    name = "count"

    def verify(self, corr: Correspondences) -> Verification:
        return Verification(float(len(corr)), len(corr), np.ones(len(corr), bool), None)

    def score_bound(self, num_matches: int) -> float | None:
        return float(num_matches)


def create_verifier(name: str, **options: Any) -> Verifier:
    """Build a registered verifier by name (``ransac``, ``homography``, ``fundamental``, ``rss``, ``count``).

    Raises:
        UnknownNameError: unknown name (the message lists close matches).
    """
    return VERIFIERS.get(name)(**options)
