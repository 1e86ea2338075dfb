"""FAISS indexes against the exact oracle, search parameters, training-size errors."""

from __future__ import annotations

import logging
from typing import Any

import faiss
import numpy as np
import pytest

from tests.index._synthetic import sphere_centers, sphere_mixture, unit
from vgloc.index import (
    TrainingDataError,
    add_vectors,
    apply_search_params,
    build_faiss_index,
    exact_search,
    faiss_search,
    faiss_threads,
    knn_overlap_at_k,
    knn_recall_at_1,
    make_index,
    parse_search_params,
    search,
    training_needs,
)

DIM = 32
N_CLUSTERS = 64


def _hnsw(index: faiss.Index) -> Any:
    """The HNSW graph parameters of an HNSW index (faiss's stubs do not know the subclass)."""
    hnsw_index: Any = faiss.downcast_index(index)
    return hnsw_index.hnsw


@pytest.fixture(scope="module")
def mixture() -> dict[str, np.ndarray]:
    """5,000 database and 300 query vectors from a 64-component mixture on the 32-d sphere.

    Spread 0.5 puts a point at cosine ~0.89 from its centre, while two random centres
    have cosine ~N(0, 1/32): the components are well separated, like places.
    """
    centers = sphere_centers(N_CLUSTERS, DIM, seed=0)
    db, db_labels = sphere_mixture(5000, centers, spread=0.5, seed=1)
    q, q_labels = sphere_mixture(300, centers, spread=0.5, seed=2)
    sims, ids = exact_search(db, q, 10)
    return {"db": db, "db_labels": db_labels, "q": q, "q_labels": q_labels, "sims": sims, "ids": ids}


# --------------------------------------------------------------------------- exact


def test_exact_oracle_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    db = unit(rng.standard_normal((50, 8)))
    q = unit(rng.standard_normal((5, 8)))
    sims, ids = exact_search(db, q, 3)
    full = q @ db.T
    np.testing.assert_array_equal(ids, np.argsort(-full, axis=1)[:, :3])
    np.testing.assert_allclose(sims, np.take_along_axis(full, ids, 1), atol=1e-6)


def test_flat_index_equals_exact_oracle(mixture: dict[str, np.ndarray]) -> None:
    index = build_faiss_index(mixture["db"], "Flat")
    sims, ids = search(index, mixture["q"], 10)
    np.testing.assert_array_equal(ids, mixture["ids"])
    np.testing.assert_allclose(sims, mixture["sims"], atol=1e-5)
    assert sims.dtype == np.float32 and ids.dtype == np.int64


# --------------------------------------------------------------------------- IVF


def test_ivf_with_nprobe_equal_nlist_is_exact(mixture: dict[str, np.ndarray]) -> None:
    index = build_faiss_index(mixture["db"], "IVF64,Flat")
    sims, ids = search(index, mixture["q"], 10, "nprobe=64")
    np.testing.assert_array_equal(ids, mixture["ids"])
    np.testing.assert_allclose(sims, mixture["sims"], atol=1e-5)


@pytest.mark.parametrize("nprobe", [1, 2])
def test_ivf_recall_is_the_share_of_neighbours_in_probed_lists(
    mixture: dict[str, np.ndarray], nprobe: int
) -> None:
    """IVF-Flat ranks exactly within the probed lists, hence (derivation, not calibration):

    - its top-1 is the exact top-1 iff that vector's list is probed, and
    - an exact top-10 vector in a probed list has < 10 better vectors anywhere, so it is in
      the IVF top-10; one in an unprobed list cannot be returned.

    So Recall@1 and the top-10 overlap equal these probed-list shares exactly. On the
    mixture the exact neighbours share the query's component, which k-means with one
    list per component keeps in the query's nearest lists, so the shares are high.
    """
    db, q, exact_ids = mixture["db"], mixture["q"], mixture["ids"]
    assert np.mean(mixture["db_labels"][exact_ids[:, 0]] == mixture["q_labels"]) > 0.99
    index = build_faiss_index(db, "IVF64,Flat")
    _, ids = search(index, q, 10, f"nprobe={nprobe}")

    quantizer = faiss.extract_index_ivf(index).quantizer
    _, probed = quantizer.search(q, nprobe)
    _, db_list = quantizer.search(db, 1)
    in_probed = (db_list[exact_ids, 0][:, :, None] == probed[:, None, :]).any(axis=2)  # (Q, 10)

    assert knn_recall_at_1(ids, exact_ids) == pytest.approx(in_probed[:, 0].mean())
    assert knn_overlap_at_k(ids, exact_ids, 10) == pytest.approx(in_probed.mean())
    assert knn_recall_at_1(ids, exact_ids) >= 0.85  # measured 0.95 (nprobe=1) and 1.0 (2)


def test_ivf_pq_returns_sensible_neighbours(mixture: dict[str, np.ndarray]) -> None:
    db, q = mixture["db"], mixture["q"]
    with pytest.warns(UserWarning, match="recommended"):  # 2,000 < 39 * 256 for the codebooks
        index = build_faiss_index(db, "IVF64,PQ8np", train_sample=2000)
    sims, ids = search(index, q, 10, "nprobe=8")
    assert (ids >= 0).all()
    # The top-1 lies in the query's own component (chance: 1/64) ...
    assert np.mean(mixture["db_labels"][ids[:, 0]] == mixture["q_labels"]) >= 0.95
    # ... its true similarity is close to the best one (PQ distorts, it does not scramble) ...
    true = np.einsum("qd,qkd->qk", q, db[ids])
    assert np.all(mixture["sims"][:, 0] - true[:, 0] < 0.2)
    # ... and the PQ similarity estimates the true inner product.
    assert np.abs(sims - true).mean() < 0.05
    # 8 bytes per 32-d vector lose fine ranking, but the top-10 overlap is far above chance (0.002).
    assert knn_overlap_at_k(ids, mixture["ids"], 10) >= 0.4


def test_refine_restores_the_exact_top1(mixture: dict[str, np.ndarray]) -> None:
    db, q = mixture["db"], mixture["q"]
    with pytest.warns(UserWarning):
        index = build_faiss_index(db, "IVF64,PQ8np,RFlat", train_sample=2000)
    _, ids = search(index, q, 10, "nprobe=8,k_factor_rf=8")
    assert knn_recall_at_1(ids, mixture["ids"]) >= 0.95


def test_pca_ivf_index_takes_nprobe_through_the_transform(mixture: dict[str, np.ndarray]) -> None:
    index = build_faiss_index(mixture["db"], "PCA16,IVF16,Flat")
    assert apply_search_params(index, "nprobe=16,efSearch=64") == {"nprobe": 16.0}
    _, ids = search(index, mixture["q"], 10, None)
    assert np.mean(mixture["db_labels"][ids[:, 0]] == mixture["q_labels"]) >= 0.95


# --------------------------------------------------------------------------- HNSW


def test_hnsw_recall_against_flat(mixture: dict[str, np.ndarray]) -> None:
    """HNSW has no closed-form recall; with efSearch=64 >> k on 5,000 points the beam
    search explores several times more candidates than it returns, and recall is
    expected near 1 (measured 1.0). 0.95 leaves room for graphs built with several
    threads, which are not deterministic."""
    index = build_faiss_index(mixture["db"], "HNSW32")
    _, ids = search(index, mixture["q"], 10, "efSearch=64")
    assert knn_recall_at_1(ids, mixture["ids"]) >= 0.95
    assert knn_overlap_at_k(ids, mixture["ids"], 10) >= 0.95
    assert _hnsw(index).efSearch == 64


# --------------------------------------------------------------------------- k and inputs


def test_k_larger_than_index_is_clipped() -> None:
    rng = np.random.default_rng(0)
    db = unit(rng.standard_normal((7, 8)))
    index = build_faiss_index(db, "Flat")
    sims, ids = search(index, db[:3], 20)
    assert sims.shape == ids.shape == (3, 7)
    assert sorted(ids[0].tolist()) == list(range(7))
    assert np.all(np.diff(sims, axis=1) <= 1e-6)
    np.testing.assert_array_equal(ids[:, 0], [0, 1, 2])


def test_approximate_index_pads_missing_neighbours_with_minus_one() -> None:
    rng = np.random.default_rng(0)
    db = unit(rng.standard_normal((400, 8)))
    index = build_faiss_index(db, "IVF8,Flat")
    sims, ids = search(index, db[:5], 300, "nprobe=1")  # one list holds far fewer than 300
    assert ids.shape == (5, 300)
    missing = ids < 0
    assert missing.any()
    assert np.all(np.isneginf(sims[missing]))
    # padding sits at the end of each row
    assert all(np.all(np.diff(row.astype(int)) >= 0) for row in missing)


def test_single_query_vector_and_bad_inputs() -> None:
    rng = np.random.default_rng(0)
    db = unit(rng.standard_normal((20, 8)))
    index = build_faiss_index(db, "Flat")
    _, ids = search(index, db[3], 2)
    assert ids.shape == (1, 2) and ids[0, 0] == 3
    with pytest.raises(ValueError, match="k must be a positive integer"):
        search(index, db[:2], 0)
    with pytest.raises(ValueError, match="dimension 4, the index expects 8"):
        search(index, db[:2, :4], 1)
    with pytest.raises(ValueError, match="row 1 has norm 2"):
        search(index, db[:2] * np.array([[1.0], [2.0]], dtype=np.float32), 1)


def test_build_refuses_unnormalised_or_nan_descriptors() -> None:
    rng = np.random.default_rng(0)
    db = unit(rng.standard_normal((20, 8)))
    bad = db.copy()
    bad[5] *= 3
    with pytest.raises(ValueError, match=r"L2-normalised.*row 5 has norm 3"):
        build_faiss_index(bad, "Flat")
    bad = db.copy()
    bad[7, 0] = np.nan
    with pytest.raises(ValueError, match="row 7 contains NaN"):
        build_faiss_index(bad, "Flat")
    with pytest.raises(ValueError, match="0 descriptors"):
        build_faiss_index(np.zeros((0, 8), np.float32), "Flat")
    with pytest.raises(ValueError, match="2-D"):
        build_faiss_index(db[0], "Flat")


def test_invalid_factory_string_is_named() -> None:
    with pytest.raises(ValueError, match="IVF8,Bogus"):
        make_index(8, "IVF8,Bogus")


def test_float16_input_and_chunked_add_match_one_float32_add() -> None:
    rng = np.random.default_rng(0)
    db = unit(rng.standard_normal((1000, 16))).astype(np.float16)
    chunked = make_index(16, "Flat")
    add_vectors(chunked, db, chunk_size=97)
    whole = build_faiss_index(db.astype(np.float32), "Flat")
    q = unit(rng.standard_normal((10, 16)))
    np.testing.assert_array_equal(search(chunked, q, 5)[1], search(whole, q, 5)[1])
    assert chunked.ntotal == 1000


# --------------------------------------------------------------------------- training size


def test_too_few_training_vectors_is_a_clear_error() -> None:
    db = unit(np.random.default_rng(0).standard_normal((1000, 16)))
    with pytest.raises(TrainingDataError, match=r"IVF4096 coarse quantizer learns 4096.*1000.*IVF16"):
        build_faiss_index(db, "IVF4096,PQ8")
    with pytest.raises(TrainingDataError, match=r"PQ4x8 codebooks learns 256.*100 training"):
        build_faiss_index(db, "IVF4,PQ4np", train_sample=100)


def test_below_recommended_training_size_warns() -> None:
    db = unit(np.random.default_rng(0).standard_normal((1000, 16)))
    with pytest.warns(UserWarning, match=r"recommended 2496.*IVF16"):
        index = build_faiss_index(db, "IVF64,Flat")
    assert index.ntotal == 1000


def test_training_needs_lists_every_trained_component() -> None:
    needs = training_needs(make_index(32, "OPQ8,IVF128,PQ8"))
    assert [(n.kind, n.centroids) for n in needs] == [("opq", 256), ("ivf", 128), ("pq", 256)]
    assert training_needs(make_index(32, "Flat")) == []
    assert [n.centroids for n in training_needs(make_index(32, "HNSW16,PQ8x4"))] == [16]


def test_train_sample_is_validated() -> None:
    db = unit(np.random.default_rng(0).standard_normal((100, 8)))
    with pytest.raises(ValueError, match="train_sample must be a positive integer"):
        build_faiss_index(db, "IVF2,Flat", train_sample=0)


# --------------------------------------------------------------------------- params


def test_parse_search_params() -> None:
    assert parse_search_params("nprobe=16, efSearch=64") == {"nprobe": 16.0, "efSearch": 64.0}
    assert parse_search_params("quantizer_efSearch=32") == {"quantizer_efSearch": 32.0}
    assert parse_search_params(None) == {} and parse_search_params("") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nprobe", "expected name=value"),
        ("nprobe=abc", "not a number"),
        ("nprobe=0", "nprobe must be >= 1"),
        ("nprobe=1.5", "must be an integer"),
        ("nprobes=16", "did you mean 'nprobe'"),
        ("nprobe=1,nprobe=2", "given twice"),
        ("nprobe=1,,efSearch=2", "empty entry"),
        ("efSearch=nan", "not finite"),
    ],
)
def test_parse_search_params_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_search_params(text)


def test_inapplicable_param_is_ignored_with_a_log_or_refused_when_strict(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faiss_search, "_reported_inapplicable", set())
    index = build_faiss_index(unit(np.random.default_rng(0).standard_normal((10, 8))), "Flat")
    with caplog.at_level(logging.INFO, logger="vgloc.index.faiss_index"):
        assert apply_search_params(index, "nprobe=16") == {}
    assert "'nprobe' does not apply to this index (IndexFlat)" in caplog.text
    with pytest.raises(ValueError, match=r"'nprobe' does not apply to this index \(IndexFlat\)"):
        apply_search_params(index, "nprobe=16", strict=True)
    with pytest.raises(ValueError, match="does not apply"):
        search(index, index.reconstruct_n(0, 1), 1, "efSearch=8", strict=True)


def test_params_are_set_on_ivf_and_hnsw() -> None:
    db = unit(np.random.default_rng(0).standard_normal((500, 8)))
    ivf = build_faiss_index(db, "IVF8,Flat")
    assert apply_search_params(ivf, "nprobe=7,efSearch=64") == {"nprobe": 7.0}
    assert faiss.extract_index_ivf(ivf).nprobe == 7
    hnsw = build_faiss_index(db, "HNSW8")
    assert apply_search_params(hnsw, "nprobe=16,efSearch=99") == {"efSearch": 99.0}
    assert _hnsw(hnsw).efSearch == 99


# --------------------------------------------------------------------------- misc


def test_faiss_threads_restores_the_global_setting() -> None:
    before = faiss.omp_get_max_threads()
    other = 2 if before == 1 else 1
    with faiss_threads(other):
        assert faiss.omp_get_max_threads() == other
    assert faiss.omp_get_max_threads() == before
    with pytest.raises(ValueError, match="num_threads"), faiss_threads(0):
        pass


def test_knn_measures_on_hand_made_rankings() -> None:
    exact = np.array([[0, 1, 2], [3, 4, 5]])
    approx = np.array([[0, 2, 9], [4, 3, -1]])
    assert knn_recall_at_1(approx, exact) == 0.5
    assert knn_overlap_at_k(approx, exact, 3) == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert knn_overlap_at_k(approx, exact, 1) == 0.5
    with pytest.raises(ValueError):
        knn_overlap_at_k(approx, exact, 4)
