"""The re-ranker contract: one query and its K candidates -> a score per candidate.

Every re-ranker (today the local-feature one, :class:`~vgloc.rerank.LocalFeatureReranker`;
next the learned ones) implements :class:`BaseReranker` and registers its class in
:data:`vgloc.registry.RERANKERS`. The one loop over queries
(:func:`vgloc.rerank.run.score_candidates`) and the one resolver from a spec string
(:func:`vgloc.rerank.resolve_reranker`) only ever talk to this interface.

A re-ranker only SCORES pairs. Fusing with the global similarity and re-ordering are
the loop's job (:mod:`vgloc.rerank.fusion`), so the top K can be scored once and
re-ordered for any smaller K without scoring again.

What a registered class provides to the resolver (class methods):

- ``from_spec(spec, cache=None, **options)``: build from a spec string, parsing it once;
- ``check_spec(spec)``: validate a spec without building anything (no weights, no files);
- ``claims(spec) -> bool``: whether this kind owns the spec. The kind registered with
  ``fallback=True`` (the local-feature re-ranker) takes every spec nobody claims, so its
  parser is the one that explains a mistyped spec.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, TypeAlias

import numpy as np

from vgloc.rerank.fusion import order_by_scores

__all__ = ["BaseReranker", "ImagePath", "PairScores", "Prepared", "RerankResult"]

#: An image the re-rankers read: a file path (in-memory images are not supported yet:
#: local features are cached by path).
ImagePath: TypeAlias = "str | os.PathLike[str]"


class PairScores(NamedTuple):
    """A re-ranker's verdict on one query's candidates, in the candidates' given order.

    Attributes:
        scores: (K,) float64 local score of each pair (higher = more likely the same place).
        inliers: (K,) int64 verified correspondences of each pair; -1 where the
            re-ranker has no such count.
        ms: (K,) float64 time spent on each pair in ms, or None when the re-ranker
            scores the K pairs jointly (the loop then splits the measured time evenly).
    """

    scores: np.ndarray
    inliers: np.ndarray
    ms: np.ndarray | None = None


class Prepared(NamedTuple):
    """What :meth:`BaseReranker.prepare` did before the timed loop.

    Attributes:
        images: how many database images were prepared (0: none).
        ms_per_image: mean preparation time per image in ms (NaN when none).
    """

    images: int = 0
    ms_per_image: float = float("nan")


class RerankResult(NamedTuple):
    """One query's re-ranking (:meth:`BaseReranker.rerank`).

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


class BaseReranker(abc.ABC):
    """Scores a query against its retrieved candidates.

    Subclasses set :attr:`spec` (an object whose ``str()`` is the canonical spec string)
    and implement :meth:`score`; the hooks :meth:`prepare`, :meth:`prepare_query` and
    :meth:`release` let the loop time database, query and pair work separately, and
    default to doing nothing.

    Attributes:
        kind: the registry name (``"local"``, ...).
        spec: the parsed spec; ``str(spec)`` is canonical (``"rootsift+mnn+ransac"``).
        fusion: the fusion the re-ranker was built with (None: the local score alone); the
            loop uses it when the caller gives none.
        fusion_weight: the weight of the global similarity in that fusion.
    """

    kind: ClassVar[str] = ""
    spec: Any
    fusion: str | None = None
    fusion_weight: float = 0.5

    # -- building (class methods the resolver calls) -------------------------------------
    @classmethod
    def claims(cls, spec: str) -> bool:
        """Whether ``spec`` names this kind of re-ranker (default: no; see the module doc)."""
        del spec
        return False

    @classmethod
    def check_spec(cls, spec: str) -> None:
        """Raise ValueError (UnknownNameError for an unknown part) if ``spec`` is not valid.

        The default builds nothing and accepts only the kind's registered name; kinds with a
        spec grammar (``extractor+matcher+verifier``) override it.
        """
        if not cls.claims(spec):
            raise ValueError(f"{cls.__name__} does not read the spec {spec!r}")

    @classmethod
    def from_spec(cls, spec: str, cache: Any = None, **options: Any) -> BaseReranker:
        """Build from a spec string (parsed here, once).

        The default checks the spec and calls the constructor with the options (a kind
        without a spec grammar); kinds that parse specs override it.
        """
        cls.check_spec(spec)
        if cache is not None:
            options["cache"] = cache
        return cls(**options)

    # -- scoring -------------------------------------------------------------------------
    @abc.abstractmethod
    def score(self, query: ImagePath, candidates: Sequence[ImagePath]) -> PairScores:
        """Score each candidate against the query.

        Args:
            query: the query image.
            candidates: the K candidate images, in retrieval order.

        Returns:
            Per candidate, in the given order: (K,) scores, (K,) inlier counts and,
            optionally, (K,) times.
        """

    def prepare(
        self,
        database: Sequence[Path],
        *,
        num_queries: int,
        memory_budget_mb: float,
        progress: bool = False,
    ) -> Prepared:
        """Get ready for these candidates before the loop starts its clock (default: nothing).

        A deployment does this offline (e.g. extracting the database's local features),
        so the loop reports it per database image, not per query.

        Args:
            database: the distinct database images that will be scored.
            num_queries: how many queries will follow (they may need room too).
            memory_budget_mb: memory the re-ranker may use to hold prepared data.
            progress: show a progress bar.
        """
        del database, num_queries, memory_budget_mb, progress
        return Prepared()

    def prepare_query(self, query: ImagePath) -> None:
        """Do the per-query work that does not depend on a candidate (default: nothing).

        The loop times it as the query's own cost (e.g. extracting its features).
        """
        del query

    def prefetch_query(self, query: ImagePath) -> None:  # noqa: B027 (optional hook)
        """Start the per-query work of the NEXT query in the background (default: nothing).

        The loop calls it before scoring the current query, so a re-ranker whose
        per-query work releases the GIL (OpenCV, torch) overlaps it with the current
        query's matching. It must not change any result: :meth:`prepare_query` of that
        query then only waits for (and raises the errors of) the background work.
        """

    def release(self) -> None:  # noqa: B027 (optional hook: doing nothing is the default)
        """Give back what :meth:`prepare` borrowed (memory); default: nothing.

        The loop calls it at its end unless the caller keeps the prepared data for a
        following call (``keep_features=True``).
        """

    def close(self) -> None:  # noqa: B027 (optional hook: most re-rankers hold nothing to release)
        """Release files and models this re-ranker opened itself (default: nothing)."""

    def __enter__(self) -> BaseReranker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.spec)!r})"

    # -- one query, for interactive use ---------------------------------------------------
    def rerank(
        self,
        query: ImagePath,
        candidates: Sequence[ImagePath],
        global_sims: np.ndarray | Sequence[float] | None = None,
    ) -> RerankResult:
        """Score and re-order one query's candidates (the re-ranker's own fusion applies).

        Batches of queries go through :func:`vgloc.rerank.run.score_candidates`, which
        also times each step; this is the same scoring and ordering for one query.

        Args:
            query: the query image.
            candidates: the K candidates, in their retrieval order.
            global_sims: (K,) global similarities (higher = more similar); needed only
                for fusion.

        Returns:
            ``(order, scores, inliers)``: the new order (a permutation of ``range(K)``,
            best first, ties in the given order) and, per candidate in the given order,
            the ranking score and the inlier count. Shape: (K,) each.
        """
        k = len(candidates)
        sims = None
        if global_sims is not None:
            sims = np.asarray(global_sims, np.float64).reshape(-1)
            if len(sims) != k:
                raise ValueError(f"{k} candidates but {len(sims)} global similarities")
        if self.fusion is not None and sims is None:
            raise ValueError(f"fusion={self.fusion!r} needs the global similarities (global_sims)")
        pairs = self.score(query, candidates)
        order, scores = order_by_scores(pairs.scores, sims, self.fusion, self.fusion_weight)
        return RerankResult(order, scores, np.asarray(pairs.inliers, np.int64))
