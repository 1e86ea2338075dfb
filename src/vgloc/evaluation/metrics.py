"""Registered evaluation metrics: per-domain predictions + ground truth -> numbers.

A metric is a callable ``metric(inputs: MetricInputs) -> dict[str, float]`` registered
in :data:`vgloc.registry.METRICS`. The protocol (:mod:`vgloc.evaluation.protocol`)
computes each requested metric for each query domain; new metrics (accuracy within
1/25/200/750/2500 km for world-scale data, recall at top 1 %) are new registrations,
with no edit to the protocol.

World-scale data (photos anywhere on Earth, the im2gps task) is scored as the
field does there: the share of queries whose predicted position lies within
1 / 25 / 200 / 750 / 2500 km of the truth (street, city, region, country,
continent; Hays & Efros 2008, Vo et al. 2017, GeoCLIP, PROTOCOLS.md section 8) and
the median error in km. :func:`metrics_for` adds these automatically when the
database or any query domain is world-wide (no single UTM frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vgloc.evaluation.recall import recall_at_n
from vgloc.registry import METRICS

__all__ = [
    "DEFAULT_METRICS",
    "KM_THRESHOLDS",
    "WORLD_METRICS",
    "MetricInputs",
    "accuracy_km_of",
    "compute_metrics",
    "is_world_scale",
    "km_key",
    "metrics_for",
]

#: What ``vgloc eval`` reports unless told otherwise.
DEFAULT_METRICS = ("recall", "median_error_m")
#: The im2gps thresholds in km: street, city, region, country, continent.
KM_THRESHOLDS = (1.0, 25.0, 200.0, 750.0, 2500.0)
#: Added to the requested metrics for world-scale data (:func:`metrics_for`).
WORLD_METRICS = ("accuracy_km", "median_error_km")


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


def accuracy_km_of(error_m: np.ndarray, thresholds_km: Sequence[float] = KM_THRESHOLDS) -> dict[float, float]:
    """Share of queries (%) whose error is at most each threshold.

    The distances are great circles on the WGS84 mean-radius sphere
    (:func:`vgloc.geo.errors_m`): no geodesic library is a dependency, and the
    ellipsoidal (geopy) distance GeoCLIP uses differs by at most ~0.5 %, which can
    move a query across a threshold only when its error is within 0.5 % of it.

    Args:
        error_m: (Q,) errors in metres; NaN (no prediction) counts as a miss.
        thresholds_km: the thresholds in km.

    Returns:
        threshold in km -> percent of all Q queries (NaN when Q = 0).
    """
    err = np.asarray(error_m, dtype=np.float64).ravel()
    if err.size == 0:
        return {float(t): float("nan") for t in thresholds_km}
    # NaN <= t is False: a query without a prediction is never within a threshold.
    return {float(t): float(100.0 * np.mean(err <= 1000.0 * t)) for t in thresholds_km}


def km_key(threshold_km: float) -> str:
    """The metric key of one threshold, e.g. ``acc@25km`` (``acc@0.5km`` for fractions)."""
    return f"acc@{threshold_km:g}km"


@METRICS.register(
    "accuracy_km",
    description="share of queries within 1/25/200/750/2500 km of the truth, great circle (%)",
)
def accuracy_km_metric(inputs: MetricInputs) -> dict[str, float]:
    """``{"acc@1km": %, ..., "acc@2500km": %}`` (:func:`accuracy_km_of`)."""
    return {km_key(t): v for t, v in accuracy_km_of(inputs.error_m).items()}


@METRICS.register("median_error_km", description="median distance from predicted to true position (km)")
def median_error_km_metric(inputs: MetricInputs) -> dict[str, float]:
    """``{"median_error_km": km}`` over queries with a known error (NaN when none)."""
    return {"median_error_km": median_error_metric(inputs)["median_error_m"] / 1000.0}


def is_world_scale(*sets: Any) -> bool:
    """True when any set is world-wide: lat/lon only, no single UTM frame (``frame is None``).

    Sets are :class:`~vgloc.data.GeoImageSet` (anything with ``frame`` and ``utm``);
    metric-only sets (UTM metres without lat/lon) are planar, not world-wide.
    """
    for s in sets:
        utm = np.asarray(getattr(s, "utm", np.zeros((0, 2))), dtype=np.float64)
        if getattr(s, "frame", None) is None and utm.size and not np.all(np.isfinite(utm)):
            return True
    return False


def metrics_for(metrics: Sequence[str], *sets: Any, world: bool | None = None) -> tuple[str, ...]:
    """The metrics to compute: ``metrics`` plus :data:`WORLD_METRICS` for world-scale data.

    Args:
        metrics: the requested registered names.
        *sets: the database and query sets (:func:`is_world_scale` decides for None).
        world: True adds the km metrics whatever the data, False never adds them,
            None (default) adds them for world-scale data.

    Returns:
        The names, each once, requested ones first.
    """
    if world is None:
        world = is_world_scale(*sets)
    names = list(dict.fromkeys(metrics))
    if world:
        names += [m for m in WORLD_METRICS if m not in names]
    return check_metric_names(names)


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
