"""Re-ranking retrieved candidates: re-rankers behind one contract, one loop, one resolver.

- :mod:`~vgloc.rerank.base`: the contract, :class:`BaseReranker` (``score(query,
  candidates)`` -> per-candidate scores and inliers, ``close()``);
- :mod:`~vgloc.rerank.local_features`: :class:`LocalFeatureReranker`, registered in
  :data:`vgloc.registry.RERANKERS` as ``"local"``: local features, a matcher and a
  geometric verifier from :mod:`vgloc.local`, named ``extractor+matcher+verifier``;
- :mod:`~vgloc.rerank.resolve`: :func:`resolve_reranker` (a spec string is parsed
  once, into an object) and :func:`check_rerank_options` (settings checked up front);
- :mod:`~vgloc.rerank.run`: the one loop, :func:`score_candidates`, and
  :func:`rerank_predictions` on top of it;
- :mod:`~vgloc.rerank.fusion`: fusing with the global similarity, ordering;
- :mod:`~vgloc.rerank.sweep`: recall and time against K, and their files;
- :mod:`~vgloc.rerank.visualize`: a pair's inlier (green) and outlier (red) matches.

    >>> from vgloc.rerank import resolve_reranker, score_candidates
    >>> with resolve_reranker("rootsift+mnn+ransac", cache="features/rootsift.h5") as rr:
    ...     scored = score_candidates(q_paths, db_paths, preds, sims, rr, k=100)
    >>> reordered = scored.rerank(20)   # predictions, similarities, scores, inliers, ms/query

A new re-ranker is a new module here that subclasses :class:`BaseReranker`, registers
itself in ``RERANKERS`` (with ``claims(spec)``, ``check_spec(spec)`` and
``from_spec(spec, cache, **options)``), and is imported below.

The local-feature names this package always exported (extractors, matchers,
verifiers, :class:`FeatureCache`, :class:`ClassicalVLAD`, ...) are re-exported from
:mod:`vgloc.local`, where they now live; ``Reranker`` is :class:`LocalFeatureReranker`.
Importing this package is light: OpenCV, h5py, kornia and torch are imported when
first used.
"""

from __future__ import annotations

from vgloc.local import (
    EXTRACTORS,
    MATCHERS,
    VERIFIERS,
    AKAZEExtractor,
    ALIKEDExtractor,
    CacheCorruptError,
    CacheMismatchError,
    ClassicalVLAD,
    Correspondences,
    CountVerifier,
    DenseMatcher,
    DISKExtractor,
    FeatureCache,
    FundamentalVerifier,
    HomographyVerifier,
    LightGlueMatcher,
    LocalFeatureExtractor,
    LocalFeatures,
    LoFTRMatcher,
    MatchResult,
    MNNMatcher,
    ORBExtractor,
    RapidSpatialVerifier,
    RatioMatcher,
    RootSIFTExtractor,
    SIFTExtractor,
    SparseMatcher,
    SuperPointExtractor,
    Verification,
    Verifier,
    WeightsUnavailableError,
    create_extractor,
    create_matcher,
    create_verifier,
    descriptor_distances,
    fit_fundamental,
    fit_homography,
    image_fingerprint,
    mutual_nearest_neighbours,
    rapid_spatial_score,
    ratio_test,
    root_sift,
    vlad,
)
from vgloc.rerank.base import BaseReranker, PairScores, Prepared, RerankResult
from vgloc.rerank.fusion import fuse_scores, order_by_scores
from vgloc.rerank.local_features import LocalFeatureReranker, Reranker, RerankerSpec, parse_spec
from vgloc.rerank.resolve import check_rerank_options, reranker_kind_for_spec, resolve_reranker
from vgloc.rerank.run import CandidateScores, Reranked, rerank_predictions, score_candidates
from vgloc.rerank.sweep import SweepPoint, check_sweep_ks, rerank_sweep, write_sweep
from vgloc.rerank.visualize import draw_matches, save_match_figure, visualize_pair

__all__ = [
    "EXTRACTORS",
    "MATCHERS",
    "VERIFIERS",
    "AKAZEExtractor",
    "ALIKEDExtractor",
    "BaseReranker",
    "CacheCorruptError",
    "CacheMismatchError",
    "CandidateScores",
    "ClassicalVLAD",
    "Correspondences",
    "CountVerifier",
    "DISKExtractor",
    "DenseMatcher",
    "FeatureCache",
    "FundamentalVerifier",
    "HomographyVerifier",
    "LightGlueMatcher",
    "LoFTRMatcher",
    "LocalFeatureExtractor",
    "LocalFeatureReranker",
    "LocalFeatures",
    "MNNMatcher",
    "MatchResult",
    "ORBExtractor",
    "PairScores",
    "Prepared",
    "RapidSpatialVerifier",
    "RatioMatcher",
    "RerankResult",
    "Reranked",
    "Reranker",
    "RerankerSpec",
    "RootSIFTExtractor",
    "SIFTExtractor",
    "SparseMatcher",
    "SuperPointExtractor",
    "SweepPoint",
    "Verification",
    "Verifier",
    "WeightsUnavailableError",
    "check_rerank_options",
    "check_sweep_ks",
    "create_extractor",
    "create_matcher",
    "create_verifier",
    "descriptor_distances",
    "draw_matches",
    "fit_fundamental",
    "fit_homography",
    "fuse_scores",
    "image_fingerprint",
    "mutual_nearest_neighbours",
    "order_by_scores",
    "parse_spec",
    "rapid_spatial_score",
    "ratio_test",
    "rerank_predictions",
    "rerank_sweep",
    "reranker_kind_for_spec",
    "resolve_reranker",
    "root_sift",
    "save_match_figure",
    "score_candidates",
    "visualize_pair",
    "vlad",
    "write_sweep",
]
