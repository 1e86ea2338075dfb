"""Classifier outputs -> top-k geo-cells, probabilities and positions; the coarse-to-fine hierarchy."""

from __future__ import annotations

import numpy as np
import pytest

from vgloc.geo.cells import build_partitions
from vgloc.predict.cells import cell_predictions, combine_partitions


def _partitions() -> list:  # type: ignore[type-arg]
    rng = np.random.default_rng(0)
    centres = np.array([[48.85, 2.35], [40.71, -74.0], [-33.87, 151.21], [35.68, 139.69]])
    ll = centres[rng.integers(0, 4, 2000)] + rng.normal(0, 1.0, (2000, 2))
    return build_partitions(ll, (400, 60), min_images=3)


def test_top_k_cells_are_sorted_softmax_probabilities_with_their_positions() -> None:
    _, fine = _partitions()
    logits = np.random.default_rng(1).normal(0, 3, (5, fine.num_cells))
    pred = cell_predictions(logits, fine, k=3)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_array_equal(pred.cells[:, 0], logits.argmax(1))
    np.testing.assert_allclose(pred.probabilities, np.take_along_axis(p, pred.cells, 1))
    assert np.all(np.diff(pred.probabilities, axis=1) <= 0)
    np.testing.assert_array_equal(pred.latlon, fine.means[pred.cells[:, 0]])
    centre = cell_predictions(logits, fine, k=100, position="centre")
    assert centre.cells.shape == (5, fine.num_cells)
    np.testing.assert_array_equal(centre.latlon, fine.centres[pred.cells[:, 0]])
    with pytest.raises(ValueError, match="cells"):
        cell_predictions(logits[:, 1:], fine)


def test_hierarchy_multiplies_each_fine_cell_by_the_coarse_cell_holding_it() -> None:
    coarse, fine = _partitions()
    rng = np.random.default_rng(2)
    zc, zf = rng.normal(0, 2, (4, coarse.num_cells)), rng.normal(0, 2, (4, fine.num_cells))
    combined = combine_partitions([zc, zf], [coarse, fine])
    pc = np.exp(zc) / np.exp(zc).sum(1, keepdims=True)
    pf = np.exp(zf) / np.exp(zf).sum(1, keepdims=True)
    for j, (lat, lon) in enumerate(fine.centres):
        b = coarse.bounds
        holder = np.flatnonzero((b[:, 0] <= lat) & (lat < b[:, 1]) & (b[:, 2] <= lon) & (lon < b[:, 3]))
        want = np.log(pf[:, j]) + (np.log(pc[:, holder[0]]) if len(holder) else 0.0)
        np.testing.assert_allclose(combined[:, j], want, rtol=1e-10)
    # two fine cells tie; the one under the confident coarse cell wins
    parent = coarse.lookup(fine.centres)
    j1, j2 = 0, int(np.flatnonzero((parent >= 0) & (parent != parent[0]))[0])
    zf = np.zeros((1, fine.num_cells))
    zf[0, [j1, j2]] = 5.0
    zc = np.zeros((1, coarse.num_cells))
    zc[0, parent[j2]] = 3.0
    assert cell_predictions(zf, fine).cells[0, 0] == j1  # alone: the first of the tie
    assert cell_predictions(combine_partitions([zc, zf], [coarse, fine]), fine).cells[0, 0] == j2
