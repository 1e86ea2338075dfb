"""Local re-ranking inside the evaluation protocol: settings resolved once, one domain at a time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vgloc.evaluation.recall import recall_at_n
from vgloc.evaluation.results import DomainResult, RerankedDomain

__all__ = ["RerankSettings", "rerank_domain"]


@dataclass
class RerankSettings:
    """A resolved re-ranker and how each domain's candidates are re-ranked.

    Attributes:
        reranker: the re-ranker object (resolved once from its spec).
        k: leading candidates re-ordered (clipped to the database size).
        score_k: candidates verified (``max(k, max(sweep))``): verified once, re-used per K.
        sweep_ks: K values of a sweep (empty without one).
        fusion, fusion_weight: fusion with the global similarity.
        cache: the HDF5 feature cache given by the caller (for the settings record).
        progress: progress bars.
    """

    reranker: Any
    k: int
    score_k: int
    sweep_ks: list[int]
    fusion: str | None
    fusion_weight: float
    cache: Any
    progress: bool

    @classmethod
    def create(
        cls,
        spec: Any,
        *,
        num_database: int,
        k: int,
        cache: Any,
        fusion: str | None,
        fusion_weight: float,
        sweep: Sequence[int] | None,
        progress: bool,
    ) -> RerankSettings:
        """Resolve ``spec`` (a string or a built re-ranker) once and clip every K to the database size."""
        from vgloc.rerank import check_sweep_ks, resolve_reranker

        k_used = min(int(k), num_database)
        sweep_ks = [] if sweep is None else check_sweep_ks(sweep, num_database)
        return cls(
            reranker=resolve_reranker(spec, cache=cache),
            k=k_used,
            score_k=max(k_used, *sweep_ks) if sweep_ks else k_used,
            sweep_ks=sweep_ks,
            fusion=fusion,
            fusion_weight=fusion_weight,
            cache=cache,
            progress=progress,
        )

    def close(self) -> None:
        """Close the re-ranker (and its cache file)."""
        self.reranker.close()

    def to_dict(self) -> dict[str, Any]:
        """The settings as recorded in ``results.json``."""
        return {
            "spec": str(self.reranker.spec),
            "k": self.k,
            "retrieved": self.score_k,
            "fusion": self.fusion,
            "fusion_weight": self.fusion_weight if self.fusion else None,
            "cache": None if self.cache is None else str(getattr(self.cache, "path", self.cache)),
            "sweep": self.sweep_ks or None,
        }


def rerank_domain(
    settings: RerankSettings,
    query_paths: Sequence[Path],
    database_paths: Sequence[Path],
    retrieved: DomainResult,
    recall_values: Sequence[int],
) -> RerankedDomain:
    """Verify one domain's top ``score_k`` once; re-order its top ``k`` (and each sweep K)."""
    from vgloc.rerank import rerank_sweep, score_candidates

    scored = score_candidates(
        query_paths,
        database_paths,
        retrieved.predictions,
        retrieved.similarities,
        settings.reranker,
        k=settings.score_k,
        fusion=settings.fusion,
        fusion_weight=settings.fusion_weight,
        # The next domain searches the same database: keep its local features in memory.
        keep_features=True,
        progress=settings.progress,
    )
    rr = scored.rerank(min(settings.k, scored.k))
    assert rr.similarities is not None  # similarities were passed in
    sweep = (
        rerank_sweep(scored, settings.sweep_ks, retrieved.positives, recall_values)
        if settings.sweep_ks
        else []
    )
    return RerankedDomain(
        spec=scored.spec,
        k=rr.k,
        fusion=settings.fusion,
        recalls=recall_at_n(rr.predictions, retrieved.positives, recall_values),
        predictions=rr.predictions,
        similarities=rr.similarities,
        scores=rr.scores,
        inliers=rr.inliers,
        ms_per_query=rr.ms_per_query,
        database_ms_per_image=scored.database_ms_per_image,
        sweep=sweep,
    )
