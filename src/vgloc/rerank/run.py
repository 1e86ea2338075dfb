"""Re-ranking as a pipeline step: score the top-K once, re-order for any K up to it.

Evaluation and localisation re-rank retrieved candidates in two steps:

1. :func:`score_candidates` verifies every query's leading ``k`` candidates once
   and keeps, per pair, the local score, the inlier count and the time it took;
2. :meth:`CandidateScores.rerank` re-orders the first ``K <= k`` candidates by
   those scores (optionally fused with the global similarity) without matching
   anything again.

So a K sweep (:func:`rerank_sweep`) costs one scoring pass at the largest K: the
re-ordering for K uses only the scores of the first K candidates, exactly as if
only K had been retrieved and verified.

Timing (``ms_per_query``). Database features are prepared before the clock starts,
as a deployment extracts them offline (into the HDF5 :class:`FeatureCache`, or into
memory when they fit in ``memory_budget_mb``); that cost is reported separately per
image. A query's time at K is then measured directly: the extraction of its own
features plus the measured match-and-verify time of its first K candidates; the
reported figure is the mean over queries. When the database features neither fit
in memory nor have an HDF5 cache, they are extracted on the fly and counted in the
per-query time (a warning says so).

Example:
    >>> scores = score_candidates(q_paths, db_paths, preds, sims, "rootsift+mnn+ransac", k=100)
    >>> top100 = scores.rerank(100)          # new order, scores, inliers, ms/query
    >>> curve = rerank_sweep(scores, [1, 5, 10, 20, 50, 100], positives)
    >>> write_sweep({"queries": curve}, "runs/sweep")
"""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vgloc.io import atomic_path, write_text_atomic
from vgloc.rerank.cache import FeatureCache
from vgloc.rerank.matching import DenseMatcher
from vgloc.rerank.reranker import Reranker, check_predictions
from vgloc.rerank.verify import fuse_scores

__all__ = [
    "DEFAULT_SWEEP_KS",
    "SWEEP_STEM",
    "CandidateScores",
    "Reranked",
    "SweepPoint",
    "check_sweep_ks",
    "rerank_sweep",
    "score_candidates",
    "sweep_table",
    "write_sweep",
]

log = logging.getLogger(__name__)

#: The K values of a default sweep (Patch-NetVLAD's n_values, PROTOCOLS 5).
DEFAULT_SWEEP_KS: tuple[int, ...] = (1, 5, 10, 20, 50, 100)
#: File stem of the sweep outputs (``rerank_sweep.csv``, ``.md``, ``.png``).
SWEEP_STEM = "rerank_sweep"
FUSIONS = (None, "zscore", "linear")


class Reranked(NamedTuple):
    """Candidates re-ordered by local verification.

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


@dataclass(frozen=True)
class SweepPoint:
    """Recall and cost of re-ranking the top ``k`` candidates.

    Attributes:
        k: the number of re-ranked candidates.
        recalls: ``{N: Recall@N in percent}`` after re-ranking the top ``k``.
        ms_per_query: mean time to re-rank ``k`` candidates of one query (ms).
    """

    k: int
    recalls: dict[int, float]
    ms_per_query: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "k": self.k,
            "recalls": {str(n): v for n, v in self.recalls.items()},
            "ms_per_query": round(self.ms_per_query, 3),
        }


@dataclass
class CandidateScores:
    """Local verification of each query's leading candidates, kept in retrieval order.

    Built by :func:`score_candidates`; :meth:`rerank` turns it into a new order for
    any ``K <= k``.

    Attributes:
        spec: the re-ranker spec that scored the pairs.
        predictions: (Q, W) int64 retrieved database indices, best first (-1 = empty).
        similarities: (Q, W) float64 global similarities aligned with ``predictions``, or None.
        k: how many leading columns were scored (``k <= W``).
        local: (Q, k) float64 local verification score of each pair (NaN for empty slots).
        inliers: (Q, k) int64 inlier count of each pair (-1 for empty slots).
        pair_ms: (Q, k) float64 time to match and verify each pair in ms (NaN for empty slots).
        query_ms: (Q,) float64 time to extract each query's features in ms (0 for a
            detector-free matcher, which has no separate extraction).
        database_images: how many distinct database images had features prepared
            before timing started.
        database_ms_per_image: mean time to prepare one of them (extract, or read from
            the HDF5 cache), ms; NaN when none were prepared up front.
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
            s = self.local[q, valid]
            if self.fusion is not None:
                assert self.similarities is not None  # checked in __post_init__
                s = fuse_scores(s, self.similarities[q, valid], self.fusion, self.fusion_weight)
            order = np.argsort(-s, kind="stable")
            perm = np.concatenate([valid[order], empty])
            new[q, :k] = head[perm]
            if sims is not None and self.similarities is not None:
                sims[q, :k] = self.similarities[q, perm]
            scores[q, : len(valid)] = s[order]
            inliers[q, : len(valid)] = self.inliers[q, valid[order]]
        return Reranked(new, sims, scores, inliers, k, self.ms_per_query(k))


def _features_nbytes(feats: Any) -> int:
    return int(
        sum(getattr(feats, f).nbytes for f in ("keypoints", "descriptors", "scores", "scales", "oris"))
    )


def _prepare_database(
    reranker: Reranker, paths: Sequence[Path], num_queries: int, memory_budget_mb: float, progress: bool
) -> tuple[int, float]:
    """Have the database candidates' features ready before timing queries.

    Returns:
        (images prepared, ms per image); (0, NaN) when nothing was prepared.
    """
    if reranker.extractor is None or not paths:
        return 0, float("nan")
    from tqdm import tqdm

    t0 = time.perf_counter()
    first = reranker.features(paths[0])
    # A generous per-image estimate (keypoint counts vary) decides whether all fit in memory.
    per_image = max(1, int(1.5 * _features_nbytes(first)))
    capacity = int(memory_budget_mb * 2**20 // per_image)
    room = len(paths) + num_queries + 1
    if room <= capacity:
        # The queries enter the LRU too: with room for them, no database image is evicted
        # (and extracted again inside the timed loop) by a later query.
        reranker.memory_cache = max(reranker.memory_cache, room)
    elif reranker.cache is None:
        log.warning(
            "the features of %d database candidates and %d queries do not fit in %.0f MB and there "
            "is no HDF5 feature cache: database features are extracted on the fly and counted in "
            "the time per query (pass a cache file to prepare them once)",
            len(paths),
            num_queries,
            memory_budget_mb,
        )
        return 0, float("nan")
    for p in tqdm(paths[1:], desc=f"{reranker.spec.extractor} database features", disable=not progress):
        reranker.features(p)
    return len(paths), 1000.0 * (time.perf_counter() - t0) / len(paths)


def score_candidates(
    query_paths: Sequence[str | os.PathLike[str]],
    database_paths: Sequence[str | os.PathLike[str]],
    predictions: np.ndarray,
    similarities: np.ndarray | None = None,
    spec: str | Reranker = "rootsift+mnn+ransac",
    k: int = 100,
    cache: FeatureCache | str | os.PathLike[str] | None = None,
    *,
    fusion: str | None = None,
    fusion_weight: float = 0.5,
    memory_budget_mb: float = 2048.0,
    keep_features: bool = False,
    progress: bool = False,
    **reranker_options: Any,
) -> CandidateScores:
    """Verify each query's top-``k`` retrieved candidates once, keeping scores and times.

    Args:
        query_paths: Q query images.
        database_paths: the database images that ``predictions`` index.
        predictions: (Q, W) int database indices, best first (-1 marks an empty slot).
        similarities: (Q, W) global similarities aligned with ``predictions`` (higher is
            more similar); needed for fusion, and carried along otherwise.
        spec: a re-ranker spec string (``rootsift+mnn+ransac``, ...) or a built
            :class:`Reranker`.
        k: how many leading candidates to verify; clipped to W.
        cache: an HDF5 feature cache (path or :class:`FeatureCache`) when ``spec`` is a string.
        fusion: None (default: the local score alone, as To-Match), ``"zscore"`` or
            ``"linear"``. None with a built :class:`Reranker` takes the re-ranker's own.
        fusion_weight: weight of the global similarity in the fusion.
        memory_budget_mb: database features are kept in memory for the run when they
            fit in this budget; otherwise they are read from the HDF5 cache.
        keep_features: with a built :class:`Reranker`, leave the database features in its
            memory (its LRU limit stays raised) for a following call, e.g. the next query
            domain of an evaluation; by default its limit and memory are restored.
        progress: show progress bars.
        **reranker_options: more :class:`Reranker` arguments when ``spec`` is a string
            (``extractor_options``, ``verifier_options``, ...).

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
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be None, 'zscore' or 'linear', got {fusion!r}")
    k = min(int(k), width)

    own = isinstance(spec, str)
    if isinstance(spec, Reranker):
        if cache is not None or reranker_options:
            raise ValueError("pass the cache and options to the Reranker itself when giving a built one")
        reranker = spec
        if fusion is None:
            fusion, fusion_weight = reranker.fusion, reranker.fusion_weight
    elif own:
        # Fusion is applied here, per K, on the raw local scores: the re-ranker scores only.
        reranker = Reranker(spec, cache=cache, **reranker_options)
    else:
        raise TypeError(f"spec must be a spec string or a Reranker, got {type(spec).__name__}")
    if fusion is not None and sims is None:
        raise ValueError(f"fusion={fusion!r} needs the global similarities")

    preds = preds.astype(np.int64)
    local = np.full((q, k), np.nan)
    inliers = np.full((q, k), -1, np.int64)
    pair_ms = np.full((q, k), np.nan)
    query_ms = np.zeros(q)
    memory_before = reranker.memory_cache
    try:
        head = preds[:, :k]
        unique = np.unique(head[head >= 0])
        db_images, db_ms = _prepare_database(
            reranker, [Path(database_paths[i]) for i in unique], q, memory_budget_mb, progress
        )
        dense = isinstance(reranker.matcher, DenseMatcher)
        from threadpoolctl import threadpool_limits
        from tqdm import tqdm

        # One pair's descriptor GEMM is tiny (~1k x 1k x 128): multithreaded BLAS only adds
        # synchronisation, which costs up to 10x on a busy machine, so pairs run single-threaded.
        with threadpool_limits(limits=1, user_api="blas"):
            for qi in tqdm(range(q), desc=f"re-ranking ({reranker.spec})", disable=not progress):
                qpath = Path(query_paths[qi])
                if not dense:
                    t0 = time.perf_counter()
                    reranker.features(qpath, store=reranker.cache_queries)
                    query_ms[qi] = 1000.0 * (time.perf_counter() - t0)
                for j in np.flatnonzero(head[qi] >= 0):
                    t0 = time.perf_counter()
                    _, ver = reranker.verify_pair(qpath, Path(database_paths[head[qi, j]]))
                    pair_ms[qi, j] = 1000.0 * (time.perf_counter() - t0)
                    local[qi, j] = ver.score
                    inliers[qi, j] = ver.num_inliers
    finally:
        if own:
            reranker.close()
        elif not keep_features:
            # Give back the memory this run borrowed from a caller's re-ranker.
            reranker.memory_cache = memory_before
            while len(reranker._memory) > max(memory_before, 0):
                reranker._memory.popitem(last=False)
    return CandidateScores(
        spec=str(reranker.spec),
        predictions=preds,
        similarities=sims,
        k=k,
        local=local,
        inliers=inliers,
        pair_ms=pair_ms,
        query_ms=query_ms,
        database_images=db_images,
        database_ms_per_image=db_ms,
        fusion=fusion,
        fusion_weight=float(fusion_weight),
    )


def check_sweep_ks(ks: Sequence[int], limit: int | None = None) -> list[int]:
    """Validate sweep K values: sorted, distinct, >= 1, optionally clipped to ``limit``.

    Args:
        ks: the K values.
        limit: clip each K to at most this (e.g. the database size); duplicates that
            clipping creates are merged.

    Returns:
        The sorted distinct K values.

    Raises:
        ValueError: naming a value that is not a positive integer, or an empty list.
    """
    values = list(ks)
    if not values:
        raise ValueError("the K sweep needs at least one K value")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"sweep K values must be positive integers, got {v!r}")
    if limit is not None:
        values = [min(int(v), int(limit)) for v in values]
    return sorted({int(v) for v in values})


def rerank_sweep(
    scores: CandidateScores,
    ks: Sequence[int],
    positives: Sequence[np.ndarray],
    recall_values: Sequence[int] = (1,),
) -> list[SweepPoint]:
    """Recall and time per query as a function of the number of re-ranked candidates.

    Each K re-orders only the first K candidates with their own scores (the scoring
    itself ran once, at ``scores.k``); the time is the measured time of scoring K
    candidates (see :meth:`CandidateScores.ms_per_query`).

    Args:
        scores: the candidates scored by :func:`score_candidates`.
        ks: the K values (each ``<= scores.k``).
        positives: Q arrays of positive database indices.
        recall_values: the N of Recall@N to report at each K.

    Returns:
        One :class:`SweepPoint` per K, in increasing K.
    """
    from vgloc.evaluation.recall import recall_at_n

    if len(positives) != scores.num_queries:
        raise ValueError(f"{len(positives)} positive lists but {scores.num_queries} queries")
    points = []
    for k in check_sweep_ks(ks):
        rr = scores.rerank(k)
        points.append(SweepPoint(k, recall_at_n(rr.predictions, positives, recall_values), rr.ms_per_query))
    return points


def _recall_columns(curves: Mapping[str, Sequence[SweepPoint]]) -> list[int]:
    ns: set[int] = set()
    for points in curves.values():
        for p in points:
            ns.update(p.recalls)
    return sorted(ns)


def sweep_table(
    curves: Mapping[str, Sequence[SweepPoint]], baseline: Mapping[str, Mapping[int, float]] | None = None
) -> str:
    """A Markdown table of sweep curves: one row per (domain, K).

    Args:
        curves: ``{domain: points}``.
        baseline: ``{domain: {N: Recall@N}}`` of retrieval alone, written as a ``K = 0`` row.

    Returns:
        The Markdown text.
    """
    ns = _recall_columns(curves)
    lines = [
        "| domain | K | " + " | ".join(f"R@{n}" for n in ns) + " | ms/query |",
        "|---|---:|" + "---:|" * len(ns) + "---:|",
    ]
    for domain, points in curves.items():
        if baseline and domain in baseline:
            base = baseline[domain]
            cells = " | ".join(f"{base[n]:.1f}" if n in base else "" for n in ns)
            lines.append(f"| {domain} | 0 (retrieval) | {cells} | 0 |")
        for p in points:
            cells = " | ".join(f"{p.recalls[n]:.1f}" if n in p.recalls else "" for n in ns)
            lines.append(f"| {domain} | {p.k} | {cells} | {p.ms_per_query:.1f} |")
    return "\n".join(lines)


def write_sweep(
    curves: Mapping[str, Sequence[SweepPoint]],
    out_dir: str | os.PathLike[str],
    *,
    title: str = "re-ranking sweep",
    baseline: Mapping[str, Mapping[int, float]] | None = None,
    stem: str = SWEEP_STEM,
) -> dict[str, Path]:
    """Write a sweep as CSV, Markdown and a PNG plot of Recall@1 and ms/query against K.

    Args:
        curves: ``{domain: points}`` (points from :func:`rerank_sweep`).
        out_dir: the output folder (created).
        title: the plot title.
        baseline: ``{domain: {N: Recall@N}}`` of retrieval alone: a ``K = 0`` row in the
            tables and a dashed line in the plot.
        stem: the file name stem.

    Returns:
        ``{"csv": path, "md": path, "png": path}``.
    """
    if not curves or not any(curves.values()):
        raise ValueError("no sweep points to write")
    out = Path(out_dir)
    ns = _recall_columns(curves)

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["domain", "k", *(f"recall@{n}" for n in ns), "ms_per_query"])
    for domain, points in curves.items():
        if baseline and domain in baseline:
            writer.writerow([domain, 0, *(baseline[domain].get(n, "") for n in ns), 0.0])
        for p in points:
            writer.writerow([domain, p.k, *(p.recalls.get(n, "") for n in ns), round(p.ms_per_query, 3)])
    paths = {
        "csv": write_text_atomic(out / f"{stem}.csv", buf.getvalue()),
        "md": write_text_atomic(out / f"{stem}.md", f"# {title}\n\n" + sweep_table(curves, baseline) + "\n"),
    }

    # A bare Figure (no pyplot) renders with Agg and leaves the global backend state alone.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_r, ax_t = fig.subplots(1, 2)
    for i, (domain, points) in enumerate(curves.items()):
        if not points:
            continue
        colour = f"C{i % 10}"
        ks = [p.k for p in points]
        ax_r.plot(ks, [p.recalls.get(1, np.nan) for p in points], "o-", c=colour, label=domain)
        if baseline and domain in baseline and 1 in baseline[domain]:
            ax_r.axhline(baseline[domain][1], c=colour, ls="--", lw=1, label=f"{domain}, retrieval only")
        ax_t.plot(ks, [p.ms_per_query for p in points], "o-", c=colour, label=domain)
    all_ks = sorted({p.k for points in curves.values() for p in points})
    for ax in (ax_r, ax_t):
        ax.set_xscale("log")
        # Label the swept K values themselves (1, 5, 10, ...) rather than powers of ten.
        ax.set_xticks(all_ks, [str(k) for k in all_ks])
        ax.minorticks_off()
        ax.set_xlabel("K (re-ranked candidates)")
        ax.grid(True, alpha=0.3)
    ax_r.set_ylabel("Recall@1 (%)")
    ax_r.set_ylim(-2, 102)
    ax_r.legend(fontsize=7)
    ax_t.set_ylabel("re-ranking time per query (ms)")
    ax_t.legend(fontsize=7)
    fig.suptitle(title)
    with atomic_path(out / f"{stem}.png", suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    paths["png"] = out / f"{stem}.png"
    return paths
