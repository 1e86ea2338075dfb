"""Predict the positions of many queries from their retrieved database neighbours.

Three entry points, one per kind of caller:

* :func:`predict_positions` (planar, as vgloc always had): UTM metres in, UTM
  metres out. Needs a database with a planar frame.
* :func:`predict_latlon`: lat/lon in, lat/lon out, anywhere on Earth (the
  predictor works in local tangent planes, :mod:`vgloc.predict.predictors`).
* :func:`estimate_positions`: a database image set in, both coordinates out,
  choosing the geometry like :func:`vgloc.geo.positives` does: UTM for a
  planar database (exactly the numbers of :func:`predict_positions`), lat/lon
  for a world-wide one.

The single-query form :func:`predict_position` and :class:`KDEParams` are kept for
existing callers; the predictors themselves are registered in
:data:`vgloc.registry.PREDICTORS` (:func:`vgloc.predict.resolve_predictor`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vgloc.geo import MetricFrame, Positioned
from vgloc.geo import errors_m as _latlon_errors_m
from vgloc.predict.kernels import DEFAULT_KDE, KDEParams, kernel_density, neighbour_weights
from vgloc.predict.predictors import Predictor, resolve_predictor
from vgloc.predict.types import Match, Prediction
from vgloc.registry import PREDICTORS

__all__ = [
    "DEFAULT_KDE",
    "METHODS",
    "KDEParams",
    "Match",
    "PositionEstimates",
    "Prediction",
    "estimate_positions",
    "kernel_density",
    "neighbour_weights",
    "predict_latlon",
    "predict_position",
    "predict_positions",
]

#: The built-in prediction methods (all registered names: ``PREDICTORS.names()``).
METHODS = ("nearest", "kde")


def _by_method(method: str | Predictor, params: KDEParams) -> Predictor:
    """The predictor of the planar API: a name plus :class:`KDEParams`, or a ready predictor."""
    if isinstance(method, Predictor):
        return method
    if method not in PREDICTORS:
        raise ValueError(
            f"unknown prediction method {method!r}; choose one of {', '.join(PREDICTORS.names())}"
        )
    return resolve_predictor(method, **asdict(params))


def predict_position(
    similarities: np.ndarray,
    neighbour_xy: np.ndarray,
    method: str | Predictor = "nearest",
    params: KDEParams = DEFAULT_KDE,
) -> tuple[np.ndarray, float]:
    """Predict one query's metric position from its ranked neighbours.

    Args:
        similarities: (K,) similarities of the neighbours, best first.
        neighbour_xy: (K, 2) their metric coordinates (UTM metres).
        method: ``"nearest"``, ``"kde"`` (any registered predictor) or a :class:`Predictor`.
        params: kernel parameters; ``params.k`` neighbours are used.

    Returns:
        ``(xy, confidence)``: the (2,) predicted position and the consensus in (0, 1].
    """
    return _by_method(method, params).predict_xy(similarities, neighbour_xy)


def _per_query(
    similarities: np.ndarray,
    neighbour_ids: np.ndarray,
    coords: np.ndarray,
    predict: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, float]],
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``predict(sims, coords[ids])`` per query row; rows without neighbours give NaN and 0."""
    q = len(neighbour_ids)
    out = np.full((q, 2), np.nan)
    conf = np.zeros(q)
    for i in range(q):
        ids = np.asarray(neighbour_ids[i])
        keep = ids >= 0
        if not keep.any():
            continue
        out[i], conf[i] = predict(np.asarray(similarities[i])[keep], coords[ids[keep]])
    return out, conf


def predict_positions(
    similarities: np.ndarray,
    neighbour_ids: np.ndarray,
    database_xy: np.ndarray,
    method: str | Predictor = "nearest",
    params: KDEParams = DEFAULT_KDE,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised over queries: :func:`predict_position` for each row (planar metres).

    Args:
        similarities: (Q, K) similarities, best first.
        neighbour_ids: (Q, K) database indices (-1 for empty slots).
        database_xy: (M, 2) database metric coordinates.
        method: ``"nearest"``, ``"kde"`` or a :class:`Predictor`.
        params: kernel parameters.

    Returns:
        ``(xy, confidence)`` of shapes (Q, 2) and (Q,); NaN and 0 for queries
        without neighbours.
    """
    predictor = _by_method(method, params)
    return _per_query(
        similarities, neighbour_ids, np.asarray(database_xy, dtype=np.float64), predictor.predict_xy
    )


def _latlon_of(database: Positioned | np.ndarray) -> np.ndarray:
    latlon = np.asarray(getattr(database, "latlon", database), dtype=np.float64).reshape(-1, 2)
    if not np.all(np.isfinite(latlon)):
        raise ValueError(
            f"{getattr(database, 'name', '') or 'database'}: no latitude/longitude for every image "
            "(metric-only data); predict in its planar frame with predict_positions(..., database.utm)"
        )
    return latlon


def predict_latlon(
    similarities: np.ndarray,
    neighbour_ids: np.ndarray,
    database: Positioned | np.ndarray,
    predictor: str | Predictor = "nearest",
    **params: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Predict each query's latitude/longitude from its neighbours, anywhere on Earth.

    Args:
        similarities: (Q, K) similarities, best first.
        neighbour_ids: (Q, K) database indices (-1 for empty slots).
        database: the database images (a :class:`~vgloc.data.GeoImageSet`; its
            ``latlon`` (M, 2) is used) or an (M, 2) array of degrees.
        predictor: a registered name (``"nearest"``, ``"kde"``) or a :class:`Predictor`.
        **params: predictor parameters (``k``, ``m``, ``sigma_m``, ``mean_shift_steps``).

    Returns:
        ``(latlon, confidence)`` of shapes (Q, 2) degrees and (Q,); NaN and 0 for
        queries without neighbours.

    Raises:
        ValueError: the database has no lat/lon (metric-only data).
    """
    p = resolve_predictor(predictor, **params)
    return _per_query(similarities, neighbour_ids, _latlon_of(database), p.predict_latlon)


@dataclass
class PositionEstimates:
    """Predicted positions of Q queries, in both coordinates where they exist.

    Attributes:
        latlon: (Q, 2) degrees; NaN for queries without neighbours, or when the
            database is metric only.
        utm: (Q, 2) metres in ``frame``; NaN for queries without neighbours, or when
            the database is world-wide (no planar frame).
        confidence: (Q,) consensus in [0, 1]; 0 for queries without neighbours.
        frame: the database's UTM frame (None for metric-only or world-wide data).
        planar: True when the prediction ran in planar metres (``utm`` is the result).
    """

    latlon: np.ndarray
    utm: np.ndarray
    confidence: np.ndarray
    frame: MetricFrame | None
    planar: bool

    def errors_m(self, queries: Positioned) -> np.ndarray:
        """Per-query distance in metres from the prediction to each query's true position.

        Planar (UTM) distances when the predictions and the queries share one planar
        frame, so numbers on one-zone data are those vgloc always reported;
        great-circle distances otherwise.

        Args:
            queries: the Q query images (``utm``, ``latlon``, ``frame``), row i = query i.

        Returns:
            (Q,) float64 metres; NaN for queries without a prediction.
        """
        if len(queries.utm) != len(self.utm):
            raise ValueError(f"{len(self.utm)} predictions for {len(queries.utm)} queries")
        if self.planar and queries.frame == self.frame and np.all(np.isfinite(queries.utm)):
            return np.asarray(np.linalg.norm(self.utm - queries.utm, axis=1))
        return _latlon_errors_m(self.latlon, _latlon_of(queries))


def estimate_positions(
    similarities: np.ndarray,
    neighbour_ids: np.ndarray,
    database: Positioned,
    predictor: str | Predictor = "nearest",
    **params: Any,
) -> PositionEstimates:
    """Predict positions in the database's own geometry (the entry point for ``locate``/evaluation).

    A planar database (one UTM zone, or metric only) is predicted in UTM metres
    exactly like :func:`predict_positions`, with lat/lon from its frame; a
    world-wide database (``frame=None``, NaN ``utm``) with :func:`predict_latlon`.

    Args:
        similarities: (Q, K) similarities, best first.
        neighbour_ids: (Q, K) database indices (-1 for empty slots).
        database: the M database images (``utm`` (M, 2), ``latlon`` (M, 2), ``frame``).
        predictor: a registered name or a :class:`Predictor`.
        **params: predictor parameters.

    Returns:
        The :class:`PositionEstimates` (Q rows).
    """
    p = resolve_predictor(predictor, **params)
    q = len(neighbour_ids)
    utm_db = np.asarray(database.utm, dtype=np.float64)
    if np.all(np.isfinite(utm_db)):
        xy, conf = _per_query(similarities, neighbour_ids, utm_db, p.predict_xy)
        latlon = np.full((q, 2), np.nan)
        done = np.all(np.isfinite(xy), axis=1)
        if database.frame is not None and done.any():
            lat, lon = database.frame.to_latlon(xy[done])
            latlon[done] = np.stack([lat, lon], 1)
        return PositionEstimates(latlon=latlon, utm=xy, confidence=conf, frame=database.frame, planar=True)
    latlon, conf = _per_query(similarities, neighbour_ids, _latlon_of(database), p.predict_latlon)
    return PositionEstimates(
        latlon=latlon, utm=np.full((q, 2), np.nan), confidence=conf, frame=database.frame, planar=False
    )
