"""Geodesy helpers: WGS84 <-> UTM, great-circle distances, positives within a radius.

Retrieval protocols in visual place recognition measure distances in UTM metres
(a query is correct when a retrieved image lies within 25 m). A dataset that
straddles two UTM zones would mix two unrelated planar frames, so every set of
coordinates is projected into *one* :class:`MetricFrame` (the zone of the
data's centre), and a set too wide for one zone is refused with a clear error
instead of producing silently wrong distances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import utm

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean Earth radius, as used by haversine references

# Transverse Mercator stays usable (scale error < ~0.2 %) a few degrees outside a
# zone's 6-degree band; beyond this many degrees from the central meridian we refuse.
MAX_DEGREES_FROM_CENTRAL_MERIDIAN = 6.0


class GeoError(ValueError):
    """Coordinates that cannot be used as asked (out of range, too wide for one frame)."""


def validate_latlon(lat: np.ndarray | float, lon: np.ndarray | float, what: str = "coordinates") -> None:
    """Raise :class:`GeoError` naming ``what`` when any latitude/longitude is invalid.

    Args:
        lat: latitudes in degrees, any shape.
        lon: longitudes in degrees, same shape as ``lat``.
        what: a name for the error message (a file name, a column).
    """
    lat_a = np.asarray(lat, dtype=np.float64)
    lon_a = np.asarray(lon, dtype=np.float64)
    if not (np.all(np.isfinite(lat_a)) and np.all(np.isfinite(lon_a))):
        raise GeoError(f"{what}: latitude/longitude must be finite numbers")
    if np.any(np.abs(lat_a) > 90):
        raise GeoError(f"{what}: latitude {lat_a[np.abs(lat_a) > 90].ravel()[0]} outside [-90, 90]")
    if np.any(np.abs(lon_a) > 180):
        raise GeoError(f"{what}: longitude {lon_a[np.abs(lon_a) > 180].ravel()[0]} outside [-180, 180]")
    if np.any(lat_a > 84) or np.any(lat_a < -80):
        raise GeoError(
            f"{what}: latitude outside [-80, 84] degrees is outside the UTM system (polar regions)"
        )


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
        Distances in metres, the broadcast shape of the inputs (float64).
    """
    p1 = np.radians(np.asarray(lat1, dtype=np.float64))
    p2 = np.radians(np.asarray(lat2, dtype=np.float64))
    dphi = p2 - p1
    dlmb = np.radians(np.asarray(lon2, dtype=np.float64) - np.asarray(lon1, dtype=np.float64))
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def zone_of(lat: float, lon: float) -> tuple[int, str]:
    """UTM zone number and latitude band letter of one point (Norway/Svalbard exceptions included)."""
    _, _, number, letter = utm.from_latlon(float(lat), float(lon))
    return int(number), str(letter)


def central_meridian(zone_number: int) -> float:
    """Longitude in degrees of the central meridian of a UTM zone."""
    return (zone_number - 1) * 6 - 180 + 3


@dataclass(frozen=True)
class MetricFrame:
    """One UTM zone used as the planar metric frame for a whole dataset.

    Attributes:
        zone_number: UTM zone 1..60.
        northern: hemisphere of the frame (southern uses the 10,000 km false northing).
    """

    zone_number: int
    northern: bool

    @classmethod
    def for_points(cls, lat: np.ndarray, lon: np.ndarray, what: str = "dataset") -> MetricFrame:
        """Choose the frame of the points' centre and check every point fits in it.

        Args:
            lat, lon: degrees, shape (N,).
            what: a name for error messages.

        Raises:
            GeoError: when the points are too far from the chosen zone's central meridian
                for planar distances to be trusted.
        """
        lat = np.asarray(lat, dtype=np.float64).ravel()
        lon = np.asarray(lon, dtype=np.float64).ravel()
        if lat.size == 0:
            raise GeoError(f"{what}: no coordinates")
        validate_latlon(lat, lon, what)
        # The median resists outliers; longitudes are unwrapped around the first point
        # so that data on both sides of the antimeridian gets a sensible centre.
        lon_unwrapped = _unwrap_lon(lon, lon[0])
        c_lat = float(np.median(lat))
        c_lon = float(((np.median(lon_unwrapped) + 180) % 360) - 180)
        number, _ = zone_of(c_lat, c_lon)
        frame = cls(zone_number=number, northern=c_lat >= 0)
        offset = np.abs(_unwrap_lon(lon, central_meridian(number)) - central_meridian(number))
        worst = float(offset.max())
        if worst > MAX_DEGREES_FROM_CENTRAL_MERIDIAN:
            raise GeoError(
                f"{what}: coordinates span {float(np.ptp(lon_unwrapped)):.2f} degrees of longitude; the "
                f"farthest point is {worst:.2f} degrees from the central meridian of UTM zone {number}, "
                "too far for one planar metric frame. Split the data by region (UTM zone)."
            )
        return frame

    def to_utm(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Project WGS84 degrees into this frame.

        Args:
            lat, lon: degrees, shape (N,).

        Returns:
            (N, 2) float64 array of (easting, northing) in metres.
        """
        lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
        lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
        if lat.size == 0:
            return np.zeros((0, 2))
        validate_latlon(lat, lon)
        lon = ((_unwrap_lon(lon, central_meridian(self.zone_number)) + 180) % 360) - 180
        east, north, _, _ = utm.from_latlon(
            lat, lon, force_zone_number=self.zone_number, force_northern=self.northern
        )
        return np.stack([np.asarray(east, dtype=np.float64), np.asarray(north, dtype=np.float64)], 1)

    def to_latlon(self, utm_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of :meth:`to_utm`.

        Args:
            utm_xy: (N, 2) easting, northing in metres.

        Returns:
            (lat, lon) arrays of shape (N,) in degrees.
        """
        xy = np.atleast_2d(np.asarray(utm_xy, dtype=np.float64))
        if xy.shape[0] == 0:
            return np.zeros(0), np.zeros(0)
        lat, lon = utm.to_latlon(xy[:, 0], xy[:, 1], self.zone_number, northern=self.northern, strict=False)
        return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)

    def to_dict(self) -> dict[str, object]:
        return {"zone_number": self.zone_number, "northern": self.northern}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> MetricFrame:
        return cls(zone_number=int(d["zone_number"]), northern=bool(d["northern"]))  # type: ignore[call-overload]


def _unwrap_lon(lon: np.ndarray, ref: float) -> np.ndarray:
    """Shift longitudes by multiples of 360 so they lie within 180 degrees of ``ref``."""
    return ref + ((np.asarray(lon, dtype=np.float64) - ref + 180.0) % 360.0) - 180.0


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
    from sklearn.neighbors import NearestNeighbors  # imported here: sklearn costs ~2 s at import

    knn = NearestNeighbors(algorithm="kd_tree").fit(database_xy)
    _, idx = knn.radius_neighbors(query_xy, radius=radius_m, sort_results=True)
    return [np.asarray(i, dtype=np.int64) for i in idx]
