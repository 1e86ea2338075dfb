"""The one re-ranking loop: score each query's top K once, re-order for any K up to it.

Evaluation, localisation and the benchmarks all re-rank through here:

1. :func:`score_candidates` resolves the re-ranker once (a spec string is parsed by
   :func:`~vgloc.rerank.resolve_reranker`; a built re-ranker is used as is), lets it
   prepare the database, then per query times its own preparation
   (:meth:`~vgloc.rerank.base.BaseReranker.prepare_query`) and the scoring of each of
   its leading ``k`` candidates (:meth:`~vgloc.rerank.base.BaseReranker.score`),
   keeping per pair the local score, the inlier count and the time;
2. :meth:`CandidateScores.rerank` re-orders the first ``K <= k`` candidates by those
   scores (optionally fused with the global similarity, :mod:`vgloc.rerank.fusion`)
   without scoring anything again.

:func:`rerank_predictions` is the same loop followed by the re-ordering at ``k``.

Timing (``ms_per_query``). Database preparation (for the local-feature re-ranker:
extracting the database's features into memory or the HDF5
:class:`~vgloc.local.FeatureCache`) happens before the clock starts, as a deployment
does it offline; it is reported separately per image. A query's time at K is then
measured directly: its own preparation plus the measured scoring time of its first K
candidates; the reported figure is the mean over queries.

Example:
    >>> scores = score_candidates(q_paths, db_paths, preds, sims, "rootsift+mnn+ransac", k=100)
    >>> top100 = scores.rerank(100)          # new order, scores, inliers, ms/query
    >>> top10 = scores.rerank(10)            # no new matching
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vgloc.rerank.base import BaseReranker
from vgloc.rerank.fusion import FUSIONS, check_fusion, order_by_scores
from vgloc.rerank.resolve import resolve_reranker

__all__ = [
    "CandidateScores",
    "Reranked",
    "check_predictions",
    "rerank_predictions",
    "score_candidates",
]

log = logging.getLogger(__name__)


class Reranked(NamedTuple):
    """Candidates re-ordered by a re-ranker's scores (:meth:`CandidateScores.rerank`).

    Attributes:
        predictions: (Q, W) int64 database indices, best first: the first ``k``
            re-ordered, the rest in retrieval order; -1 (empty slots) at the end of the head.
        similarities: (Q, W) float64 global similarities aligned with ``predictions``
            (None when none were given).
        scores: (Q, W) float64 ranking scores aligned with ``predictions`` (the fused
            score with fusion); NaN beyond ``k`` and for empty slots.
        inliers: (Q, W) int64 inlier counts aligned with ``predictions``; -1 beyond
            ``k`` and for empty slots.
        k: how many leading candidates were re-ordered.
        ms_per_query: the mean time to re-rank ``k`` candidates of one query (ms).
    """

    predictions: np.ndarray
    similarities: np.ndarray | None
    scores: np.ndarray
    inliers: np.ndarray
    k: int
    ms_per_query: float


@dataclass
class CandidateScores:
    """A re-ranker's scores of each query's leading candidates, kept in retrieval order.

    Built by :func:`score_candidates`; :meth:`rerank` turns it into a new order for
    any ``K <= k``.

    Attributes:
        spec: the canonical spec of the re-ranker that scored the pairs.
        predictions: (Q, W) int64 retrieved database indices, best first (-1 = empty).
        similarities: (Q, W) float64 global similarities aligned with ``predictions``, or None.
        k: how many leading columns were scored (``k <= W``).
        local: (Q, k) float64 score of each pair (for the local-feature re-ranker, its
            verification score); NaN for empty slots.
        inliers: (Q, k) int64 inlier count of each pair (-1 for empty slots, and where
            the re-ranker counts none).
        pair_ms: (Q, k) float64 time to score each pair in ms (match and verify, for the
            local-feature re-ranker); NaN for empty slots.
        query_ms: (Q,) float64 time of the re-ranker's per-query preparation in ms (the
            query's feature extraction; next to nothing for a detector-free matcher).
            From the second query on, the part of it not overlapped with the previous
            query's scoring (:meth:`~vgloc.rerank.base.BaseReranker.prefetch_query`).
        database_images: how many distinct database images were prepared (their
            features extracted or read) before timing started.
        database_ms_per_image: mean time to prepare one of them, ms; NaN when none were
            prepared up front.
        fusion: None (local score alone), ``"zscore"`` or ``"linear"`` (see
            :func:`~vgloc.rerank.fuse_scores`); applied per query over the re-ordered head.
        fusion_weight: the weight of the global similarity in the fusion.
    """

    spec: str
    predictions: np.ndarray
    similarities: np.ndarray | None
    k: int
    local: np.ndarray
    inliers: np.ndarray
    pair_ms: np.ndarray
    query_ms: np.ndarray
    database_images: int = 0
    database_ms_per_image: float = float("nan")
    fusion: str | None = None
    fusion_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be None, 'zscore' or 'linear', got {self.fusion!r}")
        if self.fusion is not None and self.similarities is None:
            raise ValueError(f"fusion={self.fusion!r} needs the global similarities")

    @property
    def num_queries(self) -> int:
        """Q."""
        return int(self.predictions.shape[0])

    def _check_k(self, k: int | None) -> int:
        if k is None:
            return self.k
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"K must be a positive integer, got {k!r}")
        if k > self.k:
            raise ValueError(f"K={k} exceeds the {self.k} candidates that were scored; score more first")
        return int(k)

    def ms_per_query(self, k: int | None = None) -> float:
        """Mean time to re-rank the first ``k`` candidates of a query, in ms.

        Measured, not extrapolated: each query's feature extraction plus the measured
        match-and-verify time of its first ``k`` candidates, averaged over queries.

        Args:
            k: the number of candidates (default: all scored).

        Returns:
            Milliseconds per query (0 when there are no queries).
        """
        k = self._check_k(k)
        if self.num_queries == 0:
            return 0.0
        per_query = self.query_ms + np.nansum(self.pair_ms[:, :k], axis=1)
        return float(per_query.mean())

    def rerank(self, k: int | None = None) -> Reranked:
        """Re-order the first ``k`` candidates of every query by their scores.

        The order is a stable sort of the scores, descending (ties keep the retrieval
        order); the candidates beyond ``k`` keep their retrieval order; empty slots
        (-1) go to the end of the head. Only the first ``k`` candidates' scores are
        used, also for the z-normalisation of ``"zscore"`` fusion.

        Args:
            k: how many leading candidates to re-order (default: all scored).

        Returns:
            A :class:`Reranked`.

        Shape:
            predictions, similarities, scores, inliers: (Q, W), as :attr:`predictions`.
        """
        k = self._check_k(k)
        new = self.predictions.copy()
        sims = None if self.similarities is None else self.similarities.copy()
        scores = np.full(new.shape, np.nan)
        inliers = np.full(new.shape, -1, np.int64)
        for q in range(self.num_queries):
            head = self.predictions[q, :k]
            valid = np.flatnonzero(head >= 0)
            empty = np.flatnonzero(head < 0)
            order, s = order_by_scores(
                self.local[q, valid],
                None if self.similarities is None else self.similarities[q, valid],
                self.fusion,
                self.fusion_weight,
            )
            perm = np.concatenate([valid[order], empty])
            new[q, :k] = head[perm]
            if sims is not None and self.similarities is not None:
                sims[q, :k] = self.similarities[q, perm]
            scores[q, : len(valid)] = s[order]
            inliers[q, : len(valid)] = self.inliers[q, valid[order]]
        return Reranked(new, sims, scores, inliers, k, self.ms_per_query(k))


def score_candidates(
    query_paths: Sequence[str | os.PathLike[str]],
    database_paths: Sequence[str | os.PathLike[str]],
    predictions: np.ndarray,
    similarities: np.ndarray | None = None,
    spec: str | BaseReranker = "rootsift+mnn+ransac",
    k: int = 100,
    cache: Any = None,
    *,
    fusion: str | None = None,
    fusion_weight: float = 0.5,
    memory_budget_mb: float = 2048.0,
    keep_features: bool = False,
    progress: bool = False,
    **reranker_options: Any,
) -> CandidateScores:
    """Score each query's top-``k`` retrieved candidates once, keeping scores and times.

    Args:
        query_paths: Q query images.
        database_paths: the database images that ``predictions`` index.
        predictions: (Q, W) int database indices, best first (-1 marks an empty slot).
        similarities: (Q, W) global similarities aligned with ``predictions`` (higher is
            more similar); needed for fusion, and carried along otherwise.
        spec: a built re-ranker (a :class:`~vgloc.rerank.base.BaseReranker`, used as is
            and left open), or a spec string (``rootsift+mnn+ransac``, ...), resolved
            here with :func:`~vgloc.rerank.resolve_reranker` and closed at the end.
        k: how many leading candidates to score; clipped to W.
        cache: an HDF5 feature cache (path or :class:`~vgloc.local.FeatureCache`) when
            ``spec`` is a string.
        fusion: None (default: the local score alone, as To-Match), ``"zscore"`` or
            ``"linear"``. None with a built re-ranker takes the re-ranker's own.
        fusion_weight: weight of the global similarity in the fusion.
        memory_budget_mb: memory the re-ranker may use to hold prepared database data
            (local features) for the run; beyond it they are read from the HDF5 cache.
        keep_features: with a built re-ranker, leave what it prepared (the database
            features in memory) for a following call, e.g. the next query domain of an
            evaluation; by default :meth:`~vgloc.rerank.base.BaseReranker.release`
            gives it back.
        progress: show progress bars.
        **reranker_options: more re-ranker arguments when ``spec`` is a string
            (``extractor_options``, ``verifier_options``, ``cache_queries``, ...).

    Returns:
        The :class:`CandidateScores` (call :meth:`~CandidateScores.rerank` for a new order).

    Raises:
        ValueError: malformed predictions or similarities, ``k < 1``, a bad spec (the
            message lists the valid parts), or fusion without similarities.
    """
    preds, sims = check_predictions(query_paths, database_paths, predictions, similarities)
    q, width = preds.shape
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = min(int(k), width)

    own = not isinstance(spec, BaseReranker)
    if isinstance(spec, BaseReranker) and fusion is None:
        # A caller's re-ranker lends its own fusion when none is given.
        fusion, fusion_weight = spec.fusion, spec.fusion_weight
    check_fusion(fusion, fusion_weight)
    if fusion is not None and sims is None:
        raise ValueError(f"fusion={fusion!r} needs the global similarities")
    # Fusion is applied per K by CandidateScores.rerank, on the raw scores: the re-ranker
    # only scores. A spec string is parsed here, once, into the object used below.
    reranker = resolve_reranker(spec, cache, **reranker_options)
    if fusion is not None and getattr(reranker, "exact_top", None) is not None:
        if own:
            reranker.close()
        raise ValueError(
            f"fusion={fusion!r} needs every candidate's score, but the re-ranker's early exit "
            "(exact_top) leaves some unscored; use one or the other"
        )

    preds = preds.astype(np.int64)
    local = np.full((q, k), np.nan)
    inliers = np.full((q, k), -1, np.int64)
    pair_ms = np.full((q, k), np.nan)
    query_ms = np.zeros(q)
    try:
        head = preds[:, :k]
        unique = np.unique(head[head >= 0])
        prepared = reranker.prepare(
            [Path(database_paths[i]) for i in unique],
            num_queries=q,
            memory_budget_mb=memory_budget_mb,
            progress=progress,
        )
        from threadpoolctl import threadpool_limits
        from tqdm import tqdm

        # One pair's descriptor GEMM is tiny (~1k x 1k x 128): multithreaded BLAS only adds
        # synchronisation, which costs up to 10x on a busy machine, so pairs run single-threaded.
        with threadpool_limits(limits=1, user_api="blas"):
            for qi in tqdm(range(q), desc=f"re-ranking ({reranker.spec})", disable=not progress):
                qpath = Path(query_paths[qi])
                t0 = time.perf_counter()
                reranker.prepare_query(qpath)
                query_ms[qi] = 1000.0 * (time.perf_counter() - t0)
                cols = np.flatnonzero(head[qi] >= 0)
                if qi + 1 < q:
                    # The next query's features are extracted while this one is matched.
                    reranker.prefetch_query(Path(query_paths[qi + 1]))
                t0 = time.perf_counter()
                pairs = reranker.score(qpath, [Path(database_paths[i]) for i in head[qi, cols]])
                elapsed = 1000.0 * (time.perf_counter() - t0)
                local[qi, cols] = pairs.scores
                inliers[qi, cols] = pairs.inliers
                # A re-ranker that scores the K pairs jointly reports no per-pair times:
                # each pair gets an equal share of the measured time.
                pair_ms[qi, cols] = pairs.ms if pairs.ms is not None else elapsed / max(len(cols), 1)
    finally:
        if own:
            reranker.close()
        elif not keep_features:
            # Give back the memory this run borrowed from a caller's re-ranker.
            reranker.release()
    return CandidateScores(
        spec=str(reranker.spec),
        predictions=preds,
        similarities=sims,
        k=k,
        local=local,
        inliers=inliers,
        pair_ms=pair_ms,
        query_ms=query_ms,
        database_images=prepared.images,
        database_ms_per_image=prepared.ms_per_image,
        fusion=fusion,
        fusion_weight=float(fusion_weight),
    )


def rerank_predictions(
    query_paths: Sequence[str | os.PathLike[str]],
    database_paths: Sequence[str | os.PathLike[str]],
    predictions: np.ndarray,
    similarities: np.ndarray | None = None,
    spec: str | BaseReranker = "rootsift+mnn+ransac",
    k: int = 100,
    cache: Any = None,
    *,
    progress: bool = False,
    **reranker_options: Any,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Re-rank the top-``k`` retrieved database images of every query (score, then re-order at ``k``).

    The same loop as :func:`score_candidates` followed by :meth:`CandidateScores.rerank`
    at ``k``, in the shape this function always returned.

    Args:
        query_paths: Q query images.
        database_paths: the database images that ``predictions`` index.
        predictions: (Q, K) int database indices, best first (-1 marks an empty slot,
            which stays at the end).
        similarities: (Q, K) global similarities aligned with ``predictions`` (higher is
            more similar; pass ``-distance`` for L2 distances); needed only for fusion.
        spec: a spec string or a built re-ranker (whose own fusion then applies).
        k: how many leading candidates to re-rank (100, as To-Match and Patch-NetVLAD);
            columns beyond ``k`` keep their order.
        cache: an HDF5 feature cache (path or :class:`~vgloc.local.FeatureCache`), when
            ``spec`` is a string.
        progress: show a progress bar.
        **reranker_options: more re-ranker arguments when ``spec`` is a string
            (``extractor_options``, ``fusion``, ...).

    Returns:
        ``(new_predictions, scores, ms_per_query)``: (Q, K) int64 re-ordered indices;
        (Q, K) float64 ranking scores aligned with them (NaN beyond ``k`` and for empty
        slots); the mean wall time per query in milliseconds, database preparation
        (feature extraction of uncached images) included.
    """
    # "fusion" among the options belongs to the re-ranker here (it always did); the loop
    # applies it when re-ordering, so it is handed over as the loop's fusion instead.
    fusion = reranker_options.pop("fusion", None)
    fusion_weight = reranker_options.pop("fusion_weight", 0.5)
    scored = score_candidates(
        query_paths,
        database_paths,
        predictions,
        similarities,
        spec,
        k,
        cache,
        fusion=fusion,
        fusion_weight=fusion_weight,
        progress=progress,
        **reranker_options,
    )
    rr = scored.rerank()
    ms = rr.ms_per_query
    if scored.num_queries and scored.database_images:
        ms += scored.database_images * scored.database_ms_per_image / scored.num_queries
    return rr.predictions, rr.scores, ms


def check_predictions(
    query_paths: Sequence[Any],
    database_paths: Sequence[Any],
    predictions: np.ndarray,
    similarities: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate a retrieval result before re-ranking it.

    Args:
        query_paths: Q query images.
        database_paths: M database images.
        predictions: (Q, K) database indices, -1 for empty slots.
        similarities: (Q, K) global similarities, or None.

    Returns:
        ``(predictions, similarities)`` as arrays (similarities as float64, or None).

    Raises:
        ValueError: naming what does not fit.
    """
    preds = np.asarray(predictions)
    if preds.ndim != 2 or not np.issubdtype(preds.dtype, np.integer):
        raise ValueError(f"predictions must be a (Q, K) integer array, got {preds.dtype} {preds.shape}")
    if len(query_paths) != preds.shape[0]:
        raise ValueError(f"{len(query_paths)} query paths but {preds.shape[0]} prediction rows")
    if preds.size and preds.max() >= len(database_paths):
        raise ValueError(
            f"predictions index database image {preds.max()} but there are {len(database_paths)}"
        )
    if preds.size and preds.min() < -1:
        raise ValueError(f"predictions hold {preds.min()}; only -1 may mark an empty slot")
    sims = None
    if similarities is not None:
        sims = np.asarray(similarities, np.float64)
        if sims.shape != preds.shape:
            raise ValueError(f"similarities {sims.shape} and predictions {preds.shape} differ in shape")
    return preds, sims
