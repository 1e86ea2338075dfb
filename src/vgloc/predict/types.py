"""What a prediction looks like to users: one query's position and the matches behind it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["Match", "Prediction"]


@dataclass
class Match:
    """One retrieved database image.

    ``inliers`` is the geometric-verification inlier count when the candidate was
    re-ranked with local features (``locate(..., rerank=...)``), else None.
    ``utm_east``/``utm_north`` are NaN for a world-wide database (no planar frame).
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

    ``lat``/``lon`` are NaN when the database has metric coordinates only;
    ``utm_east``/``utm_north`` are NaN when it is world-wide (no planar frame).
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
