"""Re-ranking retrieved candidates with local features and geometric verification.

Pipeline: local features (:mod:`~vgloc.rerank.features`, cached in HDF5 by
:mod:`~vgloc.rerank.cache`) -> matches (:mod:`~vgloc.rerank.matching`) -> a
verification score (:mod:`~vgloc.rerank.verify`) -> a new order
(:mod:`~vgloc.rerank.reranker`). A spec string names the three parts:

    >>> from vgloc.rerank import Reranker, rerank_predictions
    >>> rr = Reranker("rootsift+mnn+ransac", cache="features/rootsift.h5")
    >>> order, scores, inliers = rr.rerank(query_path, candidate_paths)
    >>> new_preds, scores, ms = rerank_predictions(q_paths, db_paths, preds, sims, "sift+ratio+fundamental")

Also here: :class:`ClassicalVLAD`, a weight-free RootSIFT+VLAD global descriptor,
and :func:`visualize_pair`, which draws a pair's inlier (green) and outlier (red)
matches.

Importing this package is light: OpenCV, h5py, kornia and torch are imported
when first used.
"""

from __future__ import annotations

from vgloc.rerank._weights import WeightsUnavailableError
from vgloc.rerank.cache import CacheCorruptError, CacheMismatchError, FeatureCache, image_fingerprint
from vgloc.rerank.classical import ClassicalVLAD, vlad
from vgloc.rerank.features import (
    EXTRACTORS,
    AKAZEExtractor,
    ALIKEDExtractor,
    DISKExtractor,
    LocalFeatureExtractor,
    LocalFeatures,
    ORBExtractor,
    RootSIFTExtractor,
    SIFTExtractor,
    SuperPointExtractor,
    create_extractor,
    root_sift,
)
from vgloc.rerank.matching import (
    MATCHERS,
    Correspondences,
    DenseMatcher,
    LightGlueMatcher,
    LoFTRMatcher,
    MatchResult,
    MNNMatcher,
    RatioMatcher,
    SparseMatcher,
    create_matcher,
    descriptor_distances,
    mutual_nearest_neighbours,
    ratio_test,
)
from vgloc.rerank.reranker import Reranker, RerankerSpec, RerankResult, parse_spec, rerank_predictions
from vgloc.rerank.verify import (
    VERIFIERS,
    CountVerifier,
    FundamentalVerifier,
    HomographyVerifier,
    RapidSpatialVerifier,
    Verification,
    Verifier,
    create_verifier,
    fit_fundamental,
    fit_homography,
    fuse_scores,
    rapid_spatial_score,
)
from vgloc.rerank.visualize import draw_matches, save_match_figure, visualize_pair

__all__ = [
    "EXTRACTORS",
    "MATCHERS",
    "VERIFIERS",
    "AKAZEExtractor",
    "ALIKEDExtractor",
    "CacheCorruptError",
    "CacheMismatchError",
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
    "LocalFeatures",
    "MNNMatcher",
    "MatchResult",
    "ORBExtractor",
    "RapidSpatialVerifier",
    "RatioMatcher",
    "RerankResult",
    "Reranker",
    "RerankerSpec",
    "RootSIFTExtractor",
    "SIFTExtractor",
    "SparseMatcher",
    "SuperPointExtractor",
    "Verification",
    "Verifier",
    "WeightsUnavailableError",
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
    "parse_spec",
    "rapid_spatial_score",
    "ratio_test",
    "rerank_predictions",
    "root_sift",
    "save_match_figure",
    "visualize_pair",
    "vlad",
]
