"""Triplet settings that follow the data: the cache refresh and the epoch on few training queries.

A VG-benchmark cache refresh draws ``cache_refresh_rate`` (1000) distinct training
queries, and an epoch is ``queries_per_epoch`` (5000, five refreshes). With fewer
queries that have a positive within ``pos_radius_m`` than one refresh needs (the
synthetic city has 9 to 342), the recipe cannot run. :func:`plan_triplet` then keeps
the VG benchmark's shape, five refreshes per epoch, inside one pass over the
trainable queries: ``cache_refresh_rate`` becomes the largest multiple of
``batch_size`` that five refreshes fit in, and ``queries_per_epoch`` that many
refreshes (fewer when even one batch per refresh does not fit five times). A
``batch_size`` larger than the trainable queries shrinks to fit. Keys set
explicitly stay as they are (a fixed ``queries_per_epoch`` gets the largest refresh
that divides it). When one refresh fits, nothing changes.
"""

from __future__ import annotations

from vgloc.config import TrainConfig
from vgloc.training.adapt import Adaptation, AdaptationPlan

__all__ = ["plan_triplet"]


def plan_triplet(cfg: TrainConfig, trainable: int, queries: int, world_size: int = 1) -> AdaptationPlan:
    """Propose triplet settings for ``trainable`` queries with a positive (of ``queries``).

    Args:
        cfg: The configuration (explicit keys are never proposed).
        trainable: Training queries with a database image within ``pos_radius_m``.
        queries: All training queries.
        world_size: Processes; the batch stays a multiple of it.

    Returns:
        The proposals and a summary of the epoch.
    """
    t = cfg.triplet

    def free(key: str) -> bool:
        return not cfg.is_explicit(f"triplet.{key}")

    B, rate, qpe = t.batch_size, t.cache_refresh_rate, t.queries_per_epoch
    have = f"{trainable} of {queries} training queries have a positive within {t.pos_radius_m:g} m"
    if rate <= trainable:
        return AdaptationPlan(summary=_describe(qpe, rate, B, have))
    changes: list[Adaptation] = []
    why = f"a cache refresh draws {rate} distinct queries, but only {have}"
    if trainable < B and free("batch_size"):
        B = trainable - trainable % world_size
        if world_size > B:
            return AdaptationPlan()  # not even one query per process: the trainer's error explains
        changes.append(Adaptation("triplet.batch_size", B, why))
    refreshes = max(1, qpe // max(rate, 1))
    if free("cache_refresh_rate") and free("queries_per_epoch"):
        new_rate = max(B, trainable // refreshes // B * B)
        if new_rate > trainable:
            return AdaptationPlan(changes)
        new_qpe = new_rate * max(1, min(refreshes, trainable // new_rate))
    elif free("cache_refresh_rate"):
        divisors = [d for d in range(trainable, B - 1, -1) if qpe % d == 0]
        if not divisors:
            return AdaptationPlan(changes)
        new_rate, new_qpe = divisors[0], qpe
    else:
        return AdaptationPlan(changes)
    shape = (
        f"{why}: {new_qpe // new_rate} refresh(es) of {new_rate} queries per epoch "
        f"(VG benchmark: {refreshes} of {rate}), within one pass over them"
    )
    changes.append(Adaptation("triplet.cache_refresh_rate", new_rate, shape))
    if new_qpe != qpe:
        changes.append(Adaptation("triplet.queries_per_epoch", new_qpe, shape))
    return AdaptationPlan(changes, _describe(new_qpe, new_rate, B, have))


def _describe(qpe: int, rate: int, batch: int, have: str) -> str:
    refreshes = qpe // max(rate, 1)
    steps = refreshes * (rate // max(batch, 1))
    return f"{refreshes} refresh(es) of {rate} queries per epoch, {steps} steps of {batch} queries; {have}"
