"""The local-feature re-ranker's fast path: batched matching, pooled verification, early exit.

:class:`FastScorer` scores one query's K candidates the way the per-pair loop of
:meth:`~vgloc.rerank.LocalFeatureReranker.score` does (match, then verify each pair),
with the same result, faster:

- **Batched matching.** :func:`~vgloc.local.matching.batched.match_many` computes the
  distances to a chunk of candidates in one GEMM and runs the mutual-nearest-neighbour or
  ratio checks on the whole chunk (torch; CPU or GPU). On CPU the matches are identical
  to the per-pair numpy matcher's.
- **Verification in a thread pool.** OpenCV's robust estimators release the GIL, so the
  pairs' RANSAC runs on several cores at once, overlapping the matching of the next
  chunk. Each pair's verification is the same call as in the per-pair path (USAC is
  seeded per call, so the result does not depend on the thread).
- **Early exit (opt-in, ``exact_top=n``).** A homography cannot have more inliers than
  tentative matches (:meth:`~vgloc.local.verify.Verifier.score_bound`). Candidates are
  verified in decreasing order of that bound, in waves of a few pairs; once a candidate's
  bound is below the n-th best score verified so far, it and every candidate after it
  cannot enter the top n, and are not verified. Exactly what differs from verifying
  everything: the first n positions of the re-ranked list (candidates, order, scores,
  inliers) are identical; the skipped candidates get a NaN score and -1 inliers, so they
  come after every verified candidate, in retrieval order, instead of interleaved with the
  verified ones by their (unknown) scores. Re-ordering only a shorter head (``K < k``) or
  fusing with the global similarity needs every score, so the loop refuses ``exact_top``
  with fusion.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from vgloc.local.features import LocalFeatures
from vgloc.local.matching import Correspondences, SparseMatcher
from vgloc.local.matching.batched import DEFAULT_CHUNK_ELEMENTS, chunk_ranges, match_chunk, prepare_query
from vgloc.local.verify import Verification, Verifier

__all__ = ["FastScorer", "default_workers"]

T = TypeVar("T")


def default_workers() -> int:
    """Verification threads by default: the cores this process may use, at most 8."""
    return max(
        1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    )


class FastScorer:
    """Scores a query's candidates with batched matching and pooled verification.

    Args:
        workers: threads that match chunks and verify pairs (None: :func:`default_workers`;
            1: everything in the calling thread, no pool).
        exact_top: None (default) verifies every candidate; ``n`` stops verifying once
            the top ``n`` cannot change (see the module doc for what then differs).
        device: None (default): numpy on CPU; a torch device (``"cuda"``, ``"cpu"``, ...):
            the batched matching in torch there.
        max_elements: cap on the elements of one chunk's distance tensor.
    """

    def __init__(
        self,
        workers: int | None = None,
        exact_top: int | None = None,
        device: Any = None,
        max_elements: int = DEFAULT_CHUNK_ELEMENTS,
    ) -> None:
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers must be a positive integer or None, got {workers!r}")
        if exact_top is not None and (
            isinstance(exact_top, bool) or not isinstance(exact_top, int) or exact_top < 1
        ):
            raise ValueError(f"exact_top must be a positive integer or None, got {exact_top!r}")
        if max_elements < 1:
            raise ValueError(f"max_elements must be positive, got {max_elements}")
        self.workers = default_workers() if workers is None else workers
        self.exact_top = exact_top
        self.device = device
        self.max_elements = int(max_elements)
        self._pool: ThreadPoolExecutor | None = None
        self._threads: Any = None
        #: candidates verified / skipped by the early exit, over all calls (for reports).
        self.verified = 0
        self.skipped = 0

    def close(self) -> None:
        """Stop the thread pool (a later call starts a new one)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def score(
        self,
        matcher: SparseMatcher,
        verifier: Verifier,
        query: LocalFeatures,
        candidates: Sequence[LocalFeatures],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Match and verify the query against each candidate.

        Args:
            matcher: an ``mnn`` or ``ratio`` matcher
                (:func:`~vgloc.local.matching.batched.can_match_many`).
            verifier: the verifier.
            query: the query's features (image 0).
            candidates: the K candidates' features (image 1 of each pair).

        Returns:
            ``(scores, inliers)``: (K,) float64 verification scores and (K,) int64 inlier
            counts in the candidates' order; NaN and -1 for candidates the early exit
            skipped.
        """
        from threadpoolctl import ThreadpoolController

        k = len(candidates)
        scores = np.full(k, np.nan)
        inliers = np.full(k, -1, np.int64)
        q = prepare_query(query)
        verify_now = self.exact_top is None

        def task(start: int, stop: int) -> tuple[list[Correspondences], list[Verification]]:
            # Match a chunk, then (without early exit) verify its pairs in the same thread:
            # the chunks run on all workers at once, matching and RANSAC overlapping.
            results = match_chunk(matcher, q, candidates[start:stop], device=self.device)
            corrs = [
                Correspondences.from_matches(query, candidates[start + j], r) for j, r in enumerate(results)
            ]
            return corrs, [verifier.verify(c) for c in corrs] if verify_now else []

        ranges = chunk_ranges(query, candidates, self.max_elements)
        # Each thread runs its own small GEMMs: BLAS's own threads would only contend with them.
        if self._threads is None:
            # Inspecting the loaded libraries costs ~1 ms: done once, not per query.
            self._threads = ThreadpoolController()
        with self._threads.limit(limits=1, user_api="blas"):
            done = self._map(task, ranges)
            corrs: list[Correspondences] = [c for chunk, _ in done for c in chunk]
            if not verify_now:
                return self._early_exit(verifier, corrs, scores, inliers)
        for c, ver in enumerate(v for _, vers in done for v in vers):
            scores[c], inliers[c] = ver.score, ver.num_inliers
        self.verified += k
        return scores, inliers

    def _map(self, fn: Callable[..., T], args: Sequence[tuple[Any, ...]]) -> list[T]:
        """``[fn(*a) for a in args]`` on the worker threads (in order)."""
        if self.workers == 1 or len(args) <= 1:
            return [fn(*a) for a in args]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="vgloc-rerank")
        futures = [self._pool.submit(fn, *a) for a in args]
        return [f.result() for f in futures]

    def _early_exit(
        self,
        verifier: Verifier,
        corrs: list[Correspondences],
        scores: np.ndarray,
        inliers: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        assert self.exact_top is not None
        k = len(corrs)
        bounds = np.array([_bound(verifier, len(c)) for c in corrs])
        # Highest bound first; equal bounds in retrieval order (np.argsort is stable).
        order = np.argsort(-bounds, kind="stable")
        # Waves of a few pairs keep the pool busy; a wave is decided before it starts, so
        # which candidates are skipped does not depend on thread timing.
        wave = max(1, self.workers)
        pos = 0
        while pos < k:
            done = scores[~np.isnan(scores)]
            threshold = -np.inf
            if len(done) >= self.exact_top:
                threshold = np.partition(done, len(done) - self.exact_top)[len(done) - self.exact_top]
            batch: list[int] = []
            while pos < k and len(batch) < wave:
                c = int(order[pos])
                # Strictly below: a candidate that can only tie the n-th may still win the tie
                # by its earlier retrieval rank, so it is verified.
                if bounds[c] < threshold:
                    break
                batch.append(c)
                pos += 1
            if not batch:
                break
            for c, ver in zip(batch, self._map(verifier.verify, [(corrs[c],) for c in batch]), strict=True):
                scores[c], inliers[c] = ver.score, ver.num_inliers
        self.verified += pos
        self.skipped += k - pos
        return scores, inliers


def _bound(verifier: Verifier, num_matches: int) -> float:
    bound = verifier.score_bound(num_matches)
    return np.inf if bound is None else float(bound)
