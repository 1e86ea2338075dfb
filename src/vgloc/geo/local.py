"""Local east-north-up (ENU) coordinates on the WGS84 ellipsoid.

A :class:`LocalTangentPlane` puts metric 3-D coordinates around one point of the
Earth: metres east, north and up from it. The position predictors run their
kernel density and mean shift in these coordinates, which work the same way
anywhere (across the antimeridian, at the poles), unlike UTM which needs a zone.

Why 3-D and not only (east, north): ENU is a rotation and translation of the
Earth-centred (ECEF) frame, so straight-line distances in it are exact chords
between points on the ellipsoid, whatever the origin. Near the origin (up to a
few km) a chord equals the distance along the surface to better than 1e-7
relative; far away a point simply dips below the plane (``up < 0``) instead of
folding back onto it, as a 2-D projection of the far side of the Earth would.
Points built from ENU (a weighted mean of neighbours) are taken back to the
surface along the ellipsoid normal by :meth:`LocalTangentPlane.to_latlon`.

The ellipsoid (not a sphere) is used so that local distances are the same
metres as UTM's up to the UTM scale factor (0.9996 to ~1.001), which keeps
predictions on one-zone data within millimetres of the UTM computation.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "WGS84_A",
    "WGS84_F",
    "LocalTangentPlane",
    "ecef_to_latlon",
    "latlon_to_ecef",
]

WGS84_A = 6_378_137.0  # semi-major axis, metres
WGS84_F = 1 / 298.257223563  # flattening
_E2 = WGS84_F * (2 - WGS84_F)  # first eccentricity squared
_B = WGS84_A * (1 - WGS84_F)  # semi-minor axis
_EP2 = (WGS84_A**2 - _B**2) / _B**2  # second eccentricity squared


def latlon_to_ecef(latlon: np.ndarray) -> np.ndarray:
    """Earth-centred, Earth-fixed coordinates of points on the WGS84 ellipsoid (height 0).

    Args:
        latlon: (N, 2) latitude, longitude in degrees.

    Returns:
        (N, 3) float64 metres.
    """
    ll = np.radians(np.asarray(latlon, dtype=np.float64).reshape(-1, 2))
    sin_lat, cos_lat = np.sin(ll[:, 0]), np.cos(ll[:, 0])
    n = WGS84_A / np.sqrt(1 - _E2 * sin_lat**2)  # prime vertical radius of curvature
    return np.stack(
        [n * cos_lat * np.cos(ll[:, 1]), n * cos_lat * np.sin(ll[:, 1]), n * (1 - _E2) * sin_lat], 1
    )


def ecef_to_latlon(xyz: np.ndarray) -> np.ndarray:
    """Geodetic latitude/longitude of ECEF points (their height is dropped).

    A point off the surface maps to the foot of its ellipsoid normal. Bowring's
    formula gives the latitude to well under a millimetre for heights of tens of
    km; two fixed-point steps make it exact to rounding for deeper points too.
    The iteration ``lat = atan2(z + e^2 N sin(lat), p)`` stays defined at the poles
    (p = 0), where the longitude is conventionally 0.

    Args:
        xyz: (N, 3) ECEF metres.

    Returns:
        (N, 2) latitude, longitude in degrees.
    """
    p3 = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    x, y, z = p3[:, 0], p3[:, 1], p3[:, 2]
    p = np.hypot(x, y)
    theta = np.arctan2(z * WGS84_A, p * _B)
    lat = np.arctan2(z + _EP2 * _B * np.sin(theta) ** 3, p - _E2 * WGS84_A * np.cos(theta) ** 3)
    for _ in range(2):
        n = WGS84_A / np.sqrt(1 - _E2 * np.sin(lat) ** 2)
        lat = np.arctan2(z + _E2 * n * np.sin(lat), p)
    return np.stack([np.degrees(lat), np.degrees(np.arctan2(y, x))], 1)


class LocalTangentPlane:
    """East-north-up metres around an origin on the WGS84 ellipsoid.

    Args:
        lat, lon: the origin in degrees (anywhere, poles included; at a pole
            "east" is the direction of increasing ``lon`` at the given longitude).

    Example:
        >>> plane = LocalTangentPlane(0.0, 180.0)
        >>> enu = plane.to_local(np.array([[0.0, -179.9999]]))  # 11 m east, across the antimeridian
        >>> bool(abs(enu[0, 0] - 11.13) < 0.01)
        True
    """

    def __init__(self, lat: float, lon: float) -> None:
        self.lat, self.lon = float(lat), float(lon)
        self.origin = latlon_to_ecef(np.array([[self.lat, self.lon]]))[0]
        phi, lmb = np.radians(self.lat), np.radians(self.lon)
        # Rows: unit vectors east, north, up in ECEF; orthonormal, so distances are kept.
        self.rotation = np.array(
            [
                [-np.sin(lmb), np.cos(lmb), 0.0],
                [-np.sin(phi) * np.cos(lmb), -np.sin(phi) * np.sin(lmb), np.cos(phi)],
                [np.cos(phi) * np.cos(lmb), np.cos(phi) * np.sin(lmb), np.sin(phi)],
            ]
        )

    def to_local(self, latlon: np.ndarray) -> np.ndarray:
        """ENU metres of surface points.

        Args:
            latlon: (N, 2) degrees.

        Returns:
            (N, 3) east, north, up in metres.
        """
        return np.asarray((latlon_to_ecef(latlon) - self.origin) @ self.rotation.T)

    def to_latlon(self, enu: np.ndarray) -> np.ndarray:
        """Latitude/longitude of ENU points, taken to the surface along the ellipsoid normal.

        Args:
            enu: (N, 3) metres (or (N, 2) east/north, taken as up = 0 on the plane).

        Returns:
            (N, 2) degrees.
        """
        e = np.asarray(enu, dtype=np.float64)
        e = e.reshape(-1, e.shape[-1]) if e.ndim else e.reshape(-1, 3)
        if e.shape[1] == 2:
            e = np.concatenate([e, np.zeros((len(e), 1))], 1)
        return ecef_to_latlon(e @ self.rotation + self.origin)
