"""Geo-cells from Uber's H3 hexagonal grid, as an alternative to latitude/longitude rectangles.

GeoEstimation (Müller-Budack et al. 2018) partitions the Earth with S2 cells, adaptively:
a cell with at least ``t_img`` training images is replaced by its children. This module
does the same with H3 (the ``h3`` package, the maintained bindings of Uber's library;
``pip install 'vgloc[h3]'``): start from the resolution-``min_resolution`` cells holding
training images, replace a cell with at least ``t_img`` images by its resolution r+1
children, down to ``max_resolution`` (resolution 8 is ~0.74 km^2, close to the
rectangles' 1 km^2 floor), and drop cells with fewer than ``min_images`` images.
Hexagons have nearly equal areas at one resolution and no pole or antimeridian
distortion, unlike rectangles.

Points are assigned through the H3 *index* hierarchy (a point's finest cell, then
its parents), so a point always falls in exactly one leaf even though H3 children do
not tile their parent exactly. The result is a :class:`~vgloc.geo.cells.CellPartition`
with ``scheme="h3"`` and the leaves' H3 ids; lookup, centres, means, saving and loading
are those of every partition.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["H3_MAX_RESOLUTION", "build_h3_partition", "h3_lookup", "require_h3"]

#: H3's finest resolution.
H3_MAX_RESOLUTION = 15


def require_h3() -> Any:
    """The ``h3`` module (v4), or an ImportError that says how to install it."""
    try:
        import h3
    except ImportError as err:
        raise ImportError(
            "H3 geo-cells need the h3 package: pip install 'vgloc[h3]' (or pip install 'h3>=4,<5')"
        ) from err
    if not hasattr(h3, "latlng_to_cell"):
        raise ImportError(
            f"H3 geo-cells need h3 >= 4 (found {getattr(h3, '__version__', '?')}): pip install 'h3>=4,<5'"
        )
    return h3


def _finest(h3: Any, latlon: np.ndarray, resolution: int) -> np.ndarray:
    """(N,) int64 H3 id of each point's cell at ``resolution``."""
    return np.array(
        [h3.str_to_int(h3.latlng_to_cell(float(a), float(b), resolution)) for a, b in latlon], dtype=np.int64
    )


def _parents(h3: Any, ids: Iterable[int], resolution: int) -> np.ndarray:
    return np.array(
        [h3.str_to_int(h3.cell_to_parent(h3.int_to_str(int(i)), resolution)) for i in ids], dtype=np.int64
    )


def build_h3_partition(
    latlon: np.ndarray,
    t_img: int,
    *,
    min_images: int = 1,
    min_resolution: int = 0,
    max_resolution: int = 8,
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Adaptive H3 cells around N training images (module docstring).

    Args:
        latlon: (N, 2) training positions, degrees (validated by the caller).
        t_img: replace a cell holding at least this many images by its children.
        min_images: drop leaves with fewer images.
        min_resolution, max_resolution: the coarsest and finest H3 resolutions (0..15).

    Returns:
        The :class:`~vgloc.geo.cells.CellPartition` arrays of the kept leaves, in
        ascending id order: ``bounds`` (C, 4) the lat/lon extent of each hexagon,
        ``counts`` (C,), ``centres`` (C, 2) the H3 cell centres, ``cell_ids`` (C,) int64
        H3 ids, and empty split-tree arrays; and the C arrays of training-image indices
        in each leaf (the caller computes their mean positions).
    """
    h3 = require_h3()
    if not 0 <= min_resolution <= max_resolution <= H3_MAX_RESOLUTION:
        raise ValueError(
            f"H3 resolutions must satisfy 0 <= min ({min_resolution}) <= max ({max_resolution}) <= {H3_MAX_RESOLUTION}"
        )
    ll = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
    finest = _finest(h3, ll, max_resolution)
    leaves: list[tuple[int, np.ndarray]] = []
    # One level at a time: the points of every cell still to be split, grouped by their child.
    pending = np.arange(len(ll))
    for r in range(min_resolution, max_resolution + 1):
        ids = finest[pending] if r == max_resolution else _parents(h3, finest[pending], r)
        uniq, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
        split = (counts >= t_img) & (r < max_resolution)
        for j in np.flatnonzero(~split):
            leaves.append((int(uniq[j]), pending[inverse == j]))
        pending = pending[split[inverse]]
        if not len(pending):
            break
    kept = sorted((cid, idx) for cid, idx in leaves if len(idx) >= min_images)
    if not kept:
        raise ValueError(f"no H3 cell keeps min_images={min_images} of the {len(ll)} training images")
    bounds, centres = [], []
    for cid, _ in kept:
        cell = h3.int_to_str(cid)
        boundary = np.asarray(h3.cell_to_boundary(cell), dtype=np.float64)
        bounds.append(
            (boundary[:, 0].min(), boundary[:, 0].max(), boundary[:, 1].min(), boundary[:, 1].max())
        )
        centres.append(h3.cell_to_latlng(cell))
    empty_i = np.zeros(0, dtype=np.int64)
    return {
        "bounds": np.asarray(bounds, dtype=np.float64),
        "counts": np.asarray([len(idx) for _, idx in kept], dtype=np.int64),
        "centres": np.asarray(centres, dtype=np.float64),
        "cell_ids": np.asarray([cid for cid, _ in kept], dtype=np.int64),
        "node_axis": np.zeros(0, dtype=np.int8),
        "node_value": np.zeros(0, dtype=np.float64),
        "node_left": empty_i,
        "node_right": empty_i,
        "node_cell": empty_i,
    }, [idx for _, idx in kept]


def h3_lookup(
    latlon: np.ndarray, cell_ids: np.ndarray, min_resolution: int, max_resolution: int
) -> np.ndarray:
    """(N,) index into ``cell_ids`` (sorted, int64) of the leaf holding each point; -1 for none.

    A point's finest cell and its parents are looked up coarse to fine; the first
    that is a kept leaf is the point's cell (leaves never contain one another).
    """
    h3 = require_h3()
    ll = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
    out = np.full(len(ll), -1, dtype=np.int64)
    if not len(ll) or not len(cell_ids):
        return out
    finest = _finest(h3, ll, max_resolution)
    for r in range(min_resolution, max_resolution + 1):
        todo = np.flatnonzero(out < 0)
        if not len(todo):
            break
        ids = finest[todo] if r == max_resolution else _parents(h3, finest[todo], r)
        pos = np.clip(np.searchsorted(cell_ids, ids), 0, len(cell_ids) - 1)
        hit = cell_ids[pos] == ids
        out[todo[hit]] = pos[hit]
    return out
