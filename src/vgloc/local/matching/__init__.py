"""Matching local features between two images.

:mod:`~vgloc.local.matching.base` holds the contract (results, matcher bases, the
:data:`MATCHERS` registry); :mod:`~vgloc.local.matching.nearest` the weight-free
nearest-neighbour matchers (``mnn``, ``ratio``); :mod:`~vgloc.local.matching.learned`
LightGlue and LoFTR. Importing this package registers all of them (torch and kornia
are imported only when a learned matcher is built).
"""

from __future__ import annotations

from vgloc.local.matching.base import (
    MATCHERS,
    Correspondences,
    DenseMatcher,
    MatchResult,
    SparseMatcher,
    create_matcher,
)
from vgloc.local.matching.learned import LightGlueMatcher, LoFTRMatcher
from vgloc.local.matching.nearest import (
    MNNMatcher,
    RatioMatcher,
    descriptor_distances,
    mutual_nearest_neighbours,
    ratio_test,
)

__all__ = [
    "MATCHERS",
    "Correspondences",
    "DenseMatcher",
    "LightGlueMatcher",
    "LoFTRMatcher",
    "MNNMatcher",
    "MatchResult",
    "RatioMatcher",
    "SparseMatcher",
    "create_matcher",
    "descriptor_distances",
    "mutual_nearest_neighbours",
    "ratio_test",
]
