"""The kernel arithmetic shared by the predictors, in any metric coordinates.

Points are rows of metric coordinates: planar UTM metres (D = 2) or local
east-north-up metres around the neighbours (D = 3, :class:`vgloc.geo.LocalTangentPlane`).
Nothing here knows which; distances are Euclidean in those coordinates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_KDE",
    "WORLD_KDE",
    "KDEParams",
    "consensus",
    "kde_params_for",
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
#: World-scale defaults (photos anywhere on Earth): the kNN density of Vo et al. 2017,
#: "Revisiting IM2GPS in the deep learning era" (ICCV), k = 100 neighbours, m = 10,
#: sigma = 4 km (their best single setting on Im2GPS; a larger sigma helps the coarse
#: 750/2500 km levels and hurts the 1/25 km ones).
WORLD_KDE = KDEParams(k=100, m=10.0, sigma_m=4_000.0)


def kde_params_for(params: KDEParams, *sets: Any) -> KDEParams:
    """The kernel parameters to use on these sets: :data:`WORLD_KDE` for world-wide data left at the city defaults.

    Args:
        params: the requested parameters.
        *sets: the database (and queries); a set is world-wide when its ``is_world``
            is true (:class:`vgloc.data.GeoImageSet`: lat/lon only, no UTM frame).

    Returns:
        ``params`` unchanged, unless it equals :data:`DEFAULT_KDE` (25 m is meaningless
        between continents) and some set is world-wide: then :data:`WORLD_KDE`.
    """
    if params == DEFAULT_KDE and any(bool(getattr(s, "is_world", False)) for s in sets):
        return WORLD_KDE
    return params


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


def mean_shift_mode(
    points: np.ndarray,
    weights: np.ndarray,
    sigma_m: float,
    steps: int,
    project: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """The densest mode of the weighted kernel density, climbed from every neighbour.

    Mean shift starts at each distinct neighbour (all at once), and the end point
    with the highest density wins: with neighbours in several places (a world-scale
    top-100) the density has several modes, and one climb from the densest
    neighbour can stop on a lower one. With one mode this is the single climb
    from the densest neighbour.

    Args:
        points: (K, D) neighbour coordinates.
        weights: (K,) kernel weights.
        sigma_m: kernel standard deviation in metres.
        steps: at most this many mean-shift steps (0: the densest neighbour itself).
        project: maps (S, D) points back onto the surface the mode must lie on
            (the Earth's, for 3-D local coordinates); None for planar coordinates.

    Returns:
        (D,) float64 coordinates of the mode.
    """
    pts = np.asarray(points, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    starts = np.unique(pts, axis=0)
    # The densest neighbour first, so a tie between end points keeps the classic climb.
    density = kernel_density(starts, pts, w, sigma_m)
    order = np.argsort(-density, kind="stable")
    x, density = starts[order], density[order]
    for _ in range(steps):
        # Mean shift with a Gaussian kernel: a weighted mean of the neighbours,
        # each weighted by its kernel value at the current point; it climbs to a mode.
        k = w[None, :] * np.exp(-((x[:, None, :] - pts[None, :, :]) ** 2).sum(-1) / (2 * sigma_m**2))
        total = k.sum(1)
        moving = total > 0  # a start whose kernel underflowed everywhere stays put
        new = x.copy()
        new[moving] = (k[moving] @ pts) / total[moving, None]
        if project is not None:
            new = project(new)
        moved = np.linalg.norm(new - x, axis=1)
        x = new
        if moved.max() < _CONVERGED_M:
            break
    final = kernel_density(x, pts, w, sigma_m)
    # Keep a start's own neighbour when the climb did not raise its density (underflow).
    x = np.where((final >= density)[:, None], x, starts[order])
    final = np.maximum(final, density)
    return np.asarray(x[int(np.argmax(final))], dtype=np.float64)


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
