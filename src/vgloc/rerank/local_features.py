"""Re-rank retrieved candidates by local-feature matching and geometric verification.

A re-ranker is named by a spec string ``extractor+matcher+verifier``, e.g.
``rootsift+mnn+ransac``, ``sift+ratio+fundamental``, ``orb+mnn+rss``,
``disk+lightglue+ransac``; a detector-free matcher takes no extractor:
``loftr+ransac``. The parts are looked up in :data:`EXTRACTORS`, :data:`MATCHERS`
and :data:`VERIFIERS`; an unknown part raises an error listing close names.

Defaults follow To-Match-or-Not-to-Match / vismatch (PROTOCOLS 6.1-6.2): the top
``k=100`` candidates are re-ranked by their verification score (inlier count),
descending; the tail beyond ``k`` keeps its order. Ties keep the original rank
order (a stable sort; To-Match's ``torch.sort`` leaves it unspecified).

Fusion with the global similarity is off by default (To-Match sorts by inliers
alone); ``fusion="zscore"`` or ``"linear"`` applies :func:`fuse_scores`.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vgloc.registry import RERANKERS, Registry, UnknownNameError
from vgloc.rerank._image import load_rgb
from vgloc.rerank.cache import CacheMismatchError, FeatureCache
from vgloc.rerank.features import EXTRACTORS, LocalFeatureExtractor, LocalFeatures
from vgloc.rerank.matching import MATCHERS, Correspondences, DenseMatcher, SparseMatcher
from vgloc.rerank.verify import VERIFIERS, Verification, Verifier, fuse_scores

__all__ = ["RerankResult", "Reranker", "RerankerSpec", "parse_spec", "rerank_predictions"]

_FORMAT_HINT = (
    "a re-ranker spec is 'extractor+matcher+verifier' (e.g. rootsift+mnn+ransac, sift+ratio+fundamental, "
    "orb+mnn+rss) or 'densematcher+verifier' (e.g. loftr+ransac)"
)


@dataclass(frozen=True)
class RerankerSpec:
    """A parsed spec: extractor (None for a dense matcher), matcher and verifier names."""

    extractor: str | None
    matcher: str
    verifier: str

    def __str__(self) -> str:
        parts = [self.extractor] if self.extractor else []
        return "+".join([*parts, self.matcher, self.verifier])


def _kind_of(token: str) -> str | None:
    registries: tuple[tuple[str, Registry[Any]], ...] = (
        ("extractor", EXTRACTORS),
        ("matcher", MATCHERS),
        ("verifier", VERIFIERS),
    )
    for kind, reg in registries:
        if token in reg:
            return kind
    return None


def _lookup(token: str, kind: str, spec: str) -> None:
    registries: dict[str, Registry[Any]] = {
        "extractor": EXTRACTORS,
        "matcher": MATCHERS,
        "verifier": VERIFIERS,
    }
    reg = registries[kind]
    if token in reg:
        return
    actual = _kind_of(token)
    if actual is not None:
        article = "an" if kind == "extractor" else "a"
        raise ValueError(
            f"in re-ranker spec {spec!r}: {token!r} is a {actual}, not {article} {kind}; {_FORMAT_HINT}"
        )
    raise UnknownNameError(f"in re-ranker spec {spec!r}: {reg.unknown_message(token)}; {_FORMAT_HINT}")


def parse_spec(spec: str) -> RerankerSpec:
    """Parse ``extractor+matcher+verifier`` (or ``densematcher+verifier``).

    Args:
        spec: the spec string (case-insensitive, spaces around ``+`` ignored).

    Returns:
        The parsed spec.

    Raises:
        UnknownNameError: a part is not registered (the message suggests close names).
        ValueError: a malformed spec, a part in the wrong place, or a dense matcher
            given an extractor (or a sparse one none).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty re-ranker spec {spec!r}; {_FORMAT_HINT}")
    tokens = [t.strip().lower() for t in spec.split("+")]
    if any(not t for t in tokens):
        raise ValueError(f"re-ranker spec {spec!r} has an empty part; {_FORMAT_HINT}")
    if len(tokens) == 3:
        ext, mat, ver = tokens
        _lookup(ext, "extractor", spec)
        _lookup(mat, "matcher", spec)
        _lookup(ver, "verifier", spec)
        if MATCHERS.metadata(mat).get("dense"):
            raise ValueError(f"in re-ranker spec {spec!r}: {mat!r} is detector-free; write '{mat}+{ver}'")
        return RerankerSpec(ext, mat, ver)
    if len(tokens) == 2:
        mat, ver = tokens
        if mat in EXTRACTORS:
            raise ValueError(
                f"re-ranker spec {spec!r} has no matcher: write e.g. '{mat}+mnn+{ver}'; {_FORMAT_HINT}"
            )
        _lookup(mat, "matcher", spec)
        _lookup(ver, "verifier", spec)
        if not MATCHERS.metadata(mat).get("dense"):
            raise ValueError(
                f"in re-ranker spec {spec!r}: matcher {mat!r} needs an extractor, e.g. 'rootsift+{mat}+{ver}'"
            )
        return RerankerSpec(None, mat, ver)
    raise ValueError(f"re-ranker spec {spec!r} has {len(tokens)} parts; {_FORMAT_HINT}")


class RerankResult(NamedTuple):
    """One query's re-ranking.

    Attributes:
        order: (K,) int64 permutation of the candidates, best first (indices into the
            candidate list given).
        scores: (K,) float64 ranking score of each candidate, in the GIVEN candidate order
            (the fused score when fusion is on).
        inliers: (K,) int64 inlier count of each candidate, in the given order.
    """

    order: np.ndarray
    scores: np.ndarray
    inliers: np.ndarray


@RERANKERS.register("local", description="local features + matcher + geometric verification (spec string)")
class Reranker:
    """Local-feature re-ranker built from a spec string.

    Args:
        spec: ``extractor+matcher+verifier`` (see :func:`parse_spec`).
        extractor_options: keyword arguments of the extractor (``max_keypoints``,
            ``resize``, ``weights``, ...).
        matcher_options: keyword arguments of the matcher (``ratio``, ``weights``, ...).
        verifier_options: keyword arguments of the verifier (``threshold``, ...).
        cache: an HDF5 feature cache: a :class:`FeatureCache` for this extractor, or a
            path (opened/created with this extractor's configuration). None keeps
            features in memory only.
        fusion: None (default: the local score alone), ``"zscore"`` or ``"linear"``
            (see :func:`fuse_scores`); needs the global similarities.
        fusion_weight: the weight of the global similarity in the fusion.
        memory_cache: how many images' features to keep in memory (LRU), in front of
            the HDF5 cache; 0 disables it.
        cache_queries: also write query features to the HDF5 cache. Off by default: the
            cache holds the database, which every query reuses, while a query is
            usually seen once (its features are still read from the cache if there).

    Example:
        >>> rr = Reranker("rootsift+mnn+ransac", cache="cache/rootsift.h5")
        >>> order, scores, inliers = rr.rerank("q.jpg", ["a.jpg", "b.jpg"], np.array([0.8, 0.7]))
    """

    def __init__(
        self,
        spec: str,
        *,
        extractor_options: dict[str, Any] | None = None,
        matcher_options: dict[str, Any] | None = None,
        verifier_options: dict[str, Any] | None = None,
        cache: FeatureCache | str | os.PathLike[str] | None = None,
        fusion: str | None = None,
        fusion_weight: float = 0.5,
        memory_cache: int = 256,
        cache_queries: bool = False,
    ) -> None:
        self.spec = parse_spec(spec)
        if fusion not in (None, "zscore", "linear"):
            raise ValueError(f"fusion must be None, 'zscore' or 'linear', got {fusion!r}")
        if fusion == "zscore" and not 0.0 <= fusion_weight <= 1.0:
            raise ValueError(f"zscore fusion weight must be in [0, 1], got {fusion_weight}")
        self.fusion = fusion
        self.fusion_weight = float(fusion_weight)
        self.extractor: LocalFeatureExtractor | None = None
        if self.spec.extractor is not None:
            self.extractor = EXTRACTORS.get(self.spec.extractor)(**(extractor_options or {}))
        elif extractor_options:
            raise ValueError(f"{self.spec.matcher!r} is detector-free: extractor_options do not apply")
        mopts = dict(matcher_options or {})
        if self.spec.matcher == "lightglue" and "features" not in mopts and self.extractor is not None:
            lg = self.extractor.lightglue_features
            if lg is None:
                raise ValueError(
                    f"in re-ranker spec {str(self.spec)!r}: LightGlue has no model for {self.extractor.name!r} "
                    "features; use disk, aliked or rootsift"
                )
            mopts["features"] = lg
        self.matcher: SparseMatcher | DenseMatcher = MATCHERS.get(self.spec.matcher)(**mopts)
        if isinstance(self.matcher, SparseMatcher) and self.extractor is not None:
            self.matcher.check_extractor(self.extractor)
        self.verifier: Verifier = VERIFIERS.get(self.spec.verifier)(**(verifier_options or {}))
        self.cache = self._open_cache(cache)
        self._own_cache = cache is not None and not isinstance(cache, FeatureCache)
        self.memory_cache = int(memory_cache)
        self.cache_queries = bool(cache_queries)
        self._memory: OrderedDict[str, LocalFeatures] = OrderedDict()

    def _open_cache(self, cache: FeatureCache | str | os.PathLike[str] | None) -> FeatureCache | None:
        if cache is None:
            return None
        if self.extractor is None:
            raise ValueError(f"{self.spec.matcher!r} is detector-free: there are no features to cache")
        if isinstance(cache, FeatureCache):
            if cache.extractor.config() != self.extractor.config():
                raise CacheMismatchError(
                    f"feature cache {cache.path} holds {cache.extractor.config()}, "
                    f"but the re-ranker's extractor is {self.extractor.config()}"
                )
            return cache
        return FeatureCache(cache, self.extractor)

    def close(self) -> None:
        """Close a cache this re-ranker opened itself."""
        if self.cache is not None and self._own_cache:
            self.cache.close()

    def __enter__(self) -> Reranker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Reranker({str(self.spec)!r}, extractor={self.extractor!r}, matcher={self.matcher!r}, verifier={self.verifier!r})"

    # -- per image / per pair ----------------------------------------------------------
    def features(self, path: str | os.PathLike[str], *, store: bool = True) -> LocalFeatures:
        """The local features of an image (memory LRU, then the HDF5 cache, then extraction).

        Args:
            path: the image.
            store: write newly extracted features to the HDF5 cache.

        Raises:
            ValueError: the spec has a dense matcher (no features).
        """
        if self.extractor is None:
            raise ValueError(f"{self.spec.matcher!r} is detector-free: it has no per-image features")
        key = os.path.abspath(os.fspath(path))
        feats = self._memory.get(key)
        if feats is not None:
            self._memory.move_to_end(key)
            return feats
        if self.cache is None:
            feats = self.extractor.extract_path(key)
        elif store:
            feats = self.cache.get_or_extract(key)
        else:
            cached = self.cache.get(key)
            feats = cached if cached is not None else self.extractor.extract_path(key)
        if self.memory_cache > 0:
            self._memory[key] = feats
            while len(self._memory) > self.memory_cache:
                self._memory.popitem(last=False)
        return feats

    def correspondences(
        self, query_path: str | os.PathLike[str], candidate_path: str | os.PathLike[str]
    ) -> Correspondences:
        """Match a query image (image 0) with a candidate (image 1)."""
        if isinstance(self.matcher, DenseMatcher):
            return self.matcher.match_images(load_rgb(query_path), load_rgb(candidate_path))
        query = self.features(query_path, store=self.cache_queries)
        return self.matcher.correspondences(query, self.features(candidate_path))

    def verify_pair(
        self, query_path: str | os.PathLike[str], candidate_path: str | os.PathLike[str]
    ) -> tuple[Correspondences, Verification]:
        """Match and verify one query-candidate pair.

        Returns:
            The correspondences and their verification (score, inliers, mask).
        """
        corr = self.correspondences(query_path, candidate_path)
        return corr, self.verifier.verify(corr)

    # -- per query ----------------------------------------------------------------------
    def rerank(
        self,
        query_path: str | os.PathLike[str],
        candidate_paths: Sequence[str | os.PathLike[str]],
        global_sims: np.ndarray | Sequence[float] | None = None,
    ) -> RerankResult:
        """Re-rank one query's candidates.

        Args:
            query_path: the query image.
            candidate_paths: the K candidates, in their retrieval order.
            global_sims: (K,) global similarities (higher = more similar); needed only
                for fusion.

        Returns:
            ``(order, scores, inliers)``: the new order (a permutation of ``range(K)``,
            best first, ties in the given order) and, per candidate in the given order,
            the ranking score and the inlier count. Shape: (K,) each.
        """
        k = len(candidate_paths)
        sims = None
        if global_sims is not None:
            sims = np.asarray(global_sims, np.float64).reshape(-1)
            if len(sims) != k:
                raise ValueError(f"{k} candidates but {len(sims)} global similarities")
        if self.fusion is not None and sims is None:
            raise ValueError(f"fusion={self.fusion!r} needs the global similarities (global_sims)")
        local = np.zeros(k, np.float64)
        inliers = np.zeros(k, np.int64)
        for i, cand in enumerate(candidate_paths):
            _, ver = self.verify_pair(query_path, cand)
            local[i] = ver.score
            inliers[i] = ver.num_inliers
        scores = local if self.fusion is None else fuse_scores(local, sims, self.fusion, self.fusion_weight)  # type: ignore[arg-type]
        order = np.argsort(-scores, kind="stable").astype(np.int64)
        return RerankResult(order, scores, inliers)


def rerank_predictions(
    query_paths: Sequence[str | os.PathLike[str]],
    database_paths: Sequence[str | os.PathLike[str]],
    predictions: np.ndarray,
    similarities: np.ndarray | None = None,
    spec: str | Reranker = "rootsift+mnn+ransac",
    k: int = 100,
    cache: FeatureCache | str | os.PathLike[str] | None = None,
    *,
    progress: bool = False,
    **reranker_options: Any,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Re-rank the top-``k`` retrieved database images of every query.

    Args:
        query_paths: Q query images.
        database_paths: the database images that ``predictions`` index.
        predictions: (Q, K) int database indices, best first (-1 marks an empty slot,
            which stays at the end).
        similarities: (Q, K) global similarities aligned with ``predictions`` (higher is
            more similar; pass ``-distance`` for L2 distances); needed only for fusion.
        spec: a spec string or a built :class:`Reranker`.
        k: how many leading candidates to re-rank (100, as To-Match and Patch-NetVLAD);
            columns beyond ``k`` keep their order.
        cache: an HDF5 feature cache (path or :class:`FeatureCache`), when ``spec`` is a string.
        progress: show a progress bar.
        **reranker_options: more :class:`Reranker` arguments when ``spec`` is a string
            (``extractor_options``, ``fusion``, ...).

    Returns:
        ``(new_predictions, scores, ms_per_query)``: (Q, K) int64 re-ordered indices;
        (Q, K) float64 ranking scores aligned with them (NaN beyond ``k`` and for empty
        slots); the mean wall time per query in milliseconds (feature extraction of
        uncached images included).
    """
    preds, sims = check_predictions(query_paths, database_paths, predictions, similarities)
    q, kk = preds.shape
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")

    own = isinstance(spec, str)
    if isinstance(spec, Reranker):
        if cache is not None or reranker_options:
            raise ValueError("pass the cache and options to the Reranker itself when giving a built one")
        reranker = spec
    elif own:
        reranker = Reranker(spec, cache=cache, **reranker_options)
    else:
        raise TypeError(f"spec must be a spec string or a Reranker, got {type(spec).__name__}")
    new = preds.astype(np.int64).copy()
    scores = np.full((q, kk), np.nan)
    times = []
    try:
        from threadpoolctl import threadpool_limits
        from tqdm import tqdm

        # Per-pair matmuls are tiny: multithreaded BLAS only adds synchronisation (see pipeline.py).
        with threadpool_limits(limits=1, user_api="blas"):
            for qi in tqdm(range(q), desc=f"re-ranking ({reranker.spec})", disable=not progress):
                head = new[qi, : min(k, kk)].copy()
                valid = np.flatnonzero(head >= 0)
                t0 = time.perf_counter()
                res = reranker.rerank(
                    Path(query_paths[qi]),
                    [Path(database_paths[j]) for j in head[valid]],
                    None if sims is None else sims[qi, valid],
                )
                times.append(time.perf_counter() - t0)
                reordered = valid[res.order]
                empty = np.flatnonzero(head < 0)
                new[qi, : len(head)] = np.concatenate([head[reordered], head[empty]])
                scores[qi, : len(valid)] = res.scores[res.order]
    finally:
        if own:
            reranker.close()
    return new, scores, float(1000.0 * np.mean(times)) if times else 0.0


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
