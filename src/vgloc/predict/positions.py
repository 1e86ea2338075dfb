"""From retrieved neighbours to a coordinate with a confidence.

Two prediction modes:

``nearest`` (default)
    The position of the most similar database image (the field's Recall@1 view).

``kde``
    The im2gps kNN kernel density estimate (Hays & Efros 2008; Vo et al. 2017):
    each of the top-``k`` neighbours is an isotropic Gaussian of ``sigma_m``
    metres centred on its position, weighted by ``max(similarity, 0) ** m``;
    the densest point wins. We evaluate the density at every neighbour,
    start from the densest one and run a few mean-shift steps, which climb to
    the mode of that density (so the estimate can fall *between* database
    images that agree, instead of snapping to one of them).

Defaults (``DEFAULT_KDE``): ``k=10`` neighbours, ``m=4`` and ``sigma_m=25``. The
sigma equals the field's 25 m correctness threshold, so neighbours that would
count as the same place reinforce each other; ``m=4`` makes a neighbour of
similarity 0.9 count about 1.6 times one of 0.8. For world-scale data pass a
sigma in kilometres' worth of metres (e.g. ``sigma_m=50_000``).

``nearest`` is the default because the density only helps when similarities
separate right from wrong neighbours: with untrained descriptors (all we can run
offline) every top-k similarity is about equal and the density drifts towards
the middle of unrelated neighbours (``benchmarks/bench_locate_modes.py``).

Confidence (both modes) is the *spatial consensus* of the retrieved evidence:

    confidence = sum_i w_i * exp(-|p - x_i|^2 / (2 sigma^2)) / sum_i w_i

with ``p`` the predicted point and ``x_i``, ``w_i`` the top-``k`` neighbours'
positions and weights. It lies in (0, 1]: 1 means every retrieved neighbour
agrees with the prediction; 0.3 means about 30 % of the similarity-weighted
evidence supports it, the rest points elsewhere. It is a ranking score (higher
is more often right), not a calibrated probability.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

METHODS = ("nearest", "kde")


@dataclass(frozen=True)
class KDEParams:
    """Parameters of the kNN kernel density estimate (see module docstring)."""

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


@dataclass
class Match:
    """One retrieved database image.

    ``inliers`` is the geometric-verification inlier count when the candidate was
    re-ranked with local features (``locate(..., rerank=...)``), else None.
    """

    rank: int
    index: int
    path: str
    lat: float
    lon: float
    utm_east: float
    utm_north: float
    similarity: float
    inliers: int | None = None


@dataclass
class Prediction:
    """The predicted position of one query photo.

    ``lat``/``lon`` are NaN when the database has metric coordinates only.
    """

    query: str
    lat: float
    lon: float
    utm_east: float
    utm_north: float
    confidence: float
    method: str
    matches: list[Match] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None)."""
        return _nan_to_none(asdict(self))


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


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
        points: (P, 2) metric coordinates where the density is evaluated.
        centres: (K, 2) neighbour coordinates.
        weights: (K,) kernel weights.
        sigma_m: kernel standard deviation in metres.

    Returns:
        (P,) densities, ``sum_i w_i exp(-|p - x_i|^2 / (2 sigma^2))``.
    """
    d2 = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    return np.asarray((np.exp(-d2 / (2 * sigma_m**2)) * weights[None, :]).sum(1))


def predict_position(
    similarities: np.ndarray,
    neighbour_xy: np.ndarray,
    method: str = "nearest",
    params: KDEParams = DEFAULT_KDE,
) -> tuple[np.ndarray, float]:
    """Predict one query's metric position from its ranked neighbours.

    Args:
        similarities: (K,) similarities of the neighbours, best first.
        neighbour_xy: (K, 2) their metric coordinates (UTM metres).
        method: ``"nearest"`` or ``"kde"``.
        params: kernel parameters; ``params.k`` neighbours are used.

    Returns:
        ``(xy, confidence)``: the (2,) predicted position and the consensus in (0, 1].
    """
    if method not in METHODS:
        raise ValueError(f"unknown prediction method {method!r}; choose one of {', '.join(METHODS)}")
    sims = np.asarray(similarities, dtype=np.float64)[: params.k]
    xy = np.asarray(neighbour_xy, dtype=np.float64)[: params.k]
    valid = np.isfinite(sims) & np.all(np.isfinite(xy), axis=1)
    sims, xy = sims[valid], xy[valid]
    if len(sims) == 0:
        raise ValueError("no valid neighbour to predict a position from")
    w = neighbour_weights(sims, params.m)
    if method == "nearest":
        best = xy[0]
    else:
        density = kernel_density(xy, xy, w, params.sigma_m)
        best = xy[int(np.argmax(density))]
        for _ in range(params.mean_shift_steps):
            # Mean shift with a Gaussian kernel: a weighted mean of the neighbours,
            # each weighted by its kernel value at the current point; it climbs to the mode.
            k = w * np.exp(-((xy - best) ** 2).sum(1) / (2 * params.sigma_m**2))
            if k.sum() <= 0:
                break
            new = (k[:, None] * xy).sum(0) / k.sum()
            if np.linalg.norm(new - best) < 1e-3:
                best = new
                break
            best = new
    confidence = float(kernel_density(best[None], xy, w, params.sigma_m)[0] / w.sum())
    return np.asarray(best, dtype=np.float64), min(max(confidence, 0.0), 1.0)


def predict_positions(
    similarities: np.ndarray,
    neighbour_ids: np.ndarray,
    database_xy: np.ndarray,
    method: str = "nearest",
    params: KDEParams = DEFAULT_KDE,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised over queries: :func:`predict_position` for each row.

    Args:
        similarities: (Q, K) similarities, best first.
        neighbour_ids: (Q, K) database indices (-1 for empty slots).
        database_xy: (M, 2) database metric coordinates.
        method: ``"nearest"`` or ``"kde"``.
        params: kernel parameters.

    Returns:
        ``(xy, confidence)`` of shapes (Q, 2) and (Q,).
    """
    q = len(neighbour_ids)
    out_xy = np.full((q, 2), np.nan)
    out_conf = np.zeros(q)
    for i in range(q):
        ids = np.asarray(neighbour_ids[i])
        keep = ids >= 0
        if not keep.any():
            continue
        out_xy[i], out_conf[i] = predict_position(
            np.asarray(similarities[i])[keep], database_xy[ids[keep]], method, params
        )
    return out_xy, out_conf
