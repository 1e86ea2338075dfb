"""Geographic train/val/test splits: linked groups against brute force, separation, shares."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

from vgloc.geo import GeoError, haversine_m, unit_vectors
from vgloc.geo.separation import geographic_split, linked_groups


def _clustered(seed: int, n: int = 300) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.stack([rng.uniform(-80, 80, 6), rng.uniform(-180, 180, 6)], 1)
    centres[0] = [-17.0, 179.95]  # one cluster straddles the antimeridian
    ll = centres[rng.integers(0, 6, n)] + rng.normal(0, 0.2, (n, 2)) * rng.choice([0.1, 1.0, 5.0], (n, 1))
    ll[:, 0] = np.clip(ll[:, 0], -90, 90)
    ll[:, 1] = (ll[:, 1] + 180) % 360 - 180
    return ll


def _brute_groups(ll: np.ndarray, d_km: float) -> np.ndarray:
    d = haversine_m(ll[:, None, 0], ll[:, None, 1], ll[None, :, 0], ll[None, :, 1]) / 1000.0
    return np.asarray(connected_components(d <= d_km, directed=False)[1])


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize(("seed", "d_km"), [(0, 0.5), (1, 5.0), (2, 25.0), (3, 100.0), (4, 25.0)])
def test_linked_groups_are_the_brute_force_single_linkage_components(seed: int, d_km: float) -> None:
    ll = _clustered(seed)
    n, groups = linked_groups(unit_vectors(ll), d_km)
    brute = _brute_groups(ll, d_km)
    assert n == len(set(brute.tolist())) and _same_partition(groups, brute)


def test_zero_distance_links_identical_coordinates_only() -> None:
    ll = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.00001], [-5.0, 7.0]])
    n, groups = linked_groups(unit_vectors(ll), 0.0)
    assert n == 3 and groups[0] == groups[1] and len({groups[1], groups[2], groups[3]}) == 3


@pytest.mark.parametrize("d_km", [1.0, 25.0])
def test_split_keeps_splits_apart_and_near_their_shares(d_km: float) -> None:
    rng = np.random.default_rng(7)
    ll = np.concatenate(
        [_clustered(5, 600), np.stack([rng.uniform(-60, 70, 600), rng.uniform(-180, 180, 600)], 1)]
    )
    labels, report = geographic_split(ll, (0.7, 0.15, 0.15), d_km, seed=1)
    assert set(labels.tolist()) == {0, 1, 2} and sum(report.counts) == len(ll)
    d = haversine_m(ll[:, None, 0], ll[:, None, 1], ll[None, :, 0], ll[None, :, 1]) / 1000.0
    cross = labels[:, None] != labels[None, :]
    assert d[cross].min() > d_km and report.min_separation_km == pytest.approx(d[cross].min(), rel=1e-6)
    # shares within the largest group's size of the targets
    share = np.array(report.counts) / len(ll)
    assert np.all(np.abs(share - [0.7, 0.15, 0.15]) <= report.largest_group / len(ll) + 1e-9)
    again, _ = geographic_split(ll, (0.7, 0.15, 0.15), d_km, seed=1)
    np.testing.assert_array_equal(labels, again)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="fractions"):
        geographic_split(np.zeros((3, 2)), (0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="min_distance_km"):
        geographic_split(np.zeros((3, 2)), min_distance_km=-1.0)
    with pytest.raises(GeoError):
        geographic_split(np.array([[0.0, 200.0]]))
    labels, report = geographic_split(np.zeros((4, 2)), (0.0, 0.0, 1.0))
    assert labels.tolist() == [2, 2, 2, 2] and report.min_separation_km == np.inf
