"""H3 geo-cells: adaptive hexagons on the index hierarchy, the same partition contract as rectangles."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from vgloc.geo.cells import build_partitions, load_partitions, save_partitions
from vgloc.predict.cells import cell_predictions, combine_partitions

h3 = pytest.importorskip("h3")


def _points() -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = np.array([[48.85, 2.35], [40.71, -74.0], [-33.87, 151.21], [64.0, -179.9], [-17.7, 179.9]])
    ll = centres[rng.integers(0, len(centres), 3000)] + rng.normal(0, 0.4, (3000, 2))
    ll[:, 1] = (ll[:, 1] + 180.0) % 360.0 - 180.0  # across the antimeridian
    return ll


def test_adaptive_h3_cells_hold_their_training_images_and_split_dense_ones(tmp_path: Path) -> None:
    ll = _points()
    coarse, fine = build_partitions(ll, (800, 60), scheme="h3", min_images=3, max_resolution=7)
    assert fine.num_cells > coarse.num_cells and (coarse.name, fine.scheme) == ("h3_t800", "h3")
    for part in (coarse, fine):
        ids = [h3.int_to_str(int(i)) for i in part.cell_ids]
        assert all(h3.is_valid_cell(c) for c in ids) and np.all(np.diff(part.cell_ids) > 0)
        res = np.array([h3.get_resolution(c) for c in ids])
        assert res.max() <= 7 and np.all((part.counts < part.t_img) | (res == 7))  # dense cells were split
        np.testing.assert_allclose(part.centres, [h3.cell_to_latlng(c) for c in ids])
        labels = part.lookup(ll)
        kept = labels >= 0
        # every training image is in the leaf that counts it, and the leaf is its own H3 ancestor
        np.testing.assert_array_equal(np.bincount(labels[kept], minlength=part.num_cells), part.counts)
        for i in np.flatnonzero(kept)[:50]:
            own = h3.latlng_to_cell(*ll[i], 7)
            assert h3.cell_to_parent(own, int(res[labels[i]])) == ids[labels[i]]
        assert np.all(part.counts >= 3) and kept.sum() == part.counts.sum()
    assert fine.lookup(np.array([[0.0, -30.0]])).tolist() == [-1]  # the empty Atlantic
    save_partitions(tmp_path / "cells.npz", [coarse, fine], ll)
    back = load_partitions(tmp_path / "cells.npz", ll)
    np.testing.assert_array_equal(back[1].lookup(ll), fine.lookup(ll))
    assert back[1].params() == fine.params()
    # the classifier side works unchanged: top cells, positions, the coarse-to-fine hierarchy
    z = [np.random.default_rng(1).normal(size=(4, p.num_cells)) for p in back]
    pred = cell_predictions(combine_partitions(z, back), back[1], k=2, position="centre")
    np.testing.assert_array_equal(pred.latlon, back[1].centres[pred.cells[:, 0]])


def test_a_missing_h3_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from vgloc.geo.h3cells import require_h3

    monkeypatch.setitem(sys.modules, "h3", None)
    with pytest.raises(ImportError, match=r"pip install 'vgloc\[h3\]'"):
        require_h3()
    with pytest.raises(ValueError, match="scheme"):
        build_partitions(_points(), (100,), scheme="s2")
