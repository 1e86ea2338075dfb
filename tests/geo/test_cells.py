"""Geo-cell partitions: adaptive splitting, lookup, granularities and the saved file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vgloc.geo import GeoError, unit_vectors
from vgloc.geo.cells import build_partition, build_partitions, load_partitions, save_partitions


def _world(seed: int = 0, n: int = 3000) -> np.ndarray:
    """Photos clustered around a few cities (one on the antimeridian, one near a pole) plus a sparse spread."""
    rng = np.random.default_rng(seed)
    cities = np.array([[48.85, 2.35], [40.71, -74.0], [-33.87, 151.21], [-17.0, 179.9], [78.2, 15.6]])
    which = rng.integers(0, len(cities), n)
    ll = cities[which] + rng.normal(0, 0.3, (n, 2)) * rng.choice([0.01, 1.0, 10.0], (n, 1))
    ll[: n // 10] = np.stack([rng.uniform(-60, 70, n // 10), rng.uniform(-180, 180, n // 10)], 1)
    ll[:, 0] = np.clip(ll[:, 0], -90, 90)
    ll[:, 1] = (ll[:, 1] + 180) % 360 - 180
    return ll


def _contains(bounds: np.ndarray, ll: np.ndarray) -> np.ndarray:
    """(N, C) brute force: is point n in cell c (half-open, closed at lat 90 / lon 180)."""
    lat, lon = ll[:, 0:1], ll[:, 1:2]
    lat_in = (lat >= bounds[:, 0]) & ((lat < bounds[:, 1]) | ((bounds[:, 1] == 90) & (lat == 90)))
    lon_in = (lon >= bounds[:, 2]) & ((lon < bounds[:, 3]) | ((bounds[:, 3] == 180) & (lon == 180)))
    return np.asarray(lat_in & lon_in)


def _area(b: np.ndarray) -> np.ndarray:
    r = 6371.0088
    return r**2 * np.radians(b[:, 3] - b[:, 2]) * (np.sin(np.radians(b[:, 1])) - np.sin(np.radians(b[:, 0])))


@pytest.mark.parametrize("split", ["even", "random"])
def test_cells_are_split_until_small_and_lookup_matches_brute_force(split: str) -> None:
    ll = _world()
    p = build_partition(ll, 100, t_area_km2=10.0, split=split, seed=3)
    assert p.num_cells > 20 and p.counts.sum() == len(ll)  # min_images=1 keeps every image
    # every kept cell stopped for a reason: few images or small area
    assert np.all((p.counts < 100) | (_area(p.bounds) < 10.0))
    # lookup = the one rectangle holding the point, for training images and random points
    probe = np.concatenate([ll, np.stack([np.linspace(-90, 90, 500), np.linspace(-180, 180, 500)], 1)])
    inside = _contains(p.bounds, probe)
    assert inside.sum(1).max() <= 1  # cells never overlap
    want = np.where(inside.any(1), inside.argmax(1), -1)
    np.testing.assert_array_equal(p.lookup(probe), want)
    assert np.all(p.lookup(ll) >= 0)
    # counts and means are those of the training images in each cell (spherical mean)
    cells = p.lookup(ll)
    np.testing.assert_array_equal(np.bincount(cells, minlength=p.num_cells), p.counts)
    for c in range(0, p.num_cells, 7):
        v = unit_vectors(ll[cells == c]).mean(0)
        np.testing.assert_allclose(unit_vectors(p.means[c : c + 1])[0], v / np.linalg.norm(v), atol=1e-9)
        assert p.bounds[c, 0] <= p.centres[c, 0] <= p.bounds[c, 1]


def test_cuts_follow_the_longer_side_and_random_cuts_are_seeded() -> None:
    # One image per cell is allowed to split: the world cell (40,000 km wide, 20,000 km
    # high) is cut at a longitude, evenly at lon 0.
    ll = np.array([[10.0, -100.0], [10.0, 100.0]])
    even = build_partition(ll, 2)
    assert even.node_axis[0] == 1 and even.node_value[0] == 0.0
    assert even.num_cells == 2 and {tuple(b) for b in even.bounds[:, 2:]} == {(-180.0, 0.0), (0.0, 180.0)}
    a = build_partition(_world(), 50, split="random", seed=1)
    b = build_partition(_world(), 50, split="random", seed=1)
    c = build_partition(_world(), 50, split="random", seed=2)
    np.testing.assert_array_equal(a.bounds, b.bounds)
    assert a.bounds.shape != c.bounds.shape or not np.array_equal(a.bounds, c.bounds)
    # a random cut lies in the middle half of its side
    inner = a.node_axis >= 0
    assert -180 + 0.25 * 360 <= a.node_value[0] <= -180 + 0.75 * 360 and inner.sum() == len(a.node_axis) // 2


def test_granularities_nest_and_sparse_cells_are_dropped() -> None:
    ll = _world(1)
    coarse, fine = build_partitions(ll, (400, 60), min_images=5)
    assert fine.num_cells > coarse.num_cells and np.all(fine.counts >= 5) and np.all(coarse.counts >= 5)
    # even cuts: every fine cell lies inside one coarse cell
    for b in fine.bounds:
        holds = (coarse.bounds[:, 0] <= b[0]) & (b[1] <= coarse.bounds[:, 1])
        holds &= (coarse.bounds[:, 2] <= b[2]) & (b[3] <= coarse.bounds[:, 3])
        assert holds.sum() == 1
    # images in dropped cells look up as -1 (not a class)
    dropped = fine.lookup(ll) < 0
    assert dropped.any() and fine.counts.sum() == (~dropped).sum()
    with pytest.raises(ValueError, match="distinct"):
        build_partitions(ll, (60, 60))


def test_many_photos_at_one_spot_stop_at_the_area_threshold() -> None:
    ll = np.tile([[45.0, 7.0]], (500, 1))
    p = build_partition(ll, 10, t_area_km2=1.0)
    [c] = np.flatnonzero(p.counts)
    assert p.counts[c] == 500 and 0.25 <= _area(p.bounds[c : c + 1])[0] < 1.0


def test_invalid_input_is_refused_before_splitting() -> None:
    with pytest.raises(GeoError, match="latitude"):
        build_partition(np.array([[95.0, 0.0]]), 10)
    with pytest.raises(ValueError, match="t_area_km2"):
        build_partition(np.zeros((3, 2)), 10, t_area_km2=0.0)
    with pytest.raises(ValueError, match="split"):
        build_partition(np.zeros((3, 2)), 10, split="half")
    with pytest.raises(ValueError, match="no cell keeps"):
        build_partition(np.zeros((3, 2)), 10, min_images=4)
    with pytest.raises(GeoError):
        build_partition(np.zeros((3, 2)), 10).lookup(np.array([[0.0, 181.0]]))


def test_partitions_round_trip_through_an_atomic_file_tied_to_their_data(tmp_path: Path) -> None:
    ll = _world(2, 800)
    parts = build_partitions(ll, (200, 50), split="random", seed=4, min_images=2)
    path = save_partitions(tmp_path / "cells.npz", parts, ll)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["cells.npz"]  # no temporary left behind
    loaded = load_partitions(path, ll)
    for a, b in zip(parts, loaded, strict=True):
        assert a.params() == b.params() and a.name == b.name
        for k in ("bounds", "counts", "centres", "means", "node_value", "node_cell"):
            np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
        np.testing.assert_array_equal(a.lookup(ll), b.lookup(ll))
    with pytest.raises(ValueError, match="other training coordinates"):
        load_partitions(path, ll[::-1])
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(ValueError, match="not a vgloc-geocells file"):
        load_partitions(tmp_path / "other.npz")
