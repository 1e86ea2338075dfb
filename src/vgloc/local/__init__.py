"""Local features: extraction, matching, geometric verification, caching, classical VLAD.

The layer below re-ranking (:mod:`vgloc.rerank`) and the classical global descriptor
(:mod:`vgloc.models.classical`); it never imports either, so both can build on it.

- :mod:`~vgloc.local.features`: extractors (SIFT, RootSIFT, ORB, AKAZE; DISK, ALIKED,
  SuperPoint with weights) returning :class:`LocalFeatures` in the original image frame;
- :mod:`~vgloc.local.matching`: matchers (MNN, ratio test; LightGlue, LoFTR with
  weights) returning :class:`Correspondences`;
- :mod:`~vgloc.local.verify`: verifiers (MAGSAC homography / fundamental, rapid
  spatial scoring, match count) returning a :class:`Verification`;
- :mod:`~vgloc.local.cache`: :class:`FeatureCache`, an HDF5 store of features keyed by
  image path and content;
- :mod:`~vgloc.local.vlad`: :class:`ClassicalVLAD`, the weight-free RootSIFT+VLAD
  global descriptor;
- :mod:`~vgloc.local.image` and :mod:`~vgloc.local.weights`: image loading with the
  working-resolution resize, and weight loading for the learned models.

Each kind registers in its own registry (:data:`EXTRACTORS`, :data:`MATCHERS`,
:data:`VERIFIERS`) at import. Importing this package is light: OpenCV, h5py, kornia
and torch are imported when first used.

Example:
    >>> from vgloc.local import create_extractor, create_matcher, create_verifier
    >>> ext = create_extractor("rootsift")
    >>> f0, f1 = ext.extract_path("a.jpg"), ext.extract_path("b.jpg")
    >>> ver = create_verifier("ransac").verify(create_matcher("mnn").correspondences(f0, f1))
    >>> ver.num_inliers
"""

from __future__ import annotations

from vgloc.local.cache import CacheCorruptError, CacheMismatchError, FeatureCache, image_fingerprint
from vgloc.local.features import (
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
from vgloc.local.matching import (
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
from vgloc.local.verify import (
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
    rapid_spatial_score,
)
from vgloc.local.vlad import ClassicalVLAD, vlad
from vgloc.local.weights import WeightsUnavailableError

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
    "fit_fundamental",
    "fit_homography",
    "image_fingerprint",
    "mutual_nearest_neighbours",
    "rapid_spatial_score",
    "ratio_test",
    "root_sift",
    "vlad",
]
