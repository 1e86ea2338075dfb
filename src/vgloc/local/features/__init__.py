"""Local feature extractors, one module per family, registered in :data:`EXTRACTORS`.

- :mod:`~vgloc.local.features.base`: the contract (:class:`LocalFeatures`,
  :class:`LocalFeatureExtractor`), :func:`root_sift`, the registry;
- :mod:`~vgloc.local.features.opencv`: ``sift``, ``rootsift``, ``orb``, ``akaze``;
- :mod:`~vgloc.local.features.learned`: ``disk``, ``aliked`` (kornia), ``superpoint``
  (the network in :mod:`~vgloc.local.features.superpoint`).

Importing this package registers every extractor; OpenCV, torch and kornia are
imported only when an extractor is built or run.
"""

from __future__ import annotations

from vgloc.local.features.base import (
    EXTRACTORS,
    LocalFeatureExtractor,
    LocalFeatures,
    create_extractor,
    root_sift,
)
from vgloc.local.features.learned import ALIKEDExtractor, DISKExtractor, SuperPointExtractor
from vgloc.local.features.opencv import AKAZEExtractor, ORBExtractor, RootSIFTExtractor, SIFTExtractor

__all__ = [
    "EXTRACTORS",
    "AKAZEExtractor",
    "ALIKEDExtractor",
    "DISKExtractor",
    "LocalFeatureExtractor",
    "LocalFeatures",
    "ORBExtractor",
    "RootSIFTExtractor",
    "SIFTExtractor",
    "SuperPointExtractor",
    "create_extractor",
    "root_sift",
]
