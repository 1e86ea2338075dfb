"""OpenCV local feature extractors: SIFT, RootSIFT, ORB and AKAZE (no weights needed).

OpenCV is imported when an extractor first detects (or, for AKAZE, at construction,
so a build without AKAZE fails early), so importing this module stays light.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vgloc.local.features.base import EXTRACTORS, LocalFeatureExtractor, root_sift
from vgloc.local.image import Resize

__all__ = ["AKAZEExtractor", "ORBExtractor", "RootSIFTExtractor", "SIFTExtractor"]


def _grey(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _unpack_cv_keypoints(kps: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not kps:
        z = np.zeros(0, np.float32)
        return np.zeros((0, 2), np.float32), z, z, z
    pts = np.array([k.pt for k in kps], dtype=np.float32)
    response = np.array([k.response for k in kps], dtype=np.float32)
    size = np.array([k.size for k in kps], dtype=np.float32)
    # OpenCV reports -1 for "no orientation"; LightGlue's SIFT model reads radians.
    angle = np.array([k.angle for k in kps], dtype=np.float32)
    return pts, response, size, np.deg2rad(np.where(angle < 0, 0.0, angle)).astype(np.float32)


@EXTRACTORS.register("sift", binary=False, learned=False, description="OpenCV SIFT (128-D float)")
class SIFTExtractor(LocalFeatureExtractor):
    """SIFT keypoints and descriptors through OpenCV (``cv2.SIFT_create``).

    Args:
        max_keypoints: see :class:`LocalFeatureExtractor` (default 2048).
        resize: see :class:`LocalFeatureExtractor` (default 640, longer side).
        contrast_threshold: OpenCV's ``contrastThreshold`` (default 0.04, Lowe's value).
        edge_threshold: OpenCV's ``edgeThreshold`` (default 10).
    """

    name = "sift"
    descriptor_dim = 128

    def __init__(
        self,
        max_keypoints: int | None = 2048,
        resize: Resize = 640,
        contrast_threshold: float = 0.04,
        edge_threshold: float = 10.0,
    ) -> None:
        super().__init__(max_keypoints, resize)
        self.contrast_threshold = float(contrast_threshold)
        self.edge_threshold = float(edge_threshold)

    def _extra_config(self) -> dict[str, Any]:
        return {"contrast_threshold": self.contrast_threshold, "edge_threshold": self.edge_threshold}

    def _describe(self, desc: np.ndarray) -> np.ndarray:
        return np.asarray(desc, np.float32)

    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        import cv2

        sift = cv2.SIFT.create(
            nfeatures=self.max_keypoints or 0,
            contrastThreshold=self.contrast_threshold,
            edgeThreshold=self.edge_threshold,
        )
        kps, desc = sift.detectAndCompute(_grey(image), None)
        pts, response, size, ori = _unpack_cv_keypoints(kps)
        if desc is None:
            desc = np.zeros((0, self.descriptor_dim), np.float32)
        return pts, self._describe(desc), response, size, ori


@EXTRACTORS.register(
    "rootsift", binary=False, learned=False, description="OpenCV SIFT + RootSIFT (128-D float)"
)
class RootSIFTExtractor(SIFTExtractor):
    """SIFT with RootSIFT descriptors (L1-normalise + square root, see :func:`root_sift`).

    The features LightGlue's ``sift`` model was trained on (LightGlue's SIFT
    extractor applies RootSIFT by default).
    """

    name = "rootsift"
    lightglue_features = "sift"

    def _describe(self, desc: np.ndarray) -> np.ndarray:
        return root_sift(desc)


@EXTRACTORS.register("orb", binary=True, learned=False, description="OpenCV ORB (256-bit binary)")
class ORBExtractor(LocalFeatureExtractor):
    """ORB keypoints and 256-bit binary descriptors through OpenCV (``cv2.ORB_create``).

    Args:
        max_keypoints: see :class:`LocalFeatureExtractor` (default 2048; ORB's own
            default of 500 is too few for re-ranking street photos).
        resize: see :class:`LocalFeatureExtractor`.
        scale_factor: pyramid decimation ratio (OpenCV default 1.2).
        n_levels: pyramid levels (OpenCV default 8).
        fast_threshold: FAST threshold (OpenCV default 20).
    """

    name = "orb"
    binary = True
    descriptor_dim = 32

    def __init__(
        self,
        max_keypoints: int | None = 2048,
        resize: Resize = 640,
        scale_factor: float = 1.2,
        n_levels: int = 8,
        fast_threshold: int = 20,
    ) -> None:
        super().__init__(max_keypoints, resize)
        self.scale_factor = float(scale_factor)
        self.n_levels = int(n_levels)
        self.fast_threshold = int(fast_threshold)

    def _extra_config(self) -> dict[str, Any]:
        return {
            "scale_factor": self.scale_factor,
            "n_levels": self.n_levels,
            "fast_threshold": self.fast_threshold,
        }

    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        import cv2

        orb = cv2.ORB.create(
            nfeatures=self.max_keypoints or 100_000,
            scaleFactor=self.scale_factor,
            nlevels=self.n_levels,
            fastThreshold=self.fast_threshold,
        )
        kps, desc = orb.detectAndCompute(_grey(image), None)
        pts, response, size, ori = _unpack_cv_keypoints(kps)
        if desc is None:
            desc = np.zeros((0, self.descriptor_dim), np.uint8)
        return pts, np.asarray(desc, np.uint8), response, size, ori


@EXTRACTORS.register("akaze", binary=True, learned=False, description="OpenCV AKAZE (486-bit binary MLDB)")
class AKAZEExtractor(LocalFeatureExtractor):
    """AKAZE keypoints and binary MLDB descriptors through OpenCV (``cv2.AKAZE_create``).

    AKAZE has no keypoint budget of its own: it detects everything above
    ``threshold`` and the strongest ``max_keypoints`` are kept.

    Args:
        max_keypoints: see :class:`LocalFeatureExtractor`.
        resize: see :class:`LocalFeatureExtractor`.
        threshold: detector response threshold (OpenCV default 0.001).

    Raises:
        RuntimeError: the installed OpenCV has no AKAZE (OpenCV 5 moved it out of the
            main package): install ``opencv-python-headless<5``.
    """

    name = "akaze"
    binary = True
    descriptor_dim = 61

    def __init__(
        self, max_keypoints: int | None = 2048, resize: Resize = 640, threshold: float = 0.001
    ) -> None:
        super().__init__(max_keypoints, resize)
        self.threshold = float(threshold)
        _akaze_factory()  # fail at construction, not at the first image

    def _extra_config(self) -> dict[str, Any]:
        return {"threshold": self.threshold}

    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        akaze = _akaze_factory()(threshold=self.threshold)
        kps, desc = akaze.detectAndCompute(_grey(image), None)
        pts, response, size, ori = _unpack_cv_keypoints(kps)
        if desc is None:
            desc = np.zeros((0, self.descriptor_dim), np.uint8)
        return pts, np.asarray(desc, np.uint8), response, size, ori


def _akaze_factory() -> Any:
    import cv2

    factory = getattr(cv2, "AKAZE_create", None)
    if factory is None:
        xf = getattr(cv2, "xfeatures2d", None)
        factory = getattr(xf, "AKAZE_create", None) if xf is not None else None
    if factory is None:
        raise RuntimeError(
            f"AKAZE is not available in OpenCV {cv2.__version__} (OpenCV 5 moved it out of the main "
            "package): install 'opencv-python-headless>=4.8,<5', or opencv-contrib-python-headless"
        )
    return factory
