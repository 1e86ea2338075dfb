"""Registered evaluation metrics: per-domain predictions + ground truth -> numbers.

A metric is a callable ``metric(inputs: MetricInputs) -> dict[str, float]`` registered
in :data:`vgloc.registry.METRICS`. The protocol (:mod:`vgloc.evaluation.protocol`)
computes each requested metric for each query domain; new metrics (accuracy within
1/25/200/750/2500 km for world-scale data, recall at top 1 %) are new registrations,
with no edit to the protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vgloc.evaluation.recall import recall_at_n
from vgloc.registry import METRICS

__all__ = ["DEFAULT_METRICS", "MetricInputs", "compute_metrics"]

#: What ``vgloc eval`` reports unless told otherwise.
DEFAULT_METRICS = ("recall", "median_error_m")


@dataclass
class MetricInputs:
    """Everything a metric may look at for one query domain.

    Attributes:
        ranked_ids: (Q, K) database indices, best first (-1: empty slot).
        positives: Q arrays of database indices within ``threshold_m`` of each query.
        error_m: (Q,) distance in metres from each predicted position to the truth
            (NaN where either is unknown).
        recall_values: the N of Recall@N.
        threshold_m: the positive radius in metres.
    """

    ranked_ids: np.ndarray
    positives: Sequence[np.ndarray]
    error_m: np.ndarray
    recall_values: tuple[int, ...]
    threshold_m: float


@METRICS.register("recall", description="Recall@N: share of queries with a positive in their top N (%)")
def recall_metric(inputs: MetricInputs) -> dict[str, float]:
    """``{"R@N": %}`` for each N (the field's protocol, :mod:`vgloc.evaluation.recall`)."""
    recalls = recall_at_n(inputs.ranked_ids, inputs.positives, inputs.recall_values)
    return {f"R@{n}": v for n, v in recalls.items()}


@METRICS.register("median_error_m", description="median distance from predicted to true position (m)")
def median_error_metric(inputs: MetricInputs) -> dict[str, float]:
    """``{"median_error_m": m}`` over queries with a known error (NaN when none)."""
    err = np.asarray(inputs.error_m, dtype=np.float64)
    err = err[np.isfinite(err)]
    return {"median_error_m": float(np.median(err)) if err.size else float("nan")}


def compute_metrics(names: Sequence[str], inputs: MetricInputs) -> dict[str, float]:
    """Every metric in ``names`` on ``inputs``, merged into one dict."""
    out: dict[str, float] = {}
    for name in names:
        out.update(METRICS.get(name)(inputs))
    return out


def check_metric_names(names: Sequence[str]) -> tuple[str, ...]:
    """The names, each checked against the registry (unknown names list close matches)."""
    for name in names:
        METRICS.entry(name)
    return tuple(names)
