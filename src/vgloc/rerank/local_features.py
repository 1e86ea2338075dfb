"""The local-feature re-ranker: match local features, verify geometry, count inliers.

Registered as ``"local"`` in :data:`vgloc.registry.RERANKERS`, and the fallback kind:
a spec no other re-ranker claims is read as ``extractor+matcher+verifier``, e.g.
``rootsift+mnn+ransac``, ``sift+ratio+fundamental``, ``orb+mnn+rss``,
``disk+lightglue+ransac``; a detector-free matcher takes no extractor:
``loftr+ransac``. The parts are looked up in :data:`~vgloc.local.EXTRACTORS`,
:data:`~vgloc.local.MATCHERS` and :data:`~vgloc.local.VERIFIERS`; an unknown part
raises an error listing close names.

Defaults follow To-Match-or-Not-to-Match / vismatch (PROTOCOLS 6.1-6.2): the top
``k=100`` candidates are re-ranked by their verification score (inlier count),
descending; the tail beyond ``k`` keeps its order. Ties keep the original rank
order (a stable sort; To-Match's ``torch.sort`` leaves it unspecified).

Fusion with the global similarity is off by default (To-Match sorts by inliers
alone); ``fusion="zscore"`` or ``"linear"`` applies :func:`~vgloc.rerank.fusion.fuse_scores`.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vgloc.local.cache import CacheMismatchError, FeatureCache
from vgloc.local.features import EXTRACTORS, LocalFeatureExtractor, LocalFeatures
from vgloc.local.image import load_rgb
from vgloc.local.matching import MATCHERS, Correspondences, DenseMatcher, SparseMatcher
from vgloc.local.matching.batched import can_match_many
from vgloc.local.verify import VERIFIERS, Verification, Verifier
from vgloc.registry import RERANKERS, Registry, UnknownNameError
from vgloc.rerank.base import BaseReranker, ImagePath, PairScores, Prepared
from vgloc.rerank.fast import FastScorer
from vgloc.rerank.fusion import check_fusion

__all__ = ["LocalFeatureReranker", "Reranker", "RerankerSpec", "parse_spec"]

log = logging.getLogger(__name__)

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


@RERANKERS.register(
    "local",
    fallback=True,
    description="local features + matcher + geometric verification: 'extractor+matcher+verifier'",
)
class LocalFeatureReranker(BaseReranker):
    """Local-feature re-ranker: a pair's score is its verification score (inliers).

    Args:
        spec: ``extractor+matcher+verifier`` as a string (parsed here, see
            :func:`parse_spec`) or an already parsed :class:`RerankerSpec` (not parsed
            again: that is how :func:`~vgloc.rerank.resolve_reranker` builds it).
        extractor_options: keyword arguments of the extractor (``max_keypoints``,
            ``resize``, ``weights``, ...).
        matcher_options: keyword arguments of the matcher (``ratio``, ``weights``, ...).
        verifier_options: keyword arguments of the verifier (``threshold``, ...).
        cache: an HDF5 feature cache: a :class:`~vgloc.local.FeatureCache` for this
            extractor, or a path (opened/created with this extractor's configuration).
            None keeps features in memory only.
        fusion: None (default: the local score alone), ``"zscore"`` or ``"linear"``
            (see :func:`~vgloc.rerank.fusion.fuse_scores`); needs the global similarities.
        fusion_weight: the weight of the global similarity in the fusion.
        memory_cache: how many images' features to keep in memory (LRU), in front of
            the HDF5 cache; 0 disables it.
        cache_queries: also write query features to the HDF5 cache. Off by default: the
            cache holds the database, which every query reuses, while a query is
            usually seen once (its features are still read from the cache if there).
        batched: score with :class:`~vgloc.rerank.fast.FastScorer` (batched matching,
            verification in a thread pool) where it reproduces the matcher (``mnn``,
            ``ratio``); False scores pair by pair (the reference path, same results).
        workers: threads of the fast path (None: the usable cores, <= 8).
        exact_top: None (default): every candidate is verified. ``n``: early exit, only
            the top ``n`` of the re-ranked order are guaranteed identical (see
            :mod:`vgloc.rerank.fast`); needs ``batched`` and no fusion.
        device: None (default): the fast path matches with numpy on CPU; a torch device
            (``"cuda"``, ...): it matches there with torch.
        prefetch: extract the next query's features in a background thread while the
            current query is matched (:meth:`prefetch_query`; same features, OpenCV and
            torch release the GIL). Not with ``cache_queries`` (writes stay in the caller's
            thread).

    Example:
        >>> rr = LocalFeatureReranker("rootsift+mnn+ransac", cache="cache/rootsift.h5")
        >>> order, scores, inliers = rr.rerank("q.jpg", ["a.jpg", "b.jpg"], np.array([0.8, 0.7]))
    """

    kind = "local"

    def __init__(
        self,
        spec: str | RerankerSpec,
        *,
        extractor_options: dict[str, Any] | None = None,
        matcher_options: dict[str, Any] | None = None,
        verifier_options: dict[str, Any] | None = None,
        cache: FeatureCache | str | os.PathLike[str] | None = None,
        fusion: str | None = None,
        fusion_weight: float = 0.5,
        memory_cache: int = 256,
        cache_queries: bool = False,
        batched: bool = True,
        workers: int | None = None,
        exact_top: int | None = None,
        device: str | None = None,
        prefetch: bool = True,
    ) -> None:
        self.spec: RerankerSpec = spec if isinstance(spec, RerankerSpec) else parse_spec(spec)
        check_fusion(fusion, fusion_weight)
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
        if exact_top is not None and not batched:
            raise ValueError("exact_top (early exit) needs batched=True")
        if exact_top is not None and fusion is not None:
            raise ValueError(
                "exact_top (early exit) leaves scores unknown, which fusion needs; use one of them"
            )
        self.batched = bool(batched)
        self.exact_top = exact_top
        self.fast = FastScorer(workers=workers, exact_top=exact_top, device=device)
        self._memory: OrderedDict[str, LocalFeatures] = OrderedDict()
        self.prefetch = bool(prefetch)
        self._prefetcher: ThreadPoolExecutor | None = None
        #: features being extracted in the background, by absolute path (prefetch_query).
        self._prefetched: dict[str, Future[LocalFeatures]] = {}
        # The LRU limit before prepare() raised it, restored by release().
        self._memory_limit_before: int | None = None

    # -- the resolver's class methods ----------------------------------------------------
    @classmethod
    def check_spec(cls, spec: str) -> None:
        """Validate ``extractor+matcher+verifier`` without building anything (see :func:`parse_spec`)."""
        parse_spec(spec)

    @classmethod
    def from_spec(cls, spec: str, cache: Any = None, **options: Any) -> LocalFeatureReranker:
        """Parse ``spec`` once and build the re-ranker (``options``: the constructor's keywords)."""
        return cls(parse_spec(spec), cache=cache, **options)

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
        """Stop the verification threads and close a cache this re-ranker opened itself."""
        self.fast.close()
        if self._prefetcher is not None:
            self._prefetcher.shutdown(wait=True, cancel_futures=True)
            self._prefetcher = None
        self._prefetched.clear()
        if self.cache is not None and self._own_cache:
            self.cache.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.spec)!r}, extractor={self.extractor!r}, "
            f"matcher={self.matcher!r}, verifier={self.verifier!r})"
        )

    # -- per image / per pair ----------------------------------------------------------
    def features(self, path: ImagePath, *, store: bool = True) -> LocalFeatures:
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
        pending = self._prefetched.pop(key, None)
        if pending is not None:
            feats = pending.result()  # raises what the extraction raised
        elif self.cache is None:
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

    def correspondences(self, query_path: ImagePath, candidate_path: ImagePath) -> Correspondences:
        """Match a query image (image 0) with a candidate (image 1)."""
        if isinstance(self.matcher, DenseMatcher):
            return self.matcher.match_images(load_rgb(query_path), load_rgb(candidate_path))
        query = self.features(query_path, store=self.cache_queries)
        return self.matcher.correspondences(query, self.features(candidate_path))

    def verify_pair(
        self, query_path: ImagePath, candidate_path: ImagePath
    ) -> tuple[Correspondences, Verification]:
        """Match and verify one query-candidate pair.

        Returns:
            The correspondences and their verification (score, inliers, mask).
        """
        corr = self.correspondences(query_path, candidate_path)
        return corr, self.verifier.verify(corr)

    # -- the contract ---------------------------------------------------------------------
    def score(self, query: ImagePath, candidates: Sequence[ImagePath]) -> PairScores:
        """Match and verify the query against each candidate, timing each pair.

        Args:
            query: the query image.
            candidates: the K candidate images.

        Returns:
            (K,) verification scores, (K,) inlier counts and (K,) ms per pair, in the
            candidates' order. A pair's time covers matching and verification, plus the
            extraction of any features not yet in memory or in the cache. The fast path
            (``batched``) scores the pairs jointly and reports no per-pair times; with
            ``exact_top`` the candidates it skipped score NaN with -1 inliers.
        """
        if self._fast_path_applies():
            assert isinstance(self.matcher, SparseMatcher)
            qf = self.features(query, store=self.cache_queries)
            if can_match_many(self.matcher, qf):
                feats = [self.features(c) for c in candidates]
                scores, inliers = self.fast.score(self.matcher, self.verifier, qf, feats)
                return PairScores(scores, inliers, None)
        k = len(candidates)
        scores = np.zeros(k, np.float64)
        inliers = np.zeros(k, np.int64)
        ms = np.zeros(k, np.float64)
        for i, cand in enumerate(candidates):
            t0 = time.perf_counter()
            _, ver = self.verify_pair(query, cand)
            ms[i] = 1000.0 * (time.perf_counter() - t0)
            scores[i] = ver.score
            inliers[i] = ver.num_inliers
        return PairScores(scores, inliers, ms)

    def _fast_path_applies(self) -> bool:
        """Whether :meth:`score` may use the fast path: it reproduces :meth:`verify_pair`.

        Not when a subclass or the instance replaced :meth:`verify_pair` or
        :meth:`correspondences` (their override is what the caller wants to run per pair).
        """
        if not (self.batched and self.extractor is not None and isinstance(self.matcher, SparseMatcher)):
            return False
        for name in ("verify_pair", "correspondences"):
            if name in self.__dict__ or getattr(type(self), name) is not getattr(LocalFeatureReranker, name):
                return False
        return True

    def prepare_query(self, query: ImagePath) -> None:
        """Extract (or read) the query's features, so pair times are matching and verification."""
        if self.extractor is not None:
            self.features(query, store=self.cache_queries)

    def prefetch_query(self, query: ImagePath) -> None:
        """Start extracting a (next) query's features in a background thread.

        :meth:`prepare_query` / :meth:`features` of that query then wait for them. Only
        extraction runs in the background (an HDF5 hit is read by the caller): the
        extractors hold no per-call state (OpenCV builds its detector per call), and the
        features are those :meth:`features` would compute.
        """
        if self.extractor is None or not self.prefetch or self.cache_queries:
            return
        key = os.path.abspath(os.fspath(query))
        if key in self._memory or key in self._prefetched:
            return
        if self.cache is not None and self.cache.get(key) is not None:
            return
        if self._prefetcher is None:
            self._prefetcher = ThreadPoolExecutor(1, thread_name_prefix="vgloc-prefetch")
        self._prefetched[key] = self._prefetcher.submit(self.extractor.extract_path, key)

    def prepare(
        self,
        database: Sequence[Path],
        *,
        num_queries: int,
        memory_budget_mb: float,
        progress: bool = False,
    ) -> Prepared:
        """Have the database candidates' features ready before the loop times queries.

        When all of them (and the queries) fit in ``memory_budget_mb``, the memory LRU is
        raised to hold them for the run (:meth:`release` lowers it again); otherwise they
        are written to the HDF5 cache and read back per pair. With neither room nor a
        cache nothing is prepared: features are extracted on the fly and counted in the
        time per query (a warning says so).

        Returns:
            (images prepared, ms per image); (0, NaN) when nothing was prepared.
        """
        self._memory_limit_before = self.memory_cache
        if self.extractor is None or not database:
            return Prepared()
        from tqdm import tqdm

        t0 = time.perf_counter()
        first = self.features(database[0])
        # A generous per-image estimate (keypoint counts vary) decides whether all fit in memory.
        per_image = max(1, int(1.5 * _features_nbytes(first)))
        capacity = int(memory_budget_mb * 2**20 // per_image)
        room = len(database) + num_queries + 1
        if room <= capacity:
            # The queries enter the LRU too: with room for them, no database image is evicted
            # (and extracted again inside the timed loop) by a later query.
            self.memory_cache = max(self.memory_cache, room)
        elif self.cache is None:
            log.warning(
                "the features of %d database candidates and %d queries do not fit in %.0f MB and there "
                "is no HDF5 feature cache: database features are extracted on the fly and counted in "
                "the time per query (pass a cache file to prepare them once)",
                len(database),
                num_queries,
                memory_budget_mb,
            )
            return Prepared()
        for p in tqdm(database[1:], desc=f"{self.spec.extractor} database features", disable=not progress):
            self.features(p)
        return Prepared(len(database), 1000.0 * (time.perf_counter() - t0) / len(database))

    def release(self) -> None:
        """Lower the memory LRU back to its limit before :meth:`prepare`, dropping the oldest."""
        if self._memory_limit_before is None:
            return
        self.memory_cache = self._memory_limit_before
        self._memory_limit_before = None
        while len(self._memory) > max(self.memory_cache, 0):
            self._memory.popitem(last=False)


def _features_nbytes(feats: LocalFeatures) -> int:
    return int(
        sum(getattr(feats, f).nbytes for f in ("keypoints", "descriptors", "scores", "scales", "oris"))
    )


#: The name this class had before re-rankers had a contract; ``Reranker(spec, cache=...)``
#: keeps working. New code resolves specs with :func:`vgloc.rerank.resolve_reranker`.
Reranker = LocalFeatureReranker
