"""UTM metric frames: WGS84 <-> UTM, and the choice of one zone for a whole dataset.

Retrieval protocols in visual place recognition measure distances in UTM metres
(a query is correct when a retrieved image lies within 25 m). A dataset that
straddles two UTM zones would mix two unrelated planar frames, so every set of
coordinates that fits one zone is projected into *one* :class:`MetricFrame`
(the zone of the data's centre).

Data that fits no single zone (several continents, polar photos) has no planar
frame at all: :func:`choose_frame` answers None and callers keep such data in
latitude/longitude, where :mod:`vgloc.geo.search` measures great-circle
distances. :meth:`MetricFrame.for_points` still refuses it with a clear error,
for callers that need a planar frame (the synthetic city generator).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import utm

__all__ = [
    "MAX_DEGREES_FROM_CENTRAL_MERIDIAN",
    "UTM_MAX_LAT",
    "UTM_MIN_LAT",
    "GeoError",
    "MetricFrame",
    "central_meridian",
    "choose_frame",
    "validate_latlon",
    "zone_of",
]

# Transverse Mercator stays usable (scale error < ~0.2 %) a few degrees outside a
# zone's 6-degree band; beyond this many degrees from the central meridian we refuse.
MAX_DEGREES_FROM_CENTRAL_MERIDIAN = 6.0
#: The latitudes UTM covers (the polar caps use UPS, which vgloc does not project to).
UTM_MIN_LAT, UTM_MAX_LAT = -80.0, 84.0


class GeoError(ValueError):
    """Coordinates that cannot be used as asked (out of range, too wide for one frame)."""


def validate_latlon(
    lat: np.ndarray | float, lon: np.ndarray | float, what: str = "coordinates", *, utm: bool = True
) -> None:
    """Raise :class:`GeoError` naming ``what`` when any latitude/longitude is invalid.

    Args:
        lat: latitudes in degrees, any shape.
        lon: longitudes in degrees, same shape as ``lat``.
        what: a name for the error message (a file name, a column).
        utm: also require the UTM latitude range [-80, 84] (the default, for
            coordinates about to be projected); False accepts the whole globe,
            poles included (for data kept in latitude/longitude).
    """
    lat_a = np.asarray(lat, dtype=np.float64)
    lon_a = np.asarray(lon, dtype=np.float64)
    if not (np.all(np.isfinite(lat_a)) and np.all(np.isfinite(lon_a))):
        raise GeoError(f"{what}: latitude/longitude must be finite numbers")
    if np.any(np.abs(lat_a) > 90):
        raise GeoError(f"{what}: latitude {lat_a[np.abs(lat_a) > 90].ravel()[0]} outside [-90, 90]")
    if np.any(np.abs(lon_a) > 180):
        raise GeoError(f"{what}: longitude {lon_a[np.abs(lon_a) > 180].ravel()[0]} outside [-180, 180]")
    if utm and (np.any(lat_a > UTM_MAX_LAT) or np.any(lat_a < UTM_MIN_LAT)):
        raise GeoError(
            f"{what}: latitude outside [-80, 84] degrees is outside the UTM system (polar regions)"
        )


def zone_of(lat: float, lon: float) -> tuple[int, str]:
    """UTM zone number and latitude band letter of one point (Norway/Svalbard exceptions included)."""
    _, _, number, letter = utm.from_latlon(float(lat), float(lon))
    return int(number), str(letter)


def central_meridian(zone_number: int) -> float:
    """Longitude in degrees of the central meridian of a UTM zone."""
    return (zone_number - 1) * 6 - 180 + 3


def _unwrap_lon(lon: np.ndarray, ref: float) -> np.ndarray:
    """Shift longitudes by multiples of 360 so they lie within 180 degrees of ``ref``."""
    return ref + ((np.asarray(lon, dtype=np.float64) - ref + 180.0) % 360.0) - 180.0


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
    def _of_centre(cls, lat: np.ndarray, lon: np.ndarray) -> MetricFrame:
        """The frame of the points' centre (median latitude, median unwrapped longitude)."""
        # The median resists outliers; longitudes are unwrapped around the first point
        # so that data on both sides of the antimeridian gets a sensible centre.
        lon_unwrapped = _unwrap_lon(lon, lon[0])
        c_lat = float(np.median(lat))
        c_lon = float(((np.median(lon_unwrapped) + 180) % 360) - 180)
        number, _ = zone_of(c_lat, c_lon)
        return cls(zone_number=number, northern=c_lat >= 0)

    def degrees_from_central_meridian(self, lon: np.ndarray) -> np.ndarray:
        """Absolute longitude offsets (degrees, same shape as ``lon``) from this zone's central meridian."""
        cm = central_meridian(self.zone_number)
        return np.abs(_unwrap_lon(np.asarray(lon, dtype=np.float64), cm) - cm)

    def fits(self, lat: np.ndarray, lon: np.ndarray) -> bool:
        """True when every point can be projected into this frame with trustworthy distances.

        That is: finite, inside the UTM latitudes [-80, 84] and within
        :data:`MAX_DEGREES_FROM_CENTRAL_MERIDIAN` of the zone's central meridian
        (the test :meth:`for_points` applies). An empty set fits.

        Args:
            lat, lon: degrees, shape (N,).
        """
        lat = np.asarray(lat, dtype=np.float64).ravel()
        lon = np.asarray(lon, dtype=np.float64).ravel()
        if lat.size == 0:
            return True
        if not (np.all(np.isfinite(lat)) and np.all(np.isfinite(lon))):
            return False
        if np.any(lat < UTM_MIN_LAT) or np.any(lat > UTM_MAX_LAT):
            return False
        return bool(self.degrees_from_central_meridian(lon).max() <= MAX_DEGREES_FROM_CENTRAL_MERIDIAN)

    @classmethod
    def for_points(cls, lat: np.ndarray, lon: np.ndarray, what: str = "dataset") -> MetricFrame:
        """Choose the frame of the points' centre and check every point fits in it.

        Use :func:`choose_frame` instead where data without a planar frame can be
        kept in latitude/longitude.

        Args:
            lat, lon: degrees, shape (N,).
            what: a name for error messages.

        Raises:
            GeoError: when the points are too far from the chosen zone's central meridian
                for planar distances to be trusted, or outside the UTM latitudes.
        """
        lat = np.asarray(lat, dtype=np.float64).ravel()
        lon = np.asarray(lon, dtype=np.float64).ravel()
        if lat.size == 0:
            raise GeoError(f"{what}: no coordinates")
        validate_latlon(lat, lon, what)
        frame = cls._of_centre(lat, lon)
        worst = float(frame.degrees_from_central_meridian(lon).max())
        if worst > MAX_DEGREES_FROM_CENTRAL_MERIDIAN:
            span = float(np.ptp(_unwrap_lon(lon, lon[0])))
            raise GeoError(
                f"{what}: coordinates span {span:.2f} degrees of longitude; the "
                f"farthest point is {worst:.2f} degrees from the central meridian of UTM zone "
                f"{frame.zone_number}, too far for one planar metric frame. Split the data by "
                "region (UTM zone)."
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


def choose_frame(lat: np.ndarray, lon: np.ndarray, what: str = "dataset") -> MetricFrame | None:
    """The one UTM frame for these points, or None when no single planar frame fits them.

    For data that fits one zone the answer is exactly :meth:`MetricFrame.for_points`
    (the zone of the median point). None means "keep the data in
    latitude/longitude": points more than :data:`MAX_DEGREES_FROM_CENTRAL_MERIDIAN`
    from that zone's central meridian, or any point beyond the UTM latitudes
    (polar photos).

    Args:
        lat, lon: degrees, shape (N,), N >= 1.
        what: a name for error messages.

    Raises:
        GeoError: no coordinates, or some are not valid WGS84 (NaN, |lat| > 90, |lon| > 180).
    """
    lat = np.asarray(lat, dtype=np.float64).ravel()
    lon = np.asarray(lon, dtype=np.float64).ravel()
    if lat.size == 0:
        raise GeoError(f"{what}: no coordinates")
    validate_latlon(lat, lon, what, utm=False)
    if np.any(lat < UTM_MIN_LAT) or np.any(lat > UTM_MAX_LAT):
        return None
    frame = MetricFrame._of_centre(lat, lon)
    return frame if frame.fits(lat, lon) else None
