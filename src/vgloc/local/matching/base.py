"""The matching contract: :class:`MatchResult`, :class:`Correspondences`, the matcher bases.

Two kinds of matcher register in :data:`MATCHERS`:

- sparse matchers (:class:`SparseMatcher`) match the :class:`~vgloc.local.LocalFeatures`
  of two images and return keypoint index pairs: ``mnn`` and ``ratio``
  (:mod:`~vgloc.local.matching.nearest`), ``lightglue``
  (:mod:`~vgloc.local.matching.learned`);
- dense matchers (:class:`DenseMatcher`) match two images directly, with no
  extractor and nothing to cache: ``loftr``.

:class:`Correspondences` is what both produce for verification: matched point pairs in
the original image frames, with the scales that map them to the working frames.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from vgloc.local.features import LocalFeatures
from vgloc.local.image import to_working
from vgloc.registry import Registry

__all__ = ["MATCHERS", "Correspondences", "DenseMatcher", "MatchResult", "SparseMatcher", "create_matcher"]

#: name -> matcher class. Metadata: ``dense`` (detector-free, no extractor), ``learned``.
MATCHERS: Registry[type[SparseMatcher] | type[DenseMatcher]] = Registry("matcher")


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class MatchResult:
    """Matches between the keypoints of two images.

    Attributes:
        matches: (M, 2) int64 index pairs ``(i in image 0, j in image 1)``.
        scores: (M,) float32 match quality, higher is better (``-distance`` for the
            nearest-neighbour matchers, the matching probability for LightGlue).
    """

    matches: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.matches)


@dataclass(frozen=True)
class Correspondences:
    """Matched point pairs between two images, with what verification needs.

    Attributes:
        points0: (M, 2) float32 (x, y) in image 0's original frame.
        points1: (M, 2) float32 (x, y) in image 1's original frame.
        scores: (M,) float32 match quality (higher is better).
        scale0: image 0's (sx, sy) working / original scale.
        scale1: image 1's (sx, sy) working / original scale.
        working_size0: image 0's (width, height) at the matching resolution.
        working_size1: image 1's (width, height) at the matching resolution.
        num_keypoints0: keypoints detected in image 0 (M for dense matchers); used to
            normalise scores as Patch-NetVLAD does with its number of query patches.
        indices: (M, 2) int64 keypoint indices for sparse matchers, else None.
    """

    points0: np.ndarray
    points1: np.ndarray
    scores: np.ndarray
    scale0: tuple[float, float]
    scale1: tuple[float, float]
    working_size0: tuple[int, int]
    working_size1: tuple[int, int]
    num_keypoints0: int
    indices: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.points0)

    def working_points(self) -> tuple[np.ndarray, np.ndarray]:
        """Both point sets in their working frames (where pixel thresholds apply)."""
        return to_working(self.points0, self.scale0), to_working(self.points1, self.scale1)

    @classmethod
    def from_matches(cls, f0: LocalFeatures, f1: LocalFeatures, result: MatchResult) -> Correspondences:
        """Point pairs of a sparse match result."""
        m = np.asarray(result.matches, np.int64).reshape(-1, 2)
        return cls(
            points0=f0.keypoints[m[:, 0]],
            points1=f1.keypoints[m[:, 1]],
            scores=np.asarray(result.scores, np.float32).reshape(-1),
            scale0=f0.scale,
            scale1=f1.scale,
            working_size0=f0.working_size,
            working_size1=f1.working_size,
            num_keypoints0=len(f0),
            indices=m,
        )


# ----------------------------------------------------------------------------- matchers


class SparseMatcher(ABC):
    """Matches two sets of :class:`LocalFeatures`."""

    name: ClassVar[str] = ""
    dense: ClassVar[bool] = False

    def check_extractor(self, extractor: Any) -> None:
        """Raise ValueError if this matcher cannot match ``extractor``'s features."""
        del extractor  # nearest-neighbour matchers match any descriptor type

    @abstractmethod
    def match(self, f0: LocalFeatures, f1: LocalFeatures) -> MatchResult:
        """Match image 0's features to image 1's.

        Args:
            f0: image 0's features (N0 keypoints).
            f1: image 1's features (N1 keypoints).

        Returns:
            Index pairs (M, 2) and scores (M,).
        """

    def correspondences(self, f0: LocalFeatures, f1: LocalFeatures) -> Correspondences:
        """Match and return point pairs (original frames)."""
        return Correspondences.from_matches(f0, f1, self.match(f0, f1))

    def config(self) -> dict[str, Any]:
        """The matcher's parameters (for reports)."""
        return {"name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class DenseMatcher(ABC):
    """Detector-free matching of two images (no extractor, no cache)."""

    name: ClassVar[str] = ""
    dense: ClassVar[bool] = True

    @abstractmethod
    def match_images(self, image0: np.ndarray, image1: np.ndarray) -> Correspondences:
        """Match two RGB images.

        Args:
            image0: (H0, W0, 3) uint8 RGB.
            image1: (H1, W1, 3) uint8 RGB.

        Returns:
            Point pairs in the original frames.
        """

    def config(self) -> dict[str, Any]:
        return {"name": self.name}


def create_matcher(name: str, **options: Any) -> SparseMatcher | DenseMatcher:
    """Build a registered matcher by name (``mnn``, ``ratio``, ``lightglue``, ``loftr``).

    Raises:
        UnknownNameError: unknown name (the message lists close matches).
    """
    return MATCHERS.get(name)(**options)
