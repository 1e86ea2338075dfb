"""The kernel arithmetic shared by the predictors, in any metric coordinates.

Points are rows of metric coordinates: planar UTM metres (D = 2) or local
east-north-up metres around the neighbours (D = 3, :class:`vgloc.geo.LocalTangentPlane`).
Nothing here knows which; distances are Euclidean in those coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_KDE",
    "KDEParams",
    "consensus",
    "kernel_density",
    "mean_shift_mode",
    "neighbour_weights",
]


@dataclass(frozen=True)
class KDEParams:
    """Parameters of the kNN kernel density estimate (see :mod:`vgloc.predict.predictors`).

    Attributes:
        k: neighbours used (the top-``k`` retrieved).
        m: similarity exponent of the weights ``max(s, 0) ** m``.
        sigma_m: kernel standard deviation in metres (25 for a city; tens of km,
            e.g. 50_000, for world-scale data).
        mean_shift_steps: at most this many mean-shift steps.
    """

    k: int = 10
    m: float = 4.0
    sigma_m: float = 25.0
    mean_shift_steps: int = 10

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"kde k must be >= 1, got {self.k}")
        if self.sigma_m <= 0 or not np.isfinite(self.sigma_m):
            raise ValueError(f"kde sigma must be a positive number of metres, got {self.sigma_m}")
        if self.m < 0:
            raise ValueError(f"kde exponent m must be >= 0, got {self.m}")


DEFAULT_KDE = KDEParams()

# Mean shift stops when a step moves less than this many metres.
_CONVERGED_M = 1e-3


def neighbour_weights(similarities: np.ndarray, m: float) -> np.ndarray:
    """Kernel weights ``max(s, 0) ** m``; all-equal weights when every similarity is <= 0.

    Args:
        similarities: (K,) inner products of L2-normalised descriptors.
        m: the exponent.

    Returns:
        (K,) float64 non-negative weights.
    """
    s = np.clip(np.asarray(similarities, dtype=np.float64), 0.0, None)
    w = s**m
    if not np.any(w > 0):
        # No neighbour is positively similar: fall back to treating them equally
        # rather than dividing by zero; the confidence will then show the spread.
        w = np.ones_like(s)
    return w


def kernel_density(
    points: np.ndarray, centres: np.ndarray, weights: np.ndarray, sigma_m: float
) -> np.ndarray:
    """Weighted Gaussian kernel density (unnormalised) at ``points``.

    Args:
        points: (P, D) metric coordinates where the density is evaluated.
        centres: (K, D) neighbour coordinates.
        weights: (K,) kernel weights.
        sigma_m: kernel standard deviation in metres.

    Returns:
        (P,) densities, ``sum_i w_i exp(-|p - x_i|^2 / (2 sigma^2))``.
    """
    d2 = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    return np.asarray((np.exp(-d2 / (2 * sigma_m**2)) * weights[None, :]).sum(1))


def mean_shift_mode(points: np.ndarray, weights: np.ndarray, sigma_m: float, steps: int) -> np.ndarray:
    """The mode of the weighted kernel density, climbed from its densest neighbour.

    Args:
        points: (K, D) neighbour coordinates.
        weights: (K,) kernel weights.
        sigma_m: kernel standard deviation in metres.
        steps: at most this many mean-shift steps (0: the densest neighbour itself).

    Returns:
        (D,) float64 coordinates of the mode.
    """
    density = kernel_density(points, points, weights, sigma_m)
    best = points[int(np.argmax(density))]
    for _ in range(steps):
        # Mean shift with a Gaussian kernel: a weighted mean of the neighbours,
        # each weighted by its kernel value at the current point; it climbs to the mode.
        k = weights * np.exp(-((points - best) ** 2).sum(1) / (2 * sigma_m**2))
        if k.sum() <= 0:
            break
        new = (k[:, None] * points).sum(0) / k.sum()
        if np.linalg.norm(new - best) < _CONVERGED_M:
            best = new
            break
        best = new
    return np.asarray(best, dtype=np.float64)


def consensus(point: np.ndarray, points: np.ndarray, weights: np.ndarray, sigma_m: float) -> float:
    """Share of the weighted evidence that supports ``point``, in [0, 1].

    ``sum_i w_i exp(-|p - x_i|^2 / (2 sigma^2)) / sum_i w_i``.

    Args:
        point: (D,) the predicted point.
        points: (K, D) neighbour coordinates.
        weights: (K,) kernel weights (not all zero).
        sigma_m: kernel standard deviation in metres.
    """
    c = float(
        kernel_density(np.asarray(point, dtype=np.float64)[None], points, weights, sigma_m)[0] / weights.sum()
    )
    return min(max(c, 0.0), 1.0)
