"""Geodesy: UTM frames, great-circle distances, radius searches, local tangent planes.

Latitude/longitude are the source of truth for positions. Data that fits one UTM
zone also gets planar UTM metres in one :class:`MetricFrame` (the field's
protocol); data that fits no zone (several continents, polar photos) has none,
and every distance is then measured on the sphere.

Modules:
    frames     :class:`MetricFrame` (one UTM zone), :func:`choose_frame`, :class:`GeoError`
    distances  haversine, per-query errors, unit vectors and chords
    search     positives within a radius and nearest neighbours, planar or spherical
    local      east-north-up coordinates around a point (WGS84)

Example:
    >>> from vgloc.geo import positives
    >>> pos = positives(database, queries, 25.0)  # doctest: +SKIP
"""

from vgloc.geo.distances import (
    EARTH_RADIUS_M,
    arc_from_chord,
    chord_from_arc,
    distances_m,
    errors_m,
    haversine_m,
    unit_vectors,
)
from vgloc.geo.frames import (
    MAX_DEGREES_FROM_CENTRAL_MERIDIAN,
    UTM_MAX_LAT,
    UTM_MIN_LAT,
    GeoError,
    MetricFrame,
    central_meridian,
    choose_frame,
    validate_latlon,
    zone_of,
)
from vgloc.geo.local import LocalTangentPlane, ecef_to_latlon, latlon_to_ecef
from vgloc.geo.search import (
    Positioned,
    nearest,
    nearest_latlon,
    positives,
    positives_within,
    positives_within_latlon,
    same_planar_frame,
)

__all__ = [
    "EARTH_RADIUS_M",
    "MAX_DEGREES_FROM_CENTRAL_MERIDIAN",
    "UTM_MAX_LAT",
    "UTM_MIN_LAT",
    "GeoError",
    "LocalTangentPlane",
    "MetricFrame",
    "Positioned",
    "arc_from_chord",
    "central_meridian",
    "choose_frame",
    "chord_from_arc",
    "distances_m",
    "ecef_to_latlon",
    "errors_m",
    "haversine_m",
    "latlon_to_ecef",
    "nearest",
    "nearest_latlon",
    "positives",
    "positives_within",
    "positives_within_latlon",
    "same_planar_frame",
    "unit_vectors",
    "validate_latlon",
    "zone_of",
]
