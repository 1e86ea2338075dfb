"""Great-circle distances on a spherical Earth, and the chords that index them.

Every distance here is the haversine distance on a sphere of radius
:data:`EARTH_RADIUS_M`; it is valid anywhere on Earth (across the antimeridian,
at the poles). :func:`unit_vectors` and the chord conversions let a 3-D KD-tree
answer great-circle questions: on the unit sphere the straight-line (chord)
distance ``c`` between two points and their great-circle distance ``d`` are tied
by ``c = 2 sin(d / 2R)``, which grows with ``d`` up to the antipode, so the
nearest points by chord are the nearest by great circle and a radius ``r``
becomes the chord radius ``2 sin(r / 2R)``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "EARTH_RADIUS_M",
    "arc_from_chord",
    "chord_from_arc",
    "distances_m",
    "errors_m",
    "haversine_m",
    "unit_vectors",
]

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean Earth radius, as used by haversine references


def haversine_m(
    lat1: np.ndarray | float,
    lon1: np.ndarray | float,
    lat2: np.ndarray | float,
    lon2: np.ndarray | float,
) -> np.ndarray:
    """Great-circle distance in metres on a spherical Earth (broadcasting).

    Args:
        lat1, lon1, lat2, lon2: degrees; any broadcastable shapes.

    Returns:
        Distances in metres, the broadcast shape of the inputs (float64); NaN where
        any input is NaN.
    """
    p1 = np.radians(np.asarray(lat1, dtype=np.float64))
    p2 = np.radians(np.asarray(lat2, dtype=np.float64))
    dphi = p2 - p1
    dlmb = np.radians(np.asarray(lon2, dtype=np.float64) - np.asarray(lon1, dtype=np.float64))
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def distances_m(
    lat1: np.ndarray | float,
    lon1: np.ndarray | float,
    lat2: np.ndarray | float,
    lon2: np.ndarray | float,
) -> np.ndarray:
    """Great-circle distances in metres between points given in degrees (broadcasting).

    The same as :func:`haversine_m`; this is the name evaluation code uses for
    "how far is the prediction from the truth". NaN coordinates (a query without
    a prediction) give NaN, never an exception.

    Args:
        lat1, lon1: first points, degrees, any shape.
        lat2, lon2: second points, degrees, broadcastable with the first.

    Returns:
        float64 distances in metres, the broadcast shape.
    """
    return haversine_m(lat1, lon1, lat2, lon2)


def errors_m(predicted_latlon: np.ndarray, true_latlon: np.ndarray) -> np.ndarray:
    """Per-query great-circle error in metres, row by row.

    Args:
        predicted_latlon: (Q, 2) predicted latitude/longitude in degrees (NaN rows
            for queries without a prediction).
        true_latlon: (Q, 2) true latitude/longitude in degrees.

    Returns:
        (Q,) float64 errors in metres; NaN where either row has a NaN.
    """
    p = np.asarray(predicted_latlon, dtype=np.float64).reshape(-1, 2)
    t = np.asarray(true_latlon, dtype=np.float64).reshape(-1, 2)
    if p.shape != t.shape:
        raise ValueError(f"{len(p)} predicted positions for {len(t)} true positions")
    return haversine_m(p[:, 0], p[:, 1], t[:, 0], t[:, 1])


def unit_vectors(latlon: np.ndarray) -> np.ndarray:
    """Points on the unit sphere for latitude/longitude in degrees.

    Args:
        latlon: (N, 2) latitude, longitude in degrees.

    Returns:
        (N, 3) float64 unit vectors (x towards lon 0 on the equator, z towards the
        north pole). Longitudes -180 and 180 give the same vector, as do all
        longitudes at a pole, which is what makes the antimeridian and the poles
        ordinary places for a KD-tree.
    """
    ll = np.radians(np.asarray(latlon, dtype=np.float64).reshape(-1, 2))
    cos_lat = np.cos(ll[:, 0])
    return np.stack([cos_lat * np.cos(ll[:, 1]), cos_lat * np.sin(ll[:, 1]), np.sin(ll[:, 0])], 1)


def chord_from_arc(arc_m: np.ndarray | float) -> np.ndarray:
    """Unit-sphere chord length for a great-circle distance in metres.

    ``chord = 2 sin(d / 2R)``; distances beyond half the circumference give 2 (the
    diameter), so a radius larger than the Earth means "everything".
    """
    half_angle = np.clip(np.asarray(arc_m, dtype=np.float64) / (2 * EARTH_RADIUS_M), 0.0, np.pi / 2)
    return 2.0 * np.sin(half_angle)


def arc_from_chord(chord: np.ndarray | float) -> np.ndarray:
    """Great-circle distance in metres for a unit-sphere chord length (inverse of :func:`chord_from_arc`)."""
    c = np.clip(np.asarray(chord, dtype=np.float64) / 2.0, 0.0, 1.0)
    return 2.0 * EARTH_RADIUS_M * np.arcsin(c)
