"""The local-feature contract: :class:`LocalFeatures`, :class:`LocalFeatureExtractor`, the registry.

Every extractor has the same interface: ``extractor(image)`` or
``extractor.extract_path(path)`` returns :class:`LocalFeatures` with keypoints in
the ORIGINAL image frame (the file's pixels after the EXIF rotation), whatever
resize was used for detection. The extractors themselves live beside this file,
one per family (:mod:`~vgloc.local.features.opencv`,
:mod:`~vgloc.local.features.learned`), and register in :data:`EXTRACTORS`.

Defaults (documented choices):

- ``max_keypoints=2048``: vismatch's default and To-Match's CLI ``--n-kpts``
  (PROTOCOLS 6.1). The strongest keypoints by detector response are kept.
- ``resize=640``: the longer side is shrunk to at most 640 px, aspect kept (never
  upscaled). For 4:3 street photos that is Patch-NetVLAD's 640x480 (PROTOCOLS 5).
  To-Match's 512x512 square resize (PROTOCOLS 6.2) is ``resize=(512, 512)``; the
  default keeps the aspect because a non-uniform squash distorts the local
  patches that SIFT-like descriptors describe, and costs nothing to avoid.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from vgloc.local.image import Resize, as_rgb, check_resize, load_rgb, resize_image, to_original
from vgloc.registry import Registry

__all__ = ["EXTRACTORS", "LocalFeatureExtractor", "LocalFeatures", "create_extractor", "root_sift"]

#: name -> extractor class. Metadata: ``binary`` (Hamming descriptors), ``learned``.
EXTRACTORS: Registry[type[LocalFeatureExtractor]] = Registry("local feature extractor")


@dataclass(frozen=True)
class LocalFeatures:
    """The local features of one image.

    Attributes:
        keypoints: (N, 2) float32 (x, y) pixel coordinates in the original frame.
        descriptors: (N, D) float32, or (N, B) uint8 packed bits for binary descriptors.
        scores: (N,) float32 detector responses (higher is stronger).
        scales: (N,) float32 keypoint diameter in original-frame pixels (0 where undefined).
        oris: (N,) float32 keypoint orientation in radians (0 where undefined).
        image_size: original (width, height).
        working_size: (width, height) of the resized image the features were detected on.
    """

    keypoints: np.ndarray
    descriptors: np.ndarray
    scores: np.ndarray
    scales: np.ndarray
    oris: np.ndarray
    image_size: tuple[int, int]
    working_size: tuple[int, int]

    def __post_init__(self) -> None:
        n = len(self.keypoints)
        if self.keypoints.shape != (n, 2):
            raise ValueError(f"keypoints must be (N, 2), got {self.keypoints.shape}")
        if self.descriptors.ndim != 2 or len(self.descriptors) != n:
            raise ValueError(f"descriptors must be (N={n}, D), got {self.descriptors.shape}")
        for name in ("scores", "scales", "oris"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must be (N={n},), got {getattr(self, name).shape}")

    def __len__(self) -> int:
        return len(self.keypoints)

    @property
    def binary(self) -> bool:
        """True for packed binary descriptors (compared with the Hamming distance)."""
        return bool(self.descriptors.dtype == np.uint8)

    @property
    def scale(self) -> tuple[float, float]:
        """Per-axis (sx, sy) = working size / original size."""
        return (
            self.working_size[0] / self.image_size[0],
            self.working_size[1] / self.image_size[1],
        )

    @classmethod
    def empty(
        cls, dim: int, binary: bool, image_size: tuple[int, int], working_size: tuple[int, int]
    ) -> LocalFeatures:
        """Features of an image where nothing was detected."""
        z = np.zeros(0, np.float32)
        desc = np.zeros((0, dim), np.uint8 if binary else np.float32)
        return cls(np.zeros((0, 2), np.float32), desc, z, z.copy(), z.copy(), image_size, working_size)


def root_sift(descriptors: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """RootSIFT (Arandjelović & Zisserman, 2012): L1-normalise, then element-wise square root.

    The Euclidean distance between RootSIFT vectors is the Hellinger kernel
    distance between the SIFT histograms, which matches better than L2 on SIFT.
    The result has unit L2 norm (rows that were all zero stay zero).

    Args:
        descriptors: non-negative SIFT descriptors. Shape: (N, D).
        eps: guards the division for all-zero rows.

    Returns:
        RootSIFT descriptors. Shape: (N, D) float32.
    """
    d = np.asarray(descriptors, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"descriptors must be (N, D), got shape {d.shape}")
    if d.size and float(d.min()) < 0:
        raise ValueError("RootSIFT needs non-negative descriptors (SIFT histograms)")
    d = d / (np.abs(d).sum(axis=1, keepdims=True) + eps)
    return np.sqrt(d).astype(np.float32)


class LocalFeatureExtractor(ABC):
    """Base class: resize, detect in the working frame, map back to the original frame.

    Subclasses implement :meth:`_detect` and set ``name``, ``binary`` and
    ``descriptor_dim``.

    Args:
        max_keypoints: keep at most this many keypoints (the strongest); ``None`` keeps all.
        resize: the working resolution rule (see :mod:`vgloc.local.image`): an int caps
            the longer side, ``(width, height)`` is exact, ``None`` keeps the original.
    """

    name: ClassVar[str] = ""
    binary: ClassVar[bool] = False
    descriptor_dim: ClassVar[int] = 0
    #: the kornia LightGlue configuration trained on these features, or None.
    lightglue_features: ClassVar[str | None] = None

    def __init__(self, max_keypoints: int | None = 2048, resize: Resize = 640) -> None:
        if max_keypoints is not None and (isinstance(max_keypoints, bool) or int(max_keypoints) <= 0):
            raise ValueError(f"max_keypoints must be a positive int or None, got {max_keypoints!r}")
        self.max_keypoints = None if max_keypoints is None else int(max_keypoints)
        self.resize = check_resize(resize)

    # -- interface ----------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """JSON-serialisable parameters that determine the output (recorded in caches)."""
        return {
            "name": self.name,
            "max_keypoints": self.max_keypoints,
            "resize": list(self.resize) if isinstance(self.resize, tuple) else self.resize,
            **self._extra_config(),
        }

    def _extra_config(self) -> dict[str, Any]:
        return {}

    def __call__(self, image: np.ndarray) -> LocalFeatures:
        """Extract features from an in-memory image.

        Args:
            image: RGB uint8 image (grey is accepted). Shape: (H, W, 3) or (H, W).

        Returns:
            The features, keypoints in the frame of ``image``.
        """
        rgb = as_rgb(image)
        h, w = rgb.shape[:2]
        work, scale = resize_image(rgb, self.resize)
        wh, ww = work.shape[:2]
        kpts, desc, scores, scales, oris = self._detect(work)
        n = len(kpts)
        if n == 0:
            return LocalFeatures.empty(self.descriptor_dim, self.binary, (w, h), (ww, wh))
        order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
        if self.max_keypoints is not None:
            order = order[: self.max_keypoints]
        mean_scale = float(np.sqrt(scale[0] * scale[1]))
        return LocalFeatures(
            keypoints=to_original(np.asarray(kpts, np.float32)[order], scale),
            descriptors=np.ascontiguousarray(desc[order]),
            scores=np.asarray(scores, np.float32)[order],
            scales=(np.asarray(scales, np.float32)[order] / mean_scale).astype(np.float32),
            oris=np.asarray(oris, np.float32)[order],
            image_size=(w, h),
            working_size=(ww, wh),
        )

    def extract_path(self, path: str | os.PathLike[str]) -> LocalFeatures:
        """Read an image file (EXIF orientation applied) and extract its features.

        Raises:
            DataError: naming the file when it cannot be read.
        """
        return self(load_rgb(path))

    @abstractmethod
    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Detect and describe on the working-frame RGB image.

        Returns:
            keypoints (N, 2) working-frame (x, y), descriptors (N, D), scores (N,),
            scales (N,) in working pixels, orientations (N,) in radians.
        """

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


def create_extractor(name: str, **options: Any) -> LocalFeatureExtractor:
    """Build a registered extractor by name.

    Args:
        name: a name in :data:`EXTRACTORS` (``sift``, ``rootsift``, ``orb``, ``akaze``, ``disk``,
            ``aliked``, ``superpoint``).
        **options: constructor arguments (``max_keypoints``, ``resize``, ``weights``, ...).

    Returns:
        The extractor.

    Raises:
        UnknownNameError: unknown name (the message lists close matches).
    """
    return EXTRACTORS.get(name)(**options)
