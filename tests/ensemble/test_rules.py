"""The fusion rules on hand-made ranked lists, with expected outputs worked out by hand.

The two lists most tests fuse (one query):

    model A: ids 3, 1, 2   similarities 0.90, 0.80, 0.70
    model B: ids 1, 4, 3   similarities 0.95, 0.85, 0.60
"""

from __future__ import annotations

import numpy as np
import pytest

from vgloc.ensemble import best_similarities, fuse, nif, rrf, sif
from vgloc.registry import ENSEMBLES, UnknownNameError

A_IDS, A_SIMS = np.array([[3, 1, 2]]), np.array([[0.90, 0.80, 0.70]])
B_IDS, B_SIMS = np.array([[1, 4, 3]]), np.array([[0.95, 0.85, 0.60]])


def test_nif_sorts_every_candidate_by_distance_and_keeps_duplicates_at_their_closest() -> None:
    # by similarity: 1 (.95, B), 3 (.90, A), 4 (.85, B), [1 again .80], 2 (.70), [3 again .60]
    assert nif([A_IDS, B_IDS], [A_SIMS, B_SIMS], 4).tolist() == [[1, 3, 4, 2]]
    sims, _ = fuse("nif", [A_IDS, B_IDS], [A_SIMS, B_SIMS], 4)
    # 3 keeps A's 0.90, not B's 0.60; 1 keeps B's 0.95
    np.testing.assert_allclose(sims, [[0.95, 0.90, 0.85, 0.70]], rtol=1e-6)
    assert nif([A_IDS, B_IDS], [A_SIMS, B_SIMS], 2).tolist() == [[1, 3]]  # top-N kept


def test_nif_ties_keep_model_order_then_rank() -> None:
    a, b = np.array([[5, 7]]), np.array([[6, 8]])
    s = np.array([[0.5, 0.4]])
    assert nif([a, b], [s, s], 4).tolist() == [[5, 6, 7, 8]]
    assert nif([b, a], [s, s], 4).tolist() == [[6, 5, 8, 7]]


def test_sif_shared_first_in_the_lead_order_then_the_lead_then_the_others() -> None:
    # shared by both: 3, 1 (A's order); rest of A: 2; rest of B: 4
    assert sif([A_IDS, B_IDS], [A_SIMS, B_SIMS], 4).tolist() == [[3, 1, 2, 4]]
    # B leads: shared 1, 3 (B's order); rest of B: 4; rest of A: 2
    assert sif([A_IDS, B_IDS], [A_SIMS, B_SIMS], 4, lead=1).tolist() == [[1, 3, 4, 2]]
    # with K = the lists' length, as in the published two-model runs, the other model's
    # own candidates fall off the end
    assert sif([A_IDS, B_IDS], [A_SIMS, B_SIMS], 3).tolist() == [[3, 1, 2]]


def test_sif_three_models_shares_means_retrieved_by_all() -> None:
    a, b, c = np.array([[1, 2, 3]]), np.array([[2, 1, 5]]), np.array([[2, 6, 1]])
    s = np.zeros((1, 3))
    # all three: 1, 2 (A's order); rest of A: 3; B's remaining: 5; C's remaining: 6
    assert sif([a, b, c], [s, s, s], 6).tolist() == [[1, 2, 3, 5, 6, -1]]


def test_rrf_sums_reciprocal_ranks_with_k60() -> None:
    # 1: 1/62 + 1/61, 3: 1/61 + 1/63, 4: 1/62, 2: 1/63
    assert rrf([A_IDS, B_IDS], [A_SIMS, B_SIMS], 4).tolist() == [[1, 3, 4, 2]]
    # ranks (1, 3) beat (2, 2) at k = 60 (1/61 + 1/63 > 2/62); 1 and 3 tie exactly and the
    # tie goes to the candidate the first model ranked first
    a, b = np.array([[1, 2, 3]]), np.array([[3, 2, 1]])
    s = np.zeros((1, 3))
    assert rrf([a, b], [s, s], 3).tolist() == [[1, 3, 2]]
    assert rrf([b, a], [s, s], 3).tolist() == [[3, 1, 2]]
    # a large k flattens the ranks: still (1, 3) vs (2, 2), 1/(k+1) + 1/(k+3) > 2/(k+2) for every k
    assert rrf([a, b], [s, s], 3, rrf_k=1000).tolist() == [[1, 3, 2]]


def test_rrf_exact_ties_of_three_models_do_not_depend_on_summation_order() -> None:
    # 7, 8 and 9 each have ranks 1, 2 and 3, from different models: equal scores, so the
    # order is the visiting order (rank 1 of each model, in model order)
    a, b, c = np.array([[7, 9, 8]]), np.array([[8, 7, 9]]), np.array([[9, 8, 7]])
    s = np.zeros((1, 3))
    assert rrf([a, b, c], [s, s, s], 3).tolist() == [[7, 8, 9]]
    assert rrf([c, a, b], [s, s, s], 3).tolist() == [[9, 7, 8]]


@pytest.mark.parametrize("name", ["nif", "sif", "rrf"])
def test_k_larger_than_the_lists_pads_and_empty_slots_are_ignored(name: str) -> None:
    a = np.array([[4, -1, -1], [0, 1, -1]])  # -1: a database smaller than K
    b = np.array([[4, 2, -1], [1, -1, -1]])
    s = np.array([[0.9, np.nan, np.nan], [0.8, 0.7, np.nan]])
    sims, ids = fuse(name, [a, b], [s, s], 5)
    assert ids.shape == (2, 5) and sims.shape == (2, 5)
    assert sorted(ids[0][ids[0] >= 0].tolist()) == [2, 4] and sorted(ids[1][ids[1] >= 0].tolist()) == [0, 1]
    assert (ids[:, 2:] == -1).all() and np.isnan(sims[:, 2:]).all()
    assert ids[0, 0] == 4  # shared, first everywhere, closest


def test_queries_are_fused_independently() -> None:
    a = np.vstack([A_IDS, B_IDS])
    b = np.vstack([B_IDS, A_IDS])
    sa, sb = np.vstack([A_SIMS, B_SIMS]), np.vstack([B_SIMS, A_SIMS])
    assert sif([a, b], [sa, sb], 4).tolist() == [[3, 1, 2, 4], [1, 3, 4, 2]]


def test_best_similarities_take_the_highest_over_models() -> None:
    fused = np.array([[3, 2, -1]])
    out = best_similarities(fused, [A_IDS, B_IDS], [A_SIMS, B_SIMS])
    np.testing.assert_allclose(out[0, :2], [0.90, 0.70], rtol=1e-6)
    assert np.isnan(out[0, 2])


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 models"):
        fuse("nif", [A_IDS], [A_SIMS], 3)
    with pytest.raises(UnknownNameError, match="did you mean"):
        fuse("nifs", [A_IDS, B_IDS], [A_SIMS, B_SIMS], 3)
    with pytest.raises(ValueError, match=r"lead model must be 1\.\.2"):
        fuse("sif", [A_IDS, B_IDS], [A_SIMS, B_SIMS], 3, lead=2)
    with pytest.raises(ValueError, match="same Q"):
        fuse("rrf", [A_IDS, np.vstack([B_IDS, B_IDS])], [A_SIMS, np.vstack([B_SIMS, B_SIMS])], 3)
    with pytest.raises(ValueError, match="k must be"):
        fuse("rrf", [A_IDS, B_IDS], [A_SIMS, B_SIMS], 0)


def test_a_new_fusion_is_a_registration() -> None:
    def lead_only(ids, sims, k, **_):  # type: ignore[no-untyped-def]
        return np.asarray(ids[0])[:, :k]

    ENSEMBLES.register("test-lead-only", lead_only)
    try:
        sims, ids = fuse("test-lead-only", [A_IDS, B_IDS], [A_SIMS, B_SIMS], 2)
        assert ids.tolist() == [[3, 1]]
        np.testing.assert_allclose(sims, [[0.90, 0.95]], rtol=1e-6)  # 1's best is B's
    finally:
        ENSEMBLES.unregister("test-lead-only")
