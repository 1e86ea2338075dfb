"""Locating photos with an ensemble of indexes over the tiny city's database."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vgloc.describers import ExtractionOptions
from vgloc.ensemble import fuse
from vgloc.ensemble.localizer import EnsembleLocalizer, locate_ensemble
from vgloc.localizer import Localizer

SMALL = ExtractionOptions(image_size=(64, 96), batch_size=16, progress=False, num_workers=0)


@pytest.fixture(scope="module")
def city(tiny_city_root: Path) -> tuple[list, list[Path]]:
    """Two indexes (two architectures) of the first 24 database images, and 3 query photos."""
    from vgloc.data import load_split
    from vgloc.indexing import build_index

    split = load_split(tiny_city_root, "test")
    db = split.database.subset(list(range(24)))
    indexes = [build_index(db, m, options=SMALL) for m in ("tiny+gem", "tiny+gem+fc32")]
    return indexes, list(split.queries["queries"].paths[:3])


def test_fused_matches_are_the_fusion_of_each_index_alone(city: tuple[list, list[Path]]) -> None:
    indexes, photos = city
    alone = [Localizer.load(i, options=SMALL, top_k=5) for i in indexes]
    k = alone[0].search_k
    ids, sims = [], []
    for loc in alone:
        s, i = loc.index.search(loc.describer.describe(photos, SMALL, queries=True), k)
        ids.append(i)
        sims.append(s)
    for name in ("nif", "sif", "rrf"):
        want_sims, want_ids = fuse(name, ids, sims, k)
        with EnsembleLocalizer(alone, name) as ens:
            got = ens.locate(photos)
        for q, pred in enumerate(got):
            assert [m.index for m in pred.matches] == want_ids[q, :5].tolist()
            np.testing.assert_allclose([m.similarity for m in pred.matches], want_sims[q, :5], rtol=1e-6)
            top = indexes[0].images.latlon[want_ids[q, 0]]
            assert (pred.lat, pred.lon) == pytest.approx(tuple(top))  # nearest: the fused top match


def test_locate_ensemble_loads_and_refuses_other_databases(
    city: tuple[list, list[Path]], tiny_city_root: Path
) -> None:
    from vgloc.data import load_split
    from vgloc.indexing import build_index

    indexes, photos = city
    preds = locate_ensemble(photos[:1], indexes, ensemble="rrf", options=SMALL, top_k=3)
    assert len(preds) == 1 and len(preds[0].matches) == 3
    db = load_split(tiny_city_root, "test").database
    other = build_index(db.subset(list(range(24, 40))), "tiny+gem", options=SMALL)
    with pytest.raises(ValueError, match="ensemble model 2: its index holds 16 images"):
        locate_ensemble(photos[:1], [indexes[0], other], options=SMALL)
    with pytest.raises(ValueError, match="at least 2 models"):
        locate_ensemble(photos[:1], indexes[:1], options=SMALL)
