"""Train / val / test splits with geographic separation.

A photo of the same spot in training and test measures memorisation, not
geolocation. :func:`geographic_split` therefore never puts two images closer than
``min_distance_km`` (great circle) into different splits: images are linked when
they are within that distance, each connected group (single linkage) goes whole
into one split, and groups are dealt to the splits, largest first, to whichever is
furthest below its target share. The shares are reached up to the size of the
groups (one city can be one group at 25 km); :class:`SplitReport` says how close.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vgloc.geo.distances import arc_from_chord, chord_from_arc, unit_vectors
from vgloc.geo.frames import validate_latlon

# Cubes have side d / sqrt(3) (diagonal d), so two points within d are at most two
# cubes apart on each axis: the 62 offsets in {-2..2}^3 that, with their opposites, make all 124.
_HALF_NEIGHBOURS = np.array(
    [(i, j, k) for i in range(-2, 3) for j in range(-2, 3) for k in range(-2, 3) if (i, j, k) > (0, 0, 0)],
    dtype=np.int64,
)


#: Cube pairs with at most this many point pairs are checked all at once, in chunks of _CHUNK point pairs.
_SMALL_PAIR = 256
_CHUNK = 2_000_000


def _rows(a: np.ndarray) -> np.ndarray:
    """Each int64 row as one opaque value (for unique / searchsorted on rows)."""
    a = np.ascontiguousarray(a, dtype=np.int64)
    return a.view(np.dtype((np.void, a.dtype.itemsize * a.shape[1]))).ravel()


def _pairs_linked(
    xyz: np.ndarray, order: np.ndarray, starts: np.ndarray, a: np.ndarray, b: np.ndarray, chord: float
) -> np.ndarray:
    """For cube pairs (a[i], b[i]): is any point of a within ``chord`` of any point of b (all pairs, vectorised)."""
    out = np.zeros(len(a), dtype=bool)
    na, nb = starts[a + 1] - starts[a], starts[b + 1] - starts[b]
    work = na * nb
    bounds = np.searchsorted(np.cumsum(work), np.arange(0, int(work.sum()) + _CHUNK, _CHUNK), side="right")
    for lo, hi in itertools.pairwise(bounds.tolist()):
        if hi <= lo:
            continue
        w = work[lo:hi]
        pair = np.repeat(np.arange(lo, hi), w)
        j = np.arange(int(w.sum())) - np.repeat(np.cumsum(w) - w, w)
        ia = order[starts[a[pair]] + j // nb[pair]]
        ib = order[starts[b[pair]] + j % nb[pair]]
        close = ((xyz[ia] - xyz[ib]) ** 2).sum(1) <= chord**2
        out[lo:hi] = np.bincount(pair - lo, weights=close, minlength=hi - lo) > 0
    return out


def linked_groups(xyz: np.ndarray, distance_km: float) -> tuple[int, np.ndarray]:
    """Connected groups of points linked when within ``distance_km`` (great circle), single linkage.

    Exact without building the (huge, in a dense city) graph of all close pairs: the
    points fall into cubes whose diagonal is the link distance, so a cube's points
    are all linked; two cubes up to two apart on each axis are linked when their
    closest pair is within the distance. Pairs of small cubes are checked all at
    once (every point pair, vectorised); pairs of large cubes with a KD-tree, skipped
    when already joined.

    Args:
        xyz: (N, 3) unit vectors (:func:`vgloc.geo.unit_vectors`).
        distance_km: the link distance (>= 0; 0 links identical points only).

    Returns:
        ``(G, group)``: the number of groups and (N,) int64 group of each point.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    if distance_km == 0:
        _, group = np.unique(_rows(np.round(xyz * 2**40).astype(np.int64)), return_inverse=True)
        return int(group.max()) + 1, group.astype(np.int64)
    chord = float(chord_from_arc(distance_km * 1000.0)) * (1 + 1e-9)  # a pair exactly at the distance links
    keys = np.floor(xyz / (chord / np.sqrt(3.0))).astype(np.int64)
    uniq, cube = np.unique(_rows(keys), return_inverse=True)
    cube = cube.ravel()
    cube_keys = keys[np.unique(cube, return_index=True)[1]]
    n_cubes = len(uniq)
    order = np.argsort(cube, kind="stable")
    starts = np.searchsorted(cube[order], np.arange(n_cubes + 1))
    pairs_a, pairs_b = [], []
    for off in _HALF_NEIGHBOURS:
        shifted = _rows(cube_keys + off)
        other = np.minimum(np.searchsorted(uniq, shifted), n_cubes - 1)
        hit = np.flatnonzero(uniq[other] == shifted)
        pairs_a.append(hit)
        pairs_b.append(other[hit])
    a, b = np.concatenate(pairs_a), np.concatenate(pairs_b)
    small = (starts[a + 1] - starts[a]) * (starts[b + 1] - starts[b]) <= _SMALL_PAIR
    linked = _pairs_linked(xyz, order, starts, a[small], b[small], chord)
    ea, eb = a[small][linked], b[small][linked]
    graph = coo_matrix((np.ones(len(ea)), (ea, eb)), shape=(n_cubes, n_cubes))
    n_comp, comp = connected_components(graph, directed=False)
    parent = np.arange(n_comp)

    def find(c: int) -> int:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = int(parent[c])
        return c

    trees: dict[int, cKDTree] = {}
    for ca, cb in zip(a[~small].tolist(), b[~small].tolist(), strict=True):
        ra, rb = find(int(comp[ca])), find(int(comp[cb]))
        if ra == rb:
            continue
        # query the smaller cube's points against the larger cube's (cached) tree
        big, little = (ca, cb) if starts[ca + 1] - starts[ca] >= starts[cb + 1] - starts[cb] else (cb, ca)
        tree = trees.get(big)
        if tree is None:
            tree = trees[big] = cKDTree(xyz[order[starts[big] : starts[big + 1]]])
        dist, _ = tree.query(xyz[order[starts[little] : starts[little + 1]]], k=1, distance_upper_bound=chord)
        if np.isfinite(dist).any():
            parent[ra] = rb
    roots = np.array([find(c) for c in range(n_comp)], dtype=np.int64)
    _, group_of_comp = np.unique(roots, return_inverse=True)
    group = group_of_comp.ravel()[comp][cube]
    return int(group.max()) + 1, group.astype(np.int64)


__all__ = ["SPLIT_NAMES", "SplitReport", "geographic_split", "linked_groups"]

#: The split names, in label order (label 0 = train).
SPLIT_NAMES = ("train", "val", "test")


@dataclass
class SplitReport:
    """What :func:`geographic_split` achieved.

    Attributes:
        counts: images per split (train, val, test).
        groups: number of linked groups dealt out.
        largest_group: images in the largest group.
        min_separation_km: the smallest great-circle distance between images of two
            different splits (inf when only one split has images).
    """

    counts: tuple[int, int, int]
    groups: int
    largest_group: int
    min_separation_km: float

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        sep = self.min_separation_km
        return {
            "counts": dict(zip(SPLIT_NAMES, self.counts, strict=True)),
            "groups": self.groups,
            "largest_group": self.largest_group,
            "min_separation_km": None if not np.isfinite(sep) else round(sep, 6),
        }


def geographic_split(
    latlon: np.ndarray,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    min_distance_km: float = 25.0,
    seed: int = 0,
) -> tuple[np.ndarray, SplitReport]:
    """Label each image train (0), val (1) or test (2), images of different splits >= min_distance_km apart.

    Args:
        latlon: (N, 2) degrees.
        fractions: target shares of train, val, test (non-negative, summing to 1).
        min_distance_km: images closer than this (great circle) share a split (>= 0;
            0 only keeps identical coordinates together).
        seed: breaks ties between equal-size groups.

    Returns:
        ``(labels, report)``: (N,) int8 labels and a :class:`SplitReport`.

    Raises:
        ValueError: bad fractions or distance; GeoError: invalid coordinates.
    """
    from scipy.spatial import cKDTree

    ll = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
    frac = np.asarray(fractions, dtype=np.float64)
    if frac.shape != (3,) or np.any(frac < 0) or not np.isclose(frac.sum(), 1.0):
        raise ValueError(f"fractions are three shares (train, val, test) summing to 1, got {list(fractions)}")
    if not (min_distance_km >= 0 and np.isfinite(min_distance_km)):
        raise ValueError(f"min_distance_km must be >= 0, got {min_distance_km}")
    if len(ll) == 0:
        raise ValueError("no coordinates to split")
    validate_latlon(ll[:, 0], ll[:, 1], "coordinates", utm=False)
    xyz = unit_vectors(ll)
    n_groups, group = linked_groups(xyz, min_distance_km)
    sizes = np.bincount(group, minlength=n_groups)
    rng = np.random.default_rng(seed)
    # Largest groups first (hardest to place); equal sizes in a seeded random order.
    order = np.lexsort((rng.permutation(n_groups), -sizes))
    target = frac * len(ll)
    have = np.zeros(3)
    split_of_group = np.zeros(n_groups, dtype=np.int8)
    for g in order:
        # the split furthest below its target (relative deficit); empty targets never chosen
        deficit = np.where(target > 0, (target - have) / np.maximum(target, 1e-12), -np.inf)
        s = int(np.argmax(deficit))
        split_of_group[g] = s
        have[s] += sizes[g]
    labels = split_of_group[group]
    # Verify the separation the splits ended up with (nearest image of another split).
    sep = np.inf
    for s in range(3):
        mine, other = labels == s, labels != s
        if mine.any() and other.any():
            dist, _ = cKDTree(xyz[other]).query(xyz[mine], k=1)
            sep = min(sep, float(arc_from_chord(dist.min())) / 1000.0)
    counts = tuple(int(c) for c in np.bincount(labels, minlength=3))
    report = SplitReport(
        counts=(counts[0], counts[1], counts[2]),
        groups=int(n_groups),
        largest_group=int(sizes.max()),
        min_separation_km=sep,
    )
    return labels, report
