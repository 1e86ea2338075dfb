"""The geotagged image set: the one data structure every vgloc stage passes around.

A :class:`GeoImageSet` is columnar (paths plus numpy arrays) rather than a list
of per-image objects, because every consumer (positives search, FAISS metadata,
kernel density) works on whole coordinate arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vgloc.geo import MetricFrame


@dataclass
class GeoImageSet:
    """Images with their positions in one metric frame.

    Attributes:
        paths: absolute image paths, length N, in a deterministic (sorted) order.
        utm: (N, 2) float64 easting/northing in metres, in ``frame``.
        latlon: (N, 2) float64 latitude/longitude in degrees; NaN where unknown
            (a file named only ``@east@north@`` with no zone gives no lat/lon).
        heading: (N,) float64 camera heading in degrees clockwise from north; NaN where unknown.
        frame: the UTM zone of ``utm``; None when the source gave metric coordinates
            without a zone (then ``latlon`` is all NaN).
        name: a label for messages and reports (e.g. ``"test/queries_night"``).
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

    def subset(self, indices: np.ndarray | list[int], name: str | None = None) -> GeoImageSet:
        """A new set with the images at ``indices`` (in that order)."""
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

    def in_frame(self, frame: MetricFrame | None) -> GeoImageSet:
        """The same images with ``utm`` re-projected into ``frame`` (needs lat/lon).

        Queries and database must share one frame for distances to mean anything;
        this is how the loaders enforce it.
        """
        if frame == self.frame:
            return self
        if frame is None or not self.has_latlon:
            raise ValueError(
                f"{self.name or 'image set'}: cannot move UTM coordinates from frame "
                f"{self.frame} to {frame} without latitude/longitude for every image"
            )
        return GeoImageSet(
            paths=list(self.paths),
            utm=frame.to_utm(self.latlon[:, 0], self.latlon[:, 1]),
            latlon=self.latlon.copy(),
            heading=self.heading.copy(),
            frame=frame,
            name=self.name,
            extra=dict(self.extra),
        )

    @classmethod
    def from_latlon(
        cls,
        paths: list[Path],
        lat: np.ndarray,
        lon: np.ndarray,
        heading: np.ndarray | None = None,
        frame: MetricFrame | None = None,
        name: str = "",
    ) -> GeoImageSet:
        """Build a set from WGS84 coordinates, choosing one frame for all of them if none is given."""
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        frame = frame or MetricFrame.for_points(lat, lon, what=name or "image set")
        return cls(
            paths=list(paths),
            utm=frame.to_utm(lat, lon),
            latlon=np.stack([lat, lon], 1) if len(paths) else np.zeros((0, 2)),
            heading=np.full(len(paths), np.nan) if heading is None else heading,
            frame=frame,
            name=name,
        )
