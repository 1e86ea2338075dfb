"""The geotagged image set: the one data structure every vgloc stage passes around.

A :class:`GeoImageSet` is columnar (paths plus numpy arrays) rather than a list
of per-image objects, because every consumer (positives search, FAISS metadata,
kernel density) works on whole coordinate arrays.

A set is in one of three states, told apart by ``frame`` and which arrays are finite:

=================  ===============  ==================  ==================
state              ``frame``        ``utm``             ``latlon``
=================  ===============  ==================  ==================
one UTM zone       a MetricFrame    metres, finite      degrees, finite
metric only        None             metres, finite      NaN
world-wide         None             NaN                 degrees, finite
=================  ===============  ==================  ==================

*One UTM zone* is the field's usual case (a city). *Metric only* comes from files
named ``@east@north@`` without a zone. *World-wide* is data that fits no single
UTM zone (photos on several continents, or near the poles): it has no planar
frame at all, :attr:`GeoImageSet.is_planar` is False and distances are measured
on the sphere from ``latlon`` (:func:`vgloc.geo.positives` picks the geometry).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vgloc.geo import GeoError, MetricFrame, choose_frame


@dataclass
class GeoImageSet:
    """Images with their positions (see the module docstring for the three states).

    Attributes:
        paths: absolute image paths, length N, in a deterministic (sorted) order.
        utm: (N, 2) float64 easting/northing in metres, in ``frame``; all NaN for a
            world-wide set (no planar frame).
        latlon: (N, 2) float64 latitude/longitude in degrees; NaN where unknown
            (a file named only ``@east@north@`` with no zone gives no lat/lon).
        heading: (N,) float64 camera heading in degrees clockwise from north; NaN where unknown.
        frame: the UTM zone of ``utm``; None when the source gave metric coordinates
            without a zone (then ``latlon`` is all NaN) or when the set is world-wide
            (then ``utm`` is all NaN).
        name: a label for messages and reports (e.g. ``"test/queries_night"``).
        extra: per-image arrays (first dimension N) carried along by subsets and the index store.
    """

    paths: list[Path]
    utm: np.ndarray
    latlon: np.ndarray
    heading: np.ndarray
    frame: MetricFrame | None
    name: str = ""
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.paths)
        self.utm = np.asarray(self.utm, dtype=np.float64).reshape(n, 2)
        self.latlon = np.asarray(self.latlon, dtype=np.float64).reshape(n, 2)
        self.heading = np.asarray(self.heading, dtype=np.float64).reshape(n)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def has_latlon(self) -> bool:
        """True when every image has a latitude/longitude."""
        return bool(len(self)) and bool(np.all(np.isfinite(self.latlon)))

    @property
    def has_heading(self) -> bool:
        """True when every image has a heading."""
        return bool(len(self)) and bool(np.all(np.isfinite(self.heading)))

    @property
    def is_planar(self) -> bool:
        """True when ``utm`` holds finite metres for every image (one UTM zone, or metric only).

        False for a world-wide set: planar distances do not exist there, use
        :func:`vgloc.geo.positives` / :func:`vgloc.geo.nearest` (great circles).
        """
        return bool(np.all(np.isfinite(self.utm)))

    @property
    def is_world(self) -> bool:
        """True for a world-wide set: lat/lon for every image and no planar frame."""
        return self.frame is None and self.has_latlon and not self.is_planar

    def subset(self, indices: np.ndarray | list[int], name: str | None = None) -> GeoImageSet:
        """A new set with the images at ``indices`` (in that order), in the same state and frame."""
        idx = np.asarray(indices, dtype=np.int64)
        return GeoImageSet(
            paths=[self.paths[i] for i in idx],
            utm=self.utm[idx],
            latlon=self.latlon[idx],
            heading=self.heading[idx],
            frame=self.frame,
            name=self.name if name is None else name,
            extra={k: v[idx] for k, v in self.extra.items()},
        )

    def _with(self, utm_xy: np.ndarray, frame: MetricFrame | None) -> GeoImageSet:
        return GeoImageSet(
            paths=list(self.paths),
            utm=utm_xy,
            latlon=self.latlon.copy(),
            heading=self.heading.copy(),
            frame=frame,
            name=self.name,
            extra=dict(self.extra),
        )

    def _need_latlon(self, target: str) -> None:
        if len(self) and not self.has_latlon:
            raise ValueError(
                f"{self.name or 'image set'}: cannot move UTM coordinates from frame "
                f"{self.frame} to {target} without latitude/longitude for every image"
            )

    def in_frame(self, frame: MetricFrame | None) -> GeoImageSet:
        """The same images with ``utm`` re-projected into ``frame`` (needs lat/lon).

        Queries and database must share one frame for planar distances to mean
        anything; this is how the loaders enforce it. A world-wide set can be
        brought into a frame that fits it; ``in_frame(None)`` only accepts a set
        already without a frame (use :meth:`to_world` to drop a UTM frame).

        Raises:
            ValueError: missing lat/lon, or ``frame`` is None for a set with a frame.
            GeoError: (a ValueError) the images do not fit in ``frame``
                (:meth:`MetricFrame.fits`).
        """
        if frame == self.frame:
            return self
        if frame is None:
            raise ValueError(
                f"{self.name or 'image set'}: cannot move UTM coordinates from frame {self.frame} to no "
                "frame; use to_world() to keep only latitude/longitude"
            )
        self._need_latlon(str(frame))
        if not frame.fits(self.latlon[:, 0], self.latlon[:, 1]):
            raise GeoError(
                f"{self.name or 'image set'}: some images are too far from UTM zone {frame.zone_number} "
                "(or outside the UTM latitudes) for planar distances in it"
            )
        return self._with(frame.to_utm(self.latlon[:, 0], self.latlon[:, 1]), frame)

    def to_world(self) -> GeoImageSet:
        """The same images with no planar frame: ``frame=None``, ``utm`` all NaN (needs lat/lon)."""
        if self.is_world:
            return self
        self._need_latlon("no frame (world-wide)")
        return self._with(np.full((len(self), 2), np.nan), None)

    @classmethod
    def from_latlon(
        cls,
        paths: list[Path],
        lat: np.ndarray,
        lon: np.ndarray,
        heading: np.ndarray | None = None,
        frame: MetricFrame | None = None,
        name: str = "",
        *,
        strict: bool = True,
    ) -> GeoImageSet:
        """Build a set from WGS84 coordinates.

        Without ``frame``, one UTM frame is chosen for all of them
        (:func:`vgloc.geo.choose_frame`); when none fits (several continents, polar
        photos) the set is world-wide (``frame=None``, ``utm`` NaN).

        Args:
            paths: N image paths.
            lat, lon: (N,) degrees.
            heading: (N,) degrees, or None (unknown).
            frame: project into this frame instead of choosing one.
            name: a label for messages.
            strict: with ``frame``, refuse points that do not fit it; False treats
                ``frame`` as a preference and chooses as without it when they do not.

        Raises:
            GeoError: invalid coordinates, no coordinates, or points that do not fit
                the given ``frame``.
        """
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        what = name or "image set"
        if frame is not None and not strict and not frame.fits(lat, lon):
            frame = None
        if frame is None:
            frame = choose_frame(lat, lon, what=what)
        elif not frame.fits(lat, lon):
            raise GeoError(
                f"{what}: some coordinates are too far from UTM zone {frame.zone_number} (or outside the "
                "UTM latitudes) for planar distances in that frame; leave the frame out to let vgloc "
                "choose one, or keep the data in latitude/longitude"
            )
        n = len(paths)
        return cls(
            paths=list(paths),
            utm=frame.to_utm(lat, lon) if frame is not None else np.full((n, 2), np.nan),
            latlon=np.stack([lat, lon], 1) if n else np.zeros((0, 2)),
            heading=np.full(n, np.nan) if heading is None else heading,
            frame=frame,
            name=name,
        )


def align_frames(
    database: GeoImageSet, others: Sequence[GeoImageSet]
) -> tuple[GeoImageSet, list[GeoImageSet]]:
    """Bring a database and its query sets into one state, so that they can be compared.

    Rules (every set keeps its images and lat/lon):

    1. Sets already in the database's frame (or all metric only) are returned as they are.
    2. A database in a UTM frame: other sets with lat/lon that fit the frame are
       re-projected into it (today's behaviour for a city). If some set does not
       fit it, every set becomes world-wide (:meth:`GeoImageSet.to_world`).
    3. A world-wide database: the other sets become world-wide.
    4. Metric-only sets can only join metric-only sets (their zone is unknown).

    Args:
        database: the database images.
        others: query sets.

    Returns:
        ``(database, others)`` in one state: all in the database's UTM frame, all
        world-wide, or all metric only.

    Raises:
        ValueError: a set without lat/lon that would need them.
    """
    frame = database.frame
    if all(o.frame == frame and o.is_planar == database.is_planar for o in others):
        return database, list(others)
    metric_only = [s.name or "image set" for s in (database, *others) if len(s) and not s.has_latlon]
    if metric_only:
        raise ValueError(
            f"{', '.join(metric_only)}: metric coordinates without a UTM zone or lat/lon cannot be "
            "compared with sets in another frame; give the zone (or lat/lon) in every set"
        )
    if frame is not None and all(
        o.frame == frame or frame.fits(o.latlon[:, 0], o.latlon[:, 1]) for o in others
    ):
        return database, [o.in_frame(frame) for o in others]
    return database.to_world(), [o.to_world() for o in others]
