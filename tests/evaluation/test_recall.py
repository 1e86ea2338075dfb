"""Recall@N against hand-derived answers, including a query with no positive."""

import numpy as np
import pytest

from vgloc.evaluation.recall import count_without_positives, first_correct_rank, recall_at_n


def _five_query_case() -> tuple[np.ndarray, list[np.ndarray]]:
    # Rankings of 5 queries over a 10-image database (best first).
    predictions = np.array(
        [
            [4, 1, 2, 3, 0],  # q0: positive 4 at rank 0 -> correct at 1
            [9, 8, 7, 2, 6],  # q1: positive 2 at rank 3 -> correct at 5, not 1
            [0, 1, 2, 3, 5],  # q2: positive 7 never retrieved -> never correct
            [5, 6, 0, 1, 3],  # q3: positives {6, 3}: first at rank 1 -> correct at 5
            [1, 2, 3, 4, 5],  # q4: no positive at all -> failure, still in denominator
        ]
    )
    positives = [
        np.array([4]),
        np.array([2]),
        np.array([7]),
        np.array([3, 6]),
        np.array([], dtype=int),
    ]
    return predictions, positives


def test_recall_on_hand_made_ranking() -> None:
    predictions, positives = _five_query_case()
    assert first_correct_rank(predictions, positives).tolist() == [0, 3, -1, 1, -1]
    # R@1: only q0 -> 1/5; R@2: q0, q3 -> 2/5; R@5: q0, q1, q3 -> 3/5.
    assert recall_at_n(predictions, positives, (1, 2, 5)) == {1: 20.0, 2: 40.0, 5: 60.0}
    assert count_without_positives(positives) == 1


def test_empty_slots_are_never_correct() -> None:
    predictions = np.array([[-1, 3]])
    assert recall_at_n(predictions, [np.array([3])], (1, 2)) == {1: 0.0, 2: 100.0}
    # -1 must not match a "positive" of -1 either.
    assert recall_at_n(predictions, [np.array([-1])], (1, 2)) == {1: 0.0, 2: 0.0}


def test_recall_is_monotonic_in_n() -> None:
    rng = np.random.default_rng(0)
    predictions = np.stack([rng.permutation(50)[:20] for _ in range(40)])
    positives = [rng.choice(50, size=rng.integers(0, 4), replace=False) for _ in range(40)]
    r = recall_at_n(predictions, positives, (1, 5, 10, 20))
    assert r[1] <= r[5] <= r[10] <= r[20]


def test_bad_inputs_are_refused() -> None:
    predictions, positives = _five_query_case()
    with pytest.raises(ValueError, match="Recall@20 needs at least 20"):
        recall_at_n(predictions, positives, (1, 20))
    with pytest.raises(ValueError, match="5 prediction rows but 4"):
        recall_at_n(predictions, positives[:4], (1,))
    with pytest.raises(ValueError, match="positive integers"):
        recall_at_n(predictions, positives, (0,))


def _first_correct_rank_loop(predictions: np.ndarray, positives: list[np.ndarray]) -> np.ndarray:
    """The former implementation (a Python loop per query), kept as the reference."""
    ranks = np.full(len(predictions), -1, dtype=np.int64)
    for q, (row, pos) in enumerate(zip(predictions, positives, strict=True)):
        hits = np.flatnonzero(np.isin(row, pos) & (row >= 0))
        if hits.size:
            ranks[q] = hits[0]
    return ranks


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_ranks_equal_the_loop_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_q, n_db, k = 500, 300, 20
    predictions = rng.integers(-1, n_db, size=(n_q, k))  # includes -1 empty slots and repeats
    positives = [rng.integers(-1, n_db, size=rng.integers(0, 12)) for _ in range(n_q)]
    positives[0] = np.zeros(0, dtype=np.int64)
    positives[1] = np.array([n_db + 50])  # a positive beyond every prediction
    expected = _first_correct_rank_loop(predictions, positives)
    assert np.array_equal(first_correct_rank(predictions, positives), expected)
    found = expected >= 0
    want = {n: float(100.0 * np.mean(found & (expected < n))) for n in (1, 5, 10, 20)}
    assert recall_at_n(predictions, positives, (1, 5, 10, 20)) == want


def test_vectorised_ranks_take_lists_and_empty_inputs() -> None:
    assert first_correct_rank(np.array([[2, 1]]), [[1]]).tolist() == [1]
    assert first_correct_rank(np.zeros((2, 0), dtype=int), [[1], []]).tolist() == [-1, -1]
    assert first_correct_rank(np.array([[0, 1]]), [np.array([], dtype=int)]).tolist() == [-1]
