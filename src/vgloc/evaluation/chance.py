"""What a report needs besides recall: the chance level, and what weights were evaluated.

Recall@N alone does not tell a reader whether 40 % is good: on a small database where
every query has many positives, random retrieval scores high too. The chance level is
the Recall@N that a uniformly random ranking of the database would score in
expectation, for the same positives, so the report can show both side by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["chance_recall", "weights_label"]


def chance_recall(
    num_database: int, positives: Sequence[np.ndarray], recall_values: Iterable[int]
) -> dict[int, float]:
    """Expected Recall@N (%) of a uniformly random ranking of the database.

    A query with ``P`` positives among ``M`` database images is found in the top ``N``
    of a random ranking unless all ``N`` draws (without replacement) miss them:
    ``1 - C(M - P, N) / C(M, N) = 1 - prod_{i<N} (M - P - i) / (M - i)``
    (hypergeometric). Queries without positives score 0, as in Recall@N itself.

    Args:
        num_database: ``M``, the database size.
        positives: per query, the database indices within the threshold (Q arrays).
        recall_values: the N to report.

    Returns:
        ``{N: expected Recall@N in percent}`` (0 for an empty query set).
    """
    if num_database < 1:
        raise ValueError(f"the database must hold at least one image, got {num_database}")
    counts = np.array([len(np.unique(p)) for p in positives], dtype=np.float64)
    out: dict[int, float] = {}
    for n in recall_values:
        if n < 1:
            raise ValueError(f"N must be >= 1, got {n}")
        draws = min(int(n), num_database)
        i = np.arange(draws, dtype=np.float64)
        # prod over the draws of (M - P - i) / (M - i), clipped at 0 once the misses run out.
        miss = np.prod(np.clip((num_database - counts[:, None] - i) / (num_database - i), 0.0, 1.0), axis=1)
        out[int(n)] = float(100.0 * np.mean(1.0 - miss)) if len(counts) else 0.0
    return out


def weights_label(model_spec: str, settings: Mapping[str, Any]) -> str:
    """Which weights an evaluation used, in words (trained, ImageNet-pretrained or random).

    Args:
        model_spec: the describer's spec.
        settings: :attr:`vgloc.evaluation.EvalResult.settings` (``checkpoint``,
            ``pretrained``, ``database``).
    """
    checkpoint = settings.get("checkpoint")
    if checkpoint:
        return f"trained weights from {checkpoint}"
    if settings.get("pretrained"):
        return "ImageNet-pretrained backbone; the aggregation head is not trained for places"
    from vgloc.describers.classical import ClassicalDescriber

    if ClassicalDescriber.claims(model_spec):
        return "a hand-crafted descriptor (no learned weights)"
    # The settings do not say which weights an index recorded, hence the hedge.
    return (
        "no checkpoint and no pretrained backbone given: random initialisation (an untrained "
        "baseline; compare with the chance level) unless an index supplied its own weights"
    )
