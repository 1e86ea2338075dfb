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
    ranks = np.full(len(predictions), -1, dtype=np.int64)
    for q, (row, pos) in enumerate(zip(predictions, positives, strict=True)):
        hits = np.flatnonzero(np.isin(row, pos) & (row >= 0))
        if hits.size:
            ranks[q] = hits[0]
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
