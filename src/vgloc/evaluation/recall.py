"""Recall@N with the field's protocol (VG benchmark test.py, also CosPlace, MixVPR).

A query is correct at N when any of its top-N retrieved database images is a
positive (a database image within the distance threshold, 25 m in UTM metres
by default). R@N is the share of *all* queries, in percent: queries that have
no positive at all stay in the denominator, so they can only lower recall,
and :func:`count_without_positives` reports how many there are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_RECALL_VALUES = (1, 5, 10, 20)
DEFAULT_THRESHOLD_M = 25.0


def first_correct_rank(predictions: np.ndarray, positives: Sequence[np.ndarray]) -> np.ndarray:
    """Rank (0-based) of the first positive in each query's ranking, or -1 if none.

    Args:
        predictions: (Q, K) database indices, best first; -1 marks an empty slot.
        positives: Q arrays of positive database indices.

    Returns:
        (Q,) int64 ranks.
    """
    predictions = np.asarray(predictions)
    if predictions.ndim != 2:
        raise ValueError(f"predictions must be (Q, K), got shape {predictions.shape}")
    if len(positives) != len(predictions):
        raise ValueError(f"{len(predictions)} prediction rows but {len(positives)} positive lists")
    n_q, k = predictions.shape
    ranks = np.full(n_q, -1, dtype=np.int64)
    if n_q == 0 or k == 0:
        return ranks
    # Vectorised membership test: every (query, positive) pair becomes one int64 key
    # q * width + db, sorted once; each prediction slot is then looked up with one
    # np.searchsorted over the whole (Q, K) array, with no Python loop per query.
    pos_arrays = [np.asarray(p).astype(np.int64, copy=False).ravel() for p in positives]
    counts = np.fromiter((len(a) for a in pos_arrays), dtype=np.int64, count=n_q)
    if counts.sum() == 0:
        return ranks
    pos_flat = np.concatenate(pos_arrays)
    pos_query = np.repeat(np.arange(n_q, dtype=np.int64), counts)
    keep = pos_flat >= 0  # a negative "positive" can never match a valid (>= 0) slot
    pos_flat, pos_query = pos_flat[keep], pos_query[keep]
    if pos_flat.size == 0:
        return ranks
    pred = predictions.astype(np.int64, copy=False)
    width = int(max(pos_flat.max(), pred.max())) + 1
    keys = np.sort(pos_query * width + pos_flat)
    valid = pred >= 0
    wanted = np.arange(n_q, dtype=np.int64)[:, None] * width + np.where(valid, pred, 0)
    at = np.searchsorted(keys, wanted)
    hit = keys[np.minimum(at, keys.size - 1)] == wanted
    hit &= valid
    any_hit = hit.any(axis=1)
    ranks[any_hit] = hit[any_hit].argmax(axis=1)
    return ranks


def recall_at_n(
    predictions: np.ndarray,
    positives: Sequence[np.ndarray],
    recall_values: Sequence[int] = DEFAULT_RECALL_VALUES,
) -> dict[int, float]:
    """Recall@N in percent for each N.

    Args:
        predictions: (Q, K) database indices ranked best first, K >= max(recall_values).
        positives: Q arrays of positive database indices (may be empty).
        recall_values: the N values.

    Returns:
        ``{N: recall_percent}``, in the order of ``recall_values``.

    Example:
        >>> recall_at_n(np.array([[3, 1], [0, 2]]), [np.array([1]), np.array([5])], (1, 2))
        {1: 0.0, 2: 50.0}
    """
    predictions = np.asarray(predictions)
    if not recall_values or any(int(n) < 1 for n in recall_values):
        raise ValueError(f"recall values must be positive integers, got {list(recall_values)}")
    if len(predictions) == 0:
        raise ValueError("no queries to evaluate")
    if predictions.ndim == 2 and max(recall_values) > predictions.shape[1]:
        raise ValueError(
            f"Recall@{max(recall_values)} needs at least {max(recall_values)} predictions per query, "
            f"got {predictions.shape[1]}"
        )
    ranks = first_correct_rank(predictions, positives)
    found = ranks >= 0
    return {int(n): float(100.0 * np.mean(found & (ranks < n))) for n in recall_values}


def count_without_positives(positives: Sequence[np.ndarray]) -> int:
    """How many queries have no positive at all (they count as failures in R@N)."""
    return int(sum(len(p) == 0 for p in positives))
