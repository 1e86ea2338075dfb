"""Geo-cell partitions of the Earth for classification-based geolocation.

A partition cuts the Earth into latitude/longitude rectangles ("cells") so that a
network can classify a photo into one of them (PlaNet, Weyand et al. 2016; the
adaptive scheme vgloc's study follows, Vo et al. 2017, "Revisiting IM2GPS in the
deep learning era"). Cells are made by **adaptive splitting**: start from one
world cell and, while a cell holds at least ``t_img`` training images and its area
is at least ``t_area_km2``, cut it in two across its longer side (east-west width
measured at its middle latitude, north-south height), evenly or at a random point
in the middle half. Dense regions get small cells, empty oceans stay large.

Cells left with fewer than ``min_images`` training images are dropped (they are
never a class; a point there looks up as -1), as GeoEstimation does with its
``img_min`` (PROTOCOLS.md section 8). Several granularities (coarse to fine, one
``t_img`` each) are built at once by :func:`build_partitions`.

Each cell records its rectangle, its centre and the mean position of its training
images (the two candidate predictions of a classifier). :meth:`CellPartition.lookup`
maps points to cells through the split tree (vectorised, O(depth) per point).
:func:`save_partitions` writes them atomically to one ``.npz`` with metadata
(format, version, the training data's checksum); :func:`load_partitions` refuses
another format or, given the training coordinates, a partition of other data.

H3 hexagons (``scheme="h3"``, :mod:`vgloc.geo.h3cells`, the optional ``h3`` package)
are the alternative: the same adaptive rule on H3's index hierarchy (GeoEstimation
does it with S2 cells), returning the same :class:`CellPartition`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vgloc.geo.distances import EARTH_RADIUS_M, unit_vectors
from vgloc.geo.frames import validate_latlon

__all__ = [
    "CELLS_FORMAT",
    "SCHEMES",
    "SPLITS",
    "CellPartition",
    "build_h3_partition",
    "build_partition",
    "build_partitions",
    "latlon_checksum",
    "load_partitions",
    "save_partitions",
]

CELLS_FORMAT = "vgloc-geocells"
_VERSION = 1
#: How a cell is cut across its longer side: at its middle, or at a random point of its middle half.
SPLITS = ("even", "random")
_R_KM = EARTH_RADIUS_M / 1000.0
#: How the Earth is cut: latitude/longitude rectangles, or H3 hexagons (:mod:`vgloc.geo.h3cells`).
SCHEMES = ("rect", "h3")
_ARRAYS = (
    "cell_ids",
    "bounds",
    "counts",
    "centres",
    "means",
    "node_axis",
    "node_value",
    "node_left",
    "node_right",
    "node_cell",
)


def _area_km2(lat0: float, lat1: float, lon0: float, lon1: float) -> float:
    """Area of a latitude/longitude rectangle on the sphere (km^2)."""
    return float(_R_KM**2 * np.radians(lon1 - lon0) * (np.sin(np.radians(lat1)) - np.sin(np.radians(lat0))))


@dataclass
class CellPartition:
    """One partition: C kept cells and the split tree that finds them.

    Attributes:
        t_img: a cell with at least this many training images is split.
        t_area_km2: a cell smaller than this is never split.
        min_images: cells with fewer training images were dropped.
        split: ``"even"`` or ``"random"``; ``seed`` seeds the random cuts.
        bounds: (C, 4) float64 ``lat_min, lat_max, lon_min, lon_max`` degrees.
        counts: (C,) int64 training images per cell.
        centres: (C, 2) float64 lat/lon of each rectangle's centre.
        means: (C, 2) float64 lat/lon of the (spherical) mean of each cell's training images.
        node_axis: (T,) int8 per tree node: 0 cut at a latitude, 1 at a longitude, -1 leaf.
        node_value: (T,) float64 the cut (degrees); points >= it go right.
        node_left, node_right: (T,) int64 children (-1 for leaves).
        node_cell: (T,) int64 the kept cell of a leaf (-1: dropped or internal).
        scheme: ``"rect"`` (the split tree above) or ``"h3"`` (``cell_ids``; no tree).
        min_resolution, max_resolution: the H3 resolutions of an ``"h3"`` partition.
        cell_ids: (C,) int64 sorted H3 ids of the cells (``"h3"``; empty for ``"rect"``).
    """

    t_img: int
    t_area_km2: float
    min_images: int
    split: str
    seed: int
    bounds: np.ndarray
    counts: np.ndarray
    centres: np.ndarray
    means: np.ndarray
    node_axis: np.ndarray = field(repr=False)
    node_value: np.ndarray = field(repr=False)
    node_left: np.ndarray = field(repr=False)
    node_right: np.ndarray = field(repr=False)
    node_cell: np.ndarray = field(repr=False)
    scheme: str = "rect"
    min_resolution: int = 0
    max_resolution: int = 0
    cell_ids: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def num_cells(self) -> int:
        """C, the number of kept cells (classes)."""
        return len(self.counts)

    @property
    def name(self) -> str:
        """A short label, e.g. ``cells_t1000`` (used for multi-partition heads)."""
        return f"cells_t{self.t_img}" if self.scheme == "rect" else f"{self.scheme}_t{self.t_img}"

    def params(self) -> dict[str, Any]:
        """The construction parameters (JSON-ready; a rectangle partition's are those of format version 1)."""
        if self.scheme != "rect":
            return {
                "scheme": self.scheme,
                "t_img": self.t_img,
                "min_images": self.min_images,
                "min_resolution": self.min_resolution,
                "max_resolution": self.max_resolution,
                "t_area_km2": self.t_area_km2,
                "split": self.split,
                "seed": self.seed,
            }
        return {
            "t_img": self.t_img,
            "t_area_km2": self.t_area_km2,
            "min_images": self.min_images,
            "split": self.split,
            "seed": self.seed,
        }

    def lookup(self, latlon: np.ndarray) -> np.ndarray:
        """The cell of each point.

        Args:
            latlon: (N, 2) degrees.

        Returns:
            (N,) int64 cell indices; -1 for points in a dropped (too sparse) region.

        Raises:
            GeoError: a coordinate is not valid WGS84.
        """
        ll = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
        validate_latlon(ll[:, 0], ll[:, 1], "cell lookup", utm=False)
        if self.scheme == "h3":
            from vgloc.geo.h3cells import h3_lookup

            return h3_lookup(ll, self.cell_ids, self.min_resolution, self.max_resolution)
        node = np.zeros(len(ll), dtype=np.int64)
        for _ in range(len(self.node_axis)):  # at most the tree's depth iterations
            axis = self.node_axis[node]
            inner = axis >= 0
            if not inner.any():
                break
            idx = np.flatnonzero(inner)
            coord = ll[idx, axis[idx]]
            right = coord >= self.node_value[node[idx]]
            node[idx] = np.where(right, self.node_right[node[idx]], self.node_left[node[idx]])
        return np.asarray(self.node_cell[node], dtype=np.int64)

    def cell_latlon(self, position: str = "mean") -> np.ndarray:
        """(C, 2) the coordinates a classifier predicts for each cell: ``"mean"`` or ``"centre"``."""
        if position == "mean":
            return self.means
        if position == "centre":
            return self.centres
        raise ValueError(f"cell position must be 'mean' or 'centre', got {position!r}")


def _spherical_mean(latlon: np.ndarray) -> np.ndarray:
    """Lat/lon of the normalised mean unit vector (sound across the antimeridian and at poles)."""
    v = unit_vectors(latlon).mean(0)
    return np.degrees(np.array([np.arctan2(v[2], np.hypot(v[0], v[1])), np.arctan2(v[1], v[0])]))


def _training_latlon(latlon: np.ndarray, t_img: int, min_images: int) -> np.ndarray:
    """(N, 2) float64 training positions, checked with the thresholds every scheme shares."""
    ll = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
    if len(ll) == 0:
        raise ValueError("no training coordinates to partition")
    validate_latlon(ll[:, 0], ll[:, 1], "training coordinates", utm=False)
    if int(t_img) < 1 or int(min_images) < 1:
        raise ValueError(f"t_img and min_images must be >= 1, got {t_img} and {min_images}")
    return ll


def build_partition(
    latlon: np.ndarray,
    t_img: int,
    *,
    t_area_km2: float = 1.0,
    min_images: int = 1,
    split: str = "even",
    seed: int = 0,
) -> CellPartition:
    """Adaptively split the world cell around N training images (module docstring).

    Args:
        latlon: (N, 2) training image positions, degrees (N >= 1).
        t_img: split a cell while it holds at least this many images (>= 1).
        t_area_km2: never split a cell smaller than this (km^2, > 0; it also ends the
            splitting of many photos at one spot).
        min_images: drop cells with fewer training images (>= 1; 1 drops only empty cells).
        split: ``"even"`` (cut at the middle) or ``"random"`` (uniform in the middle half).
        seed: seeds the random cuts.

    Returns:
        The :class:`CellPartition`; cells in depth-first order (neighbours tend to be adjacent).

    Raises:
        ValueError: invalid parameters; GeoError: invalid coordinates.
    """
    ll = _training_latlon(latlon, t_img, min_images)
    if not (t_area_km2 > 0 and np.isfinite(t_area_km2)):
        raise ValueError(f"t_area_km2 must be a positive number of km^2, got {t_area_km2}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    rng = np.random.default_rng(seed)
    axis: list[int] = []
    value: list[float] = []
    left: list[int] = []
    right: list[int] = []
    cell: list[int] = []
    bounds: list[tuple[float, float, float, float]] = []
    counts: list[int] = []
    centres: list[tuple[float, float]] = []
    means: list[np.ndarray] = []

    def new_node() -> int:
        axis.append(-1)
        value.append(float("nan"))
        left.append(-1)
        right.append(-1)
        cell.append(-1)
        return len(axis) - 1

    # Depth-first with an explicit stack (right child pushed first, so left is numbered first).
    stack = [(new_node(), (-90.0, 90.0, -180.0, 180.0), np.arange(len(ll)))]
    while stack:
        node, (lat0, lat1, lon0, lon1), idx = stack.pop()
        if len(idx) >= t_img and _area_km2(lat0, lat1, lon0, lon1) >= t_area_km2:
            height = np.radians(lat1 - lat0)
            width = np.radians(lon1 - lon0) * np.cos(np.radians((lat0 + lat1) / 2))
            a = 1 if width > height else 0
            lo, hi = (lon0, lon1) if a == 1 else (lat0, lat1)
            frac = 0.5 if split == "even" else float(rng.uniform(0.25, 0.75))
            cut = lo + frac * (hi - lo)
            go_right = ll[idx, a] >= cut
            left_node, right_node = new_node(), new_node()
            axis[node], value[node], left[node], right[node] = a, cut, left_node, right_node
            lb = (lat0, cut, lon0, lon1) if a == 0 else (lat0, lat1, lon0, cut)
            rb = (cut, lat1, lon0, lon1) if a == 0 else (lat0, lat1, cut, lon1)
            stack.append((right_node, rb, idx[go_right]))
            stack.append((left_node, lb, idx[~go_right]))
            continue
        if len(idx) >= min_images:
            cell[node] = len(counts)
            bounds.append((lat0, lat1, lon0, lon1))
            counts.append(len(idx))
            centres.append(((lat0 + lat1) / 2, (lon0 + lon1) / 2))
            means.append(_spherical_mean(ll[idx]))
    if not counts:
        raise ValueError(f"no cell keeps min_images={min_images} of the {len(ll)} training images")
    return CellPartition(
        t_img=int(t_img),
        t_area_km2=float(t_area_km2),
        min_images=int(min_images),
        split=split,
        seed=int(seed),
        bounds=np.asarray(bounds, dtype=np.float64),
        counts=np.asarray(counts, dtype=np.int64),
        centres=np.asarray(centres, dtype=np.float64),
        means=np.asarray(means, dtype=np.float64).reshape(-1, 2),
        node_axis=np.asarray(axis, dtype=np.int8),
        node_value=np.asarray(value, dtype=np.float64),
        node_left=np.asarray(left, dtype=np.int64),
        node_right=np.asarray(right, dtype=np.int64),
        node_cell=np.asarray(cell, dtype=np.int64),
    )


def build_h3_partition(
    latlon: np.ndarray,
    t_img: int,
    *,
    min_images: int = 1,
    min_resolution: int = 0,
    max_resolution: int = 8,
    **unused: Any,
) -> CellPartition:
    """Adaptive H3 hexagons around N training images (:mod:`vgloc.geo.h3cells`; needs ``h3``).

    Args:
        latlon: (N, 2) training positions, degrees.
        t_img: replace a cell holding at least this many images by its children.
        min_images: drop cells with fewer training images.
        min_resolution, max_resolution: coarsest and finest H3 resolution (8: ~0.74 km^2).
        **unused: rectangle-only options (``t_area_km2``, ``split``, ``seed``), ignored.

    Returns:
        A :class:`CellPartition` with ``scheme="h3"``.
    """
    from vgloc.geo.h3cells import build_h3_partition as build

    del unused
    ll = _training_latlon(latlon, t_img, min_images)
    arrays, members = build(
        ll,
        int(t_img),
        min_images=int(min_images),
        min_resolution=min_resolution,
        max_resolution=max_resolution,
    )
    arrays["means"] = np.asarray([_spherical_mean(ll[idx]) for idx in members], dtype=np.float64).reshape(
        -1, 2
    )
    return CellPartition(
        t_img=int(t_img),
        t_area_km2=0.0,
        min_images=int(min_images),
        split="h3",
        seed=0,
        scheme="h3",
        min_resolution=int(min_resolution),
        max_resolution=int(max_resolution),
        **arrays,
    )


def build_partitions(
    latlon: np.ndarray,
    t_imgs: Sequence[int] = (5000, 2000, 1000),
    scheme: str = "rect",
    **kwargs: Any,
) -> list[CellPartition]:
    """Several granularities at once, coarse to fine: one :func:`build_partition` per ``t_img``.

    The default ``t_imgs`` are GeoEstimation's coarse / middle / fine ``img_max``
    (5000 / 2000 / 1000, PROTOCOLS.md section 8); pass ``min_images=50`` for its ``img_min``.

    Args:
        latlon: (N, 2) training positions, degrees.
        t_imgs: one ``t_img`` per partition (distinct).
        scheme: ``"rect"`` (:func:`build_partition`) or ``"h3"`` (:func:`build_h3_partition`).
        **kwargs: ``min_images`` and ``t_area_km2``, ``split``, ``seed`` (rectangles) or
            ``min_resolution``, ``max_resolution`` (H3) for every partition.

    Returns:
        The partitions, in the order of ``t_imgs``.
    """
    if not t_imgs or len(set(t_imgs)) != len(t_imgs):
        raise ValueError(f"give one or more distinct t_img values, got {list(t_imgs)}")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    if scheme == "h3":
        return [build_h3_partition(latlon, t, **kwargs) for t in t_imgs]
    kwargs = {k: v for k, v in kwargs.items() if k not in ("min_resolution", "max_resolution")}
    return [build_partition(latlon, t, **kwargs) for t in t_imgs]


def latlon_checksum(latlon: np.ndarray) -> str:
    """SHA-256 of the training coordinates (float64, row order), to tie a partition to its data."""
    return hashlib.sha256(
        np.ascontiguousarray(np.asarray(latlon, dtype=np.float64).reshape(-1, 2)).tobytes()
    ).hexdigest()


def save_partitions(path: str | Path, partitions: Sequence[CellPartition], latlon: np.ndarray) -> Path:
    """Write partitions and their metadata to one ``.npz``, atomically.

    Args:
        path: the file (``.npz`` recommended).
        partitions: what :func:`build_partitions` returned.
        latlon: (N, 2) the training coordinates they were built from (checksummed).

    Returns:
        ``path``.
    """
    from vgloc.io import atomic_path

    meta = {
        "format": CELLS_FORMAT,
        "version": _VERSION,
        "num_images": len(np.asarray(latlon).reshape(-1, 2)),
        "latlon_sha256": latlon_checksum(latlon),
        "partitions": [p.params() for p in partitions],
    }
    arrays = {f"p{i}_{k}": getattr(p, k) for i, p in enumerate(partitions) for k in _ARRAYS}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, meta=np.array(json.dumps(meta)), **arrays)
    return Path(path)


def load_partitions(path: str | Path, latlon: np.ndarray | None = None) -> list[CellPartition]:
    """Read partitions written by :func:`save_partitions`.

    Args:
        path: the ``.npz``.
        latlon: when given, the training coordinates the partitions must have been built
            from (refused otherwise: class indices would mean other cells).

    Raises:
        ValueError: not a geo-cell file, another version, or other training data.
    """
    with np.load(path, allow_pickle=False) as z:
        if "meta" not in z.files:
            raise ValueError(f"{path}: not a {CELLS_FORMAT} file (no metadata)")
        meta = json.loads(str(z["meta"]))
        if meta.get("format") != CELLS_FORMAT or meta.get("version") != _VERSION:
            raise ValueError(
                f"{path}: format {meta.get('format')!r} version {meta.get('version')}, "
                f"expected {CELLS_FORMAT!r} version {_VERSION}"
            )
        if latlon is not None and latlon_checksum(latlon) != meta["latlon_sha256"]:
            raise ValueError(
                f"{path}: built from other training coordinates ({meta['num_images']} images); "
                "rebuild the partitions for this data"
            )
        return [
            # Files of rectangle partitions written before H3 have no cell_ids (the default).
            CellPartition(**params, **{k: z[f"p{i}_{k}"] for k in _ARRAYS if f"p{i}_{k}" in z.files})
            for i, params in enumerate(meta["partitions"])
        ]
