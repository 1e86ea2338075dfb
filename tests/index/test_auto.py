"""factory="auto": exact up to a size, a compact approximate index with re-ranking above."""

from __future__ import annotations

import logging
from pathlib import Path

import faiss
import numpy as np
import pytest

from tests.index._synthetic import sphere_centers, sphere_mixture, unit
from vgloc.data.records import GeoImageSet
from vgloc.index import (
    AUTO_EXACT_MAX,
    GeoIndex,
    choose_index,
    exact_search,
    knn_overlap_at_k,
    knn_recall_at_1,
)
from vgloc.index.auto import approximate_factory, is_auto

DIM = 32


def _images(n: int) -> GeoImageSet:
    rng = np.random.default_rng(0)
    return GeoImageSet.from_latlon(
        [Path(f"/data/db/img_{i:05d}.jpg") for i in range(n)],
        55.70 + rng.uniform(0, 0.01, n),
        13.19 + rng.uniform(0, 0.01, n),
        name="db",
    )


def test_choice_by_size() -> None:
    assert choose_index(AUTO_EXACT_MAX, 512).factory == "Flat"
    assert choose_index(AUTO_EXACT_MAX, 512).search_params == ""
    big = choose_index(1_000_000, 512)
    assert big.factory == "IVF1024,PQ32x4fs,Refine(PQ32np)"
    assert "nprobe" in big.search_params and "k_factor_rf" in big.search_params
    assert choose_index(200, 32, exact_max=100).factory.startswith("IVF")
    assert is_auto(" Auto ") and not is_auto("Flat")
    # nlist never exceeds one list per 39 vectors (FAISS's minimum for k-means), nor 4096.
    assert approximate_factory(3_000, 32)[0].startswith("IVF64,")
    assert approximate_factory(10**9, 512)[0].startswith("IVF4096,")
    # PQ needs M to divide D.
    assert approximate_factory(10_000, 96)[0].endswith("PQ32x4fs,Refine(PQ32np)")
    assert approximate_factory(10_000, 20)[0] == "IVF128,PQ20x4fs,Refine(PQ20np)"
    with pytest.raises(ValueError):
        choose_index(0, 32)


def test_auto_builds_flat_for_a_small_set_and_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    db = unit(np.random.default_rng(0).standard_normal((300, DIM)))
    with caplog.at_level(logging.INFO, logger="vgloc.index.auto"):
        gi = GeoIndex.build(
            db, _images(300), model_spec="m", image_size=None, factory="auto", search_params=None
        )
    assert gi.metadata.faiss_factory == "Flat" and gi.metadata.search_params == ""
    assert gi.metadata.extra["index_choice"]["requested"] == "auto"
    assert "index choice (auto): Flat" in caplog.text
    assert isinstance(faiss.downcast_index(gi.index), faiss.IndexFlat)


def test_auto_above_the_threshold_is_approximate_and_agrees_with_exact(tmp_path: Path) -> None:
    centers = sphere_centers(64, DIM, seed=0)
    db, db_labels = sphere_mixture(12_000, centers, spread=0.5, seed=1)
    q, q_labels = sphere_mixture(400, centers, spread=0.5, seed=2)
    gi = GeoIndex.build(
        db,
        _images(len(db)),
        model_spec="m",
        image_size=None,
        factory="auto",
        search_params=None,
        exact_max=5_000,
    )
    choice = choose_index(len(db), DIM, exact_max=5_000)
    assert gi.metadata.faiss_factory == choice.factory and choice.factory.startswith("IVF")
    assert gi.metadata.search_params == choice.search_params
    assert gi.metadata.extra["index_choice"]["exact_max"] == 5_000
    assert isinstance(faiss.downcast_index(gi.index), faiss.IndexRefine)
    gi.save(tmp_path / "auto.idx")
    loaded = GeoIndex.load(tmp_path / "auto.idx")
    assert loaded.metadata.faiss_factory == choice.factory
    _, ids = loaded.search(q, 10)
    _, exact_ids = exact_search(db, q, 10)
    # Place recognition (bench_search's place R@1): the top-1 shows the same place as the
    # exact top-1 for >= 99 % of queries, and R@1 is >= 99 % of exact search's.
    assert np.mean(db_labels[ids[:, 0]] == db_labels[exact_ids[:, 0]]) >= 0.99
    assert np.mean(db_labels[ids[:, 0]] == q_labels) >= 0.99 * np.mean(db_labels[exact_ids[:, 0]] == q_labels)
    # The exact nearest vector itself: the stored descriptors re-score the candidates.
    assert loaded.metadata.extra["index_choice"]["rerank_candidates"] > 0
    assert knn_recall_at_1(ids, exact_ids) >= 0.99
    assert knn_overlap_at_k(ids, exact_ids, 10) >= 0.95
    # Without descriptors, the PQ re-ranking alone orders near-ties within a place only
    # approximately (0.81 here), but keeps the place.
    bare = GeoIndex.load(tmp_path / "auto.idx", load_descriptors=False)
    _, bare_ids = bare.search(q, 10)
    assert knn_recall_at_1(bare_ids, exact_ids) >= 0.7
    assert np.mean(db_labels[bare_ids[:, 0]] == db_labels[exact_ids[:, 0]]) >= 0.99
    # Compact: codes + ids well under the 2 x 4 x D bytes of float32 storage.
    assert faiss.serialize_index(gi.index).size / len(db) < 4 * DIM


def test_explicit_search_params_win_over_the_choice() -> None:
    db = unit(np.random.default_rng(0).standard_normal((300, DIM)))
    gi = GeoIndex.build(
        db, _images(300), model_spec="m", image_size=None, factory="auto", search_params="nprobe=4"
    )
    assert gi.metadata.search_params == "nprobe=4"


@pytest.mark.parametrize("chunk_rows", [1, 7, 64, 10_000])
def test_chunked_exact_search_equals_one_pass(chunk_rows: int) -> None:
    rng = np.random.default_rng(3)
    db = unit(rng.standard_normal((500, 16)))
    q = unit(rng.standard_normal((20, 16)))
    full = faiss.knn(q, db, 10, metric=faiss.METRIC_INNER_PRODUCT)
    sims, ids = exact_search(db, q, 10, chunk_rows=chunk_rows)
    np.testing.assert_array_equal(ids, full[1])
    np.testing.assert_allclose(sims, full[0], rtol=1e-5)
    # An exact tie split across chunks keeps both copies.
    db[400] = db[7]
    assert set(exact_search(db, db[7:8], 2, chunk_rows=chunk_rows)[1][0].tolist()) == {7, 400}
    s16, i16 = exact_search(db.astype(np.float16), q, 5, chunk_rows=chunk_rows)
    assert s16.shape == i16.shape == (len(q), 5)


def test_rerank_exact_orders_candidates_by_exact_similarity() -> None:
    from vgloc.index.auto import rerank_exact

    rng = np.random.default_rng(5)
    db = unit(rng.standard_normal((50, 8)))
    q = unit(rng.standard_normal((3, 8)))
    cand = np.array([[4, 9, 1, -1], [7, 7, 2, 3], [0, 1, 2, 3]])
    sims, ids = rerank_exact(db.astype(np.float16), q, cand, 3, block=2)
    for row in range(3):
        valid = [c for c in cand[row] if c >= 0]
        exact = sorted(valid, key=lambda c: (-float(db[c].astype(np.float16).astype(np.float32) @ q[row]), c))
        assert ids[row].tolist() == exact[:3]
    assert np.all(np.diff(sims, axis=1) <= 0)
