"""The one place that goes from a re-ranker spec string to a re-ranker object.

Re-ranker kinds register their class in :data:`vgloc.registry.RERANKERS` (see
:mod:`vgloc.rerank.base` for the class methods the resolver calls). A spec string is
parsed once, here, by the kind that claims it; everything downstream (the loop in
:mod:`vgloc.rerank.run`, the evaluation protocol, the Localizer) takes the object.
The kind registered with ``fallback=True`` (``"local"``) reads every spec no other
kind claims, so a mistyped ``extractor+matcher+verifier`` is explained by its parser.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vgloc.registry import RERANKERS
from vgloc.rerank.base import BaseReranker
from vgloc.rerank.fusion import check_fusion

__all__ = ["check_rerank_options", "reranker_kind_for_spec", "resolve_reranker"]


def reranker_kind_for_spec(spec: str) -> type[BaseReranker]:
    """The registered re-ranker class that reads ``spec``.

    Args:
        spec: a re-ranker spec string.

    Returns:
        The first registered kind (by name) whose ``claims(spec)`` is true, else the
        fallback kind.

    Raises:
        ValueError: ``spec`` is not a non-empty string.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty re-ranker spec {spec!r}: pass e.g. 'rootsift+mnn+ransac'")
    kind: type[BaseReranker] = RERANKERS.claimant(spec)
    return kind


def resolve_reranker(spec: str | BaseReranker, cache: Any = None, **options: Any) -> BaseReranker:
    """A re-ranker from a spec string (parsed once), or a built one returned unchanged.

    Args:
        spec: a spec string (``"rootsift+mnn+ransac"``, ``"loftr+ransac"``, ...) or a
            :class:`~vgloc.rerank.base.BaseReranker`.
        cache: an HDF5 feature cache (a path or a :class:`~vgloc.local.FeatureCache`) for
            re-rankers that cache per-image data; only with a spec string.
        **options: constructor keywords of the kind (for ``"local"``:
            ``extractor_options``, ``matcher_options``, ``verifier_options``, ``fusion``,
            ``memory_cache``, ``cache_queries``, ...); only with a spec string.

    Returns:
        The re-ranker. One built here is the caller's to close (``with`` works).

    Raises:
        UnknownNameError: a part of the spec is not registered (the message lists close
            names and the known ones).
        ValueError: a malformed spec, or a cache/options given with a built re-ranker.
        TypeError: ``spec`` is neither a string nor a re-ranker.

    Example:
        >>> with resolve_reranker("rootsift+mnn+ransac", cache="features.h5") as rr:
        ...     scores = score_candidates(q_paths, db_paths, ids, sims, rr, k=100)
    """
    if isinstance(spec, BaseReranker):
        if cache is not None or options:
            raise ValueError("pass the cache and options to the Reranker itself when giving a built one")
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"a re-ranker is a spec string or a BaseReranker, got {type(spec).__name__}")
    return reranker_kind_for_spec(spec).from_spec(spec, cache=cache, **options)


def check_rerank_options(
    spec: str | BaseReranker | None,
    k: int,
    cache: object,
    fusion: str | None,
    sweep: Sequence[int] | None,
    fusion_weight: float = 0.5,
) -> None:
    """Validate re-ranking settings up front, before any expensive work.

    Builds nothing (no weights loaded, no cache opened): the spec is only checked by
    the kind that would read it. The messages name the arguments of
    :func:`vgloc.evaluate` / :func:`vgloc.locate` (``rerank_k``, ``rerank_fusion``, ...).

    Args:
        spec: the re-ranker spec, a built re-ranker, or None (no re-ranking).
        k: candidates to re-rank per query.
        cache: the feature cache argument (only checked to be absent without a spec).
        fusion: None, ``"zscore"`` or ``"linear"``.
        sweep: K values of a sweep, or None.
        fusion_weight: the weight of the global similarity in the fusion.

    Raises:
        UnknownNameError: an unknown part in the spec (close names listed).
        ValueError: anything else that does not fit, naming the argument.
    """
    if spec is None:
        extras = {"rerank_cache": cache, "rerank_fusion": fusion, "rerank_sweep": sweep}
        given = [name for name, value in extras.items() if value is not None]
        if given:
            raise ValueError(
                f"{', '.join(given)} given without a re-ranker: pass rerank='rootsift+mnn+ransac' (or another spec)"
            )
        return
    if not isinstance(spec, BaseReranker):
        # raises with the valid parts listed (for "local": extractors, matchers, verifiers)
        reranker_kind_for_spec(spec).check_spec(spec)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"rerank_k must be a positive integer, got {k!r}")
    check_fusion(fusion, fusion_weight, what="rerank_fusion")
    if sweep is not None:
        from vgloc.rerank.sweep import check_sweep_ks

        check_sweep_ks(sweep, None)
