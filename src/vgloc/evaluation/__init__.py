"""Evaluation: the protocol, its registered metrics, results and reports.

:func:`evaluate` (also :func:`vgloc.evaluate` and ``vgloc eval``) and training
validation run the same :func:`evaluate_sets`.
"""

from __future__ import annotations

from vgloc.evaluation.ensemble import evaluate_ensemble
from vgloc.evaluation.metrics import DEFAULT_METRICS, MetricInputs, compute_metrics
from vgloc.evaluation.protocol import evaluate, evaluate_sets, load_sets
from vgloc.evaluation.recall import DEFAULT_RECALL_VALUES, DEFAULT_THRESHOLD_M, recall_at_n
from vgloc.evaluation.results import DomainResult, EvalResult, RerankedDomain

__all__ = [
    "DEFAULT_METRICS",
    "DEFAULT_RECALL_VALUES",
    "DEFAULT_THRESHOLD_M",
    "DomainResult",
    "EvalResult",
    "MetricInputs",
    "RerankedDomain",
    "compute_metrics",
    "evaluate",
    "evaluate_ensemble",
    "evaluate_sets",
    "load_sets",
    "recall_at_n",
]
