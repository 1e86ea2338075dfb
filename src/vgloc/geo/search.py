"""Which database images lie near each query: radius searches and nearest neighbours.

Two geometries, one answer per question:

* **planar** (:func:`positives_within`): a KD-tree on UTM metres, the field's
  Recall@N ground truth (sklearn's ``radius_neighbors``, as in the VG benchmark).
* **spherical** (:func:`positives_within_latlon`, :func:`nearest_latlon`): a 3-D
  KD-tree on unit vectors, searched with the chord of the radius and then checked
  with the exact haversine distance, so it works anywhere on Earth.

:func:`positives` and :func:`nearest` take two image sets and pick the geometry:
UTM when both share one planar frame (so every published Recall number stays
exactly what it was), great circles otherwise (world-wide data, or sets in
different zones).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from vgloc.geo.distances import chord_from_arc, haversine_m, unit_vectors
from vgloc.geo.frames import GeoError, MetricFrame

__all__ = [
    "Positioned",
    "nearest",
    "nearest_latlon",
    "positives",
    "positives_within",
    "positives_within_latlon",
    "same_planar_frame",
]

# Slack added to the unit-sphere chord radius before the exact haversine check, so
# that rounding in the unit vectors (~1e-16) never drops a point on the boundary.
# 1e-12 on the unit sphere is 6 micrometres on Earth; the haversine check removes
# whatever it lets in.
_CHORD_SLACK = 1e-12


class Positioned(Protocol):
    """What the set-level searches need of an image set (a :class:`~vgloc.data.GeoImageSet`).

    Attributes:
        utm: (N, 2) planar metres in ``frame``; NaN when the set has no planar frame.
        latlon: (N, 2) degrees; NaN when unknown (metric-only data).
        frame: the UTM frame of ``utm``, or None (metric-only or world-wide data).
    """

    utm: np.ndarray
    latlon: np.ndarray
    frame: MetricFrame | None


def _all_finite(a: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(a)))


def same_planar_frame(a: Positioned, b: Positioned) -> bool:
    """True when ``a.utm`` and ``b.utm`` are finite metres in one planar frame.

    Two metric-only sets (frame None, finite ``utm``) count as sharing their unknown
    zone, as they always have; a world-wide set (NaN ``utm``) shares no frame.
    """
    return a.frame == b.frame and _all_finite(a.utm) and _all_finite(b.utm)


def positives_within(database_xy: np.ndarray, query_xy: np.ndarray, radius_m: float) -> list[np.ndarray]:
    """Database indices within ``radius_m`` of each query (boundary included), nearest first.

    This is the ground truth of the field's Recall@N protocol (a KD-tree radius
    search on UTM coordinates, as sklearn's ``radius_neighbors`` in the VG benchmark).

    Args:
        database_xy: (M, 2) metric coordinates.
        query_xy: (Q, 2) metric coordinates in the same frame.
        radius_m: the threshold in metres (> 0).

    Returns:
        A list of Q int64 arrays of database indices sorted by distance.
    """
    if radius_m <= 0:
        raise ValueError(f"radius_m must be positive, got {radius_m}")
    database_xy = np.asarray(database_xy, dtype=np.float64).reshape(-1, 2)
    query_xy = np.asarray(query_xy, dtype=np.float64).reshape(-1, 2)
    if len(database_xy) == 0:
        return [np.zeros(0, dtype=np.int64) for _ in range(len(query_xy))]
    # scipy's KD-tree, imported here: sklearn's (what the VG benchmark calls) costs ~1.5 s
    # more at import, a tenth of a short evaluation, for the same neighbours.
    from scipy.spatial import cKDTree

    lists = cKDTree(database_xy).query_ball_point(query_xy, r=radius_m)
    out = []
    for row, cand in zip(query_xy, lists, strict=True):
        cand = np.asarray(cand, dtype=np.int64)
        d = np.hypot(*(database_xy[cand] - row).T)
        keep = d <= radius_m  # the boundary is included, as in radius_neighbors
        cand, d = cand[keep], d[keep]
        out.append(cand[np.lexsort((cand, d))])  # nearest first, ties by index
    return out


def _latlon_array(latlon: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
    if not _all_finite(a):
        raise GeoError(f"{what}: latitude/longitude must be finite (NaN means the position is unknown)")
    return a


def positives_within_latlon(
    database_latlon: np.ndarray, query_latlon: np.ndarray, radius_m: float
) -> list[np.ndarray]:
    """Database indices within ``radius_m`` great-circle metres of each query, nearest first.

    A 3-D KD-tree on unit vectors is searched with the chord ``2 sin(r / 2R)`` of the
    radius (plus a few micrometres of slack), then every candidate is checked with
    the exact haversine distance, so the answer equals a brute-force haversine
    search (boundary included) anywhere on Earth.

    Args:
        database_latlon: (M, 2) degrees.
        query_latlon: (Q, 2) degrees.
        radius_m: the threshold in metres (> 0); a radius beyond half the
            circumference returns every database image.

    Returns:
        A list of Q int64 arrays of database indices sorted by distance (ties by index).
    """
    if radius_m <= 0:
        raise ValueError(f"radius_m must be positive, got {radius_m}")
    db = _latlon_array(database_latlon, "database")
    q = _latlon_array(query_latlon, "queries")
    if len(db) == 0:
        return [np.zeros(0, dtype=np.int64) for _ in range(len(q))]
    from scipy.spatial import cKDTree  # imported here (see positives_within)

    tree = cKDTree(unit_vectors(db))
    chord = float(chord_from_arc(radius_m))
    candidates = tree.query_ball_point(unit_vectors(q), r=chord + _CHORD_SLACK)
    out = []
    for row, cand in zip(q, candidates, strict=True):
        cand = np.asarray(cand, dtype=np.int64)
        d = haversine_m(row[0], row[1], db[cand, 0], db[cand, 1])
        keep = d <= radius_m
        cand, d = cand[keep], d[keep]
        out.append(cand[np.lexsort((cand, d))])
    return out


def nearest_latlon(
    database_latlon: np.ndarray, query_latlon: np.ndarray, k: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` database images nearest to each query by great-circle distance.

    A 3-D KD-tree on unit vectors finds them by chord (which orders points as the
    great circle does); the returned distances are then recomputed with haversine.

    Args:
        database_latlon: (M, 2) degrees.
        query_latlon: (Q, 2) degrees.
        k: neighbours per query; at most M are returned.

    Returns:
        ``(distances_m, indices)``, both of shape (Q, min(k, M)): metres (float64)
        and database indices (int64), nearest first (ties by index).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    db = _latlon_array(database_latlon, "database")
    q = _latlon_array(query_latlon, "queries")
    k = min(k, len(db))
    if k == 0 or len(q) == 0:
        return np.zeros((len(q), k)), np.zeros((len(q), k), dtype=np.int64)
    from scipy.spatial import cKDTree

    _, idx = cKDTree(unit_vectors(db)).query(unit_vectors(q), k=k)
    idx = np.asarray(idx, dtype=np.int64).reshape(len(q), k)
    d = haversine_m(q[:, None, 0], q[:, None, 1], db[idx, 0], db[idx, 1])
    # Haversine is the reference; re-sort in case rounding swapped near-equal chords.
    order = np.stack([np.lexsort((i, di)) for i, di in zip(idx, d, strict=True)])
    return np.take_along_axis(d, order, 1), np.take_along_axis(idx, order, 1)


def _require_latlon(s: Positioned, role: str) -> None:
    if not _all_finite(s.latlon):
        raise GeoError(
            f"{role} {getattr(s, 'name', '') or ''}: no shared planar frame with the other set and no "
            "latitude/longitude for every image, so distances between them are unknown (metric-only "
            "data can only be compared with metric-only data in the same zone)"
        )


def positives(database: Positioned, queries: Positioned, radius_m: float) -> list[np.ndarray]:
    """Database indices within ``radius_m`` metres of each query, nearest first.

    The entry point of evaluation code. When both sets share one planar frame
    (:func:`same_planar_frame`: one UTM zone, or metric-only data) this is exactly
    :func:`positives_within` on ``utm``, the field's protocol, so Recall numbers are
    unchanged; otherwise (world-wide data, sets in different zones) it is
    :func:`positives_within_latlon` on ``latlon``.

    Args:
        database: M images (``utm`` (M, 2), ``latlon`` (M, 2), ``frame``).
        queries: Q images.
        radius_m: the threshold in metres (> 0).

    Returns:
        A list of Q int64 arrays of database indices sorted by distance.

    Raises:
        GeoError: no common planar frame and some image without latitude/longitude.
    """
    if same_planar_frame(database, queries):
        return positives_within(database.utm, queries.utm, radius_m)
    _require_latlon(database, "database")
    _require_latlon(queries, "queries")
    return positives_within_latlon(database.latlon, queries.latlon, radius_m)


def nearest(database: Positioned, queries: Positioned, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` database images nearest to each query, and their distances in metres.

    Planar (UTM KD-tree) when both sets share one planar frame, great circle
    (:func:`nearest_latlon`) otherwise, as in :func:`positives`.

    Args:
        database: M images.
        queries: Q images.
        k: neighbours per query; at most M are returned.

    Returns:
        ``(distances_m, indices)`` of shape (Q, min(k, M)), nearest first.
    """
    if not same_planar_frame(database, queries):
        _require_latlon(database, "database")
        _require_latlon(queries, "queries")
        return nearest_latlon(database.latlon, queries.latlon, k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, len(database.utm))
    nq = len(queries.utm)
    if k == 0 or nq == 0:
        return np.zeros((nq, k)), np.zeros((nq, k), dtype=np.int64)
    from scipy.spatial import cKDTree

    d, idx = cKDTree(np.asarray(database.utm, dtype=np.float64)).query(queries.utm, k=k)
    return np.asarray(d, dtype=np.float64).reshape(nq, k), np.asarray(idx, dtype=np.int64).reshape(nq, k)
