"""Local feature extractors: SIFT, RootSIFT, ORB, AKAZE (OpenCV), DISK, ALIKED (kornia), SuperPoint.

Every extractor has the same interface: ``extractor(image)`` or
``extractor.extract_path(path)`` returns :class:`LocalFeatures` with keypoints in
the ORIGINAL image frame (the file's pixels after the EXIF rotation), whatever
resize was used for detection.

Defaults (documented choices):

- ``max_keypoints=2048``: vismatch's default and To-Match's CLI ``--n-kpts``
  (PROTOCOLS 6.1). The strongest keypoints by detector response are kept.
- ``resize=640``: the longer side is shrunk to at most 640 px, aspect kept (never
  upscaled). For 4:3 street photos that is Patch-NetVLAD's 640x480 (PROTOCOLS 5).
  To-Match's 512x512 square resize (PROTOCOLS 6.2) is ``resize=(512, 512)``; the
  default keeps the aspect because a non-uniform squash distorts the local
  patches that SIFT-like descriptors describe, and costs nothing to avoid.

Learned extractors (DISK, ALIKED, SuperPoint) take their weights from ``weights=``
(a file) or from the published URLs (torch hub cache first; through kornia, or
torch.hub for SuperPoint, see :mod:`vgloc.rerank.superpoint`); otherwise they
raise :class:`~vgloc.rerank.WeightsUnavailableError` saying what was tried.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from vgloc.registry import Registry
from vgloc.rerank._image import Resize, as_rgb, check_resize, load_rgb, resize_image, to_original
from vgloc.rerank._weights import file_digest, load_weights_file, pretrained_or_error

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
        resize: the working resolution rule (see :mod:`vgloc.rerank._image`): an int caps
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


# ----------------------------------------------------------------------------- OpenCV


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


# ----------------------------------------------------------------------------- kornia (learned)


class _KorniaExtractor(LocalFeatureExtractor):
    """Shared plumbing of the learned extractors: weights, device, RGB tensor input."""

    def __init__(
        self,
        max_keypoints: int | None,
        resize: Resize,
        weights: str | os.PathLike[str] | None,
        download: bool,
        device: str,
    ) -> None:
        super().__init__(max_keypoints, resize)
        self.weights = None if weights is None else os.fspath(weights)
        self.download = bool(download)
        self.device = str(device)
        # A digest, not the path, identifies the weights in cache metadata: the same
        # file moved still matches, a different file at the same path does not.
        self._weights_id = (
            file_digest(self.weights) if self.weights and os.path.isfile(self.weights) else None
        )
        self.model = self._load_model()

    @abstractmethod
    def _load_model(self) -> Any: ...

    def _tensor(self, image: np.ndarray) -> Any:
        import torch

        t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255.0)
        return t[None].to(self.device)


@EXTRACTORS.register("disk", binary=False, learned=True, description="DISK via kornia (128-D float, weights)")
class DISKExtractor(_KorniaExtractor):
    """DISK (Tyszkiewicz et al., 2020) through ``kornia.feature.DISK``.

    Args:
        max_keypoints: see :class:`LocalFeatureExtractor`.
        resize: see :class:`LocalFeatureExtractor`.
        weights: a DISK checkpoint file (``depth-save.pth`` from cvlab-epfl/disk, or a
            plain state dict). ``None`` uses kornia's published checkpoint.
        checkpoint: kornia's published checkpoint, ``"depth"`` or ``"epipolar"``.
        download: allow kornia to download the published checkpoint on a cache miss.
        device: torch device.

    Raises:
        WeightsUnavailableError: no file was given and the published weights could
            not be loaded (offline); the message lists the URLs and how to pass a file.
    """

    name = "disk"
    descriptor_dim = 128
    lightglue_features = "disk"

    def __init__(
        self,
        max_keypoints: int | None = 2048,
        resize: Resize = 640,
        weights: str | os.PathLike[str] | None = None,
        checkpoint: str = "depth",
        download: bool = True,
        device: str = "cpu",
    ) -> None:
        self.checkpoint = checkpoint
        super().__init__(max_keypoints, resize, weights, download, device)

    def _extra_config(self) -> dict[str, Any]:
        return {"weights": self._weights_id or f"kornia:{self.checkpoint}"}

    def _load_model(self) -> Any:
        from kornia.feature import DISK
        from kornia.feature.disk.disk import urls

        if self.checkpoint not in urls:
            raise ValueError(f"unknown DISK checkpoint {self.checkpoint!r}; known: {sorted(urls)}")
        if self.weights is not None:
            model = DISK()
            model.load_state_dict(load_weights_file(self.weights, "DISK", keys=("extractor",)))
        else:
            model = pretrained_or_error(
                f"DISK ({self.checkpoint!r})",
                lambda: DISK.from_pretrained(self.checkpoint),
                urls[self.checkpoint],
                download=self.download,
                option_hint="DISKExtractor(weights='/path/to/depth-save.pth') "
                "(in a re-ranker spec: extractor_options={'weights': ...})",
            )
        return model.to(self.device).eval()

    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            feats = self.model(self._tensor(image), n=self.max_keypoints, pad_if_not_divisible=True)[0]
        kpts = feats.keypoints.cpu().numpy().astype(np.float32)
        z = np.zeros(len(kpts), np.float32)
        return (
            kpts,
            feats.descriptors.cpu().numpy().astype(np.float32),
            feats.detection_scores.cpu().numpy(),
            z,
            z,
        )


@EXTRACTORS.register(
    "aliked", binary=False, learned=True, description="ALIKED via kornia (128-D float, weights)"
)
class ALIKEDExtractor(_KorniaExtractor):
    """ALIKED (Zhao et al., 2023) through ``kornia.feature.ALIKED``.

    Args:
        max_keypoints: see :class:`LocalFeatureExtractor`.
        resize: see :class:`LocalFeatureExtractor`.
        weights: an ALIKED state dict file (e.g. ``aliked-n16.pth``). ``None`` uses the
            published checkpoint ``model_name``.
        model_name: ``"aliked-t16"``, ``"aliked-n16"`` (default), ``"aliked-n16rot"``, ``"aliked-n32"``.
        detection_threshold: score threshold (kornia default 0.2).
        download: allow kornia to download the published checkpoint on a cache miss.
        device: torch device.

    Raises:
        WeightsUnavailableError: as :class:`DISKExtractor`.
    """

    name = "aliked"
    descriptor_dim = 128
    lightglue_features = "aliked"

    def __init__(
        self,
        max_keypoints: int | None = 2048,
        resize: Resize = 640,
        weights: str | os.PathLike[str] | None = None,
        model_name: str = "aliked-n16",
        detection_threshold: float = 0.2,
        download: bool = True,
        device: str = "cpu",
    ) -> None:
        self.model_name = model_name
        self.detection_threshold = float(detection_threshold)
        super().__init__(max_keypoints, resize, weights, download, device)

    def _extra_config(self) -> dict[str, Any]:
        return {
            "weights": self._weights_id or f"kornia:{self.model_name}",
            "model_name": self.model_name,
            "detection_threshold": self.detection_threshold,
        }

    def _load_model(self) -> Any:
        from kornia.feature import ALIKED
        from kornia.feature.aliked.aliked import _CHECKPOINT_URLS

        n_max = self.max_keypoints or -1
        if self.weights is not None:
            model = ALIKED(self.model_name, n_max, self.detection_threshold)
            model.load_state_dict(load_weights_file(self.weights, "ALIKED"))
        else:
            model = pretrained_or_error(
                f"ALIKED ({self.model_name!r})",
                lambda: ALIKED.from_pretrained(self.model_name, n_max, self.detection_threshold),
                [t.format(self.model_name) for t in _CHECKPOINT_URLS],
                download=self.download,
                option_hint=f"ALIKEDExtractor(weights='/path/to/{self.model_name}.pth') "
                "(in a re-ranker spec: extractor_options={'weights': ...})",
            )
        return model.to(self.device).eval()

    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            feats = self.model(self._tensor(image))[0]
        kpts = feats.keypoints.cpu().numpy().astype(np.float32)
        z = np.zeros(len(kpts), np.float32)
        return (
            kpts,
            feats.descriptors.cpu().numpy().astype(np.float32),
            feats.keypoint_scores.cpu().numpy(),
            z,
            z,
        )


@EXTRACTORS.register(
    "superpoint", binary=False, learned=True, description="SuperPoint (MagicLeap, 256-D float, weights)"
)
class SuperPointExtractor(_KorniaExtractor):
    """SuperPoint (DeTone et al., 2018), the network in :mod:`vgloc.rerank.superpoint`.

    kornia has no SuperPoint; the published weights come through ``torch.hub``
    (hub cache first), from LightGlue's release ``superpoint_v1.pth`` and, failing
    that, MagicLeap's ``demo_superpoint.pth`` (the same tensors). Defaults are
    LightGlue's (PROTOCOLS 6.3): NMS radius 4, threshold 0.0005, border 4,
    longer side 1024; ``max_keypoints=2048`` as in vismatch/LightGlue configs.

    Args:
        max_keypoints: see :class:`LocalFeatureExtractor` (default 2048).
        resize: see :class:`LocalFeatureExtractor` (default 1024, longer side).
        weights: a SuperPoint state dict file (``superpoint_v1.pth``). ``None`` uses
            the published file.
        nms_radius: simple-NMS radius in working pixels.
        detection_threshold: minimum detector score.
        remove_borders: border width (working pixels) with no detections.
        download: allow downloading the published file on a cache miss.
        device: torch device.

    Raises:
        WeightsUnavailableError: as :class:`DISKExtractor`.
    """

    name = "superpoint"
    descriptor_dim = 256
    lightglue_features = "superpoint"

    def __init__(
        self,
        max_keypoints: int | None = 2048,
        resize: Resize = 1024,
        weights: str | os.PathLike[str] | None = None,
        nms_radius: int = 4,
        detection_threshold: float = 0.0005,
        remove_borders: int = 4,
        download: bool = True,
        device: str = "cpu",
    ) -> None:
        if int(nms_radius) <= 0 or int(remove_borders) < 0:
            raise ValueError(
                f"nms_radius must be > 0 and remove_borders >= 0, got {nms_radius!r}, {remove_borders!r}"
            )
        self.nms_radius = int(nms_radius)
        self.detection_threshold = float(detection_threshold)
        self.remove_borders = int(remove_borders)
        super().__init__(max_keypoints, resize, weights, download, device)

    def _extra_config(self) -> dict[str, Any]:
        return {
            "weights": self._weights_id or "published:superpoint_v1",
            "nms_radius": self.nms_radius,
            "detection_threshold": self.detection_threshold,
            "remove_borders": self.remove_borders,
        }

    def _load_model(self) -> Any:
        from vgloc.rerank.superpoint import SUPERPOINT_URLS, SuperPoint

        model = SuperPoint(self.max_keypoints, self.nms_radius, self.detection_threshold, self.remove_borders)
        if self.weights is not None:
            state = load_weights_file(self.weights, "SuperPoint")
        else:
            state = pretrained_or_error(
                "SuperPoint ('superpoint_v1')",
                lambda: _superpoint_state_from_hub(SUPERPOINT_URLS),
                SUPERPOINT_URLS,
                download=self.download,
                option_hint="SuperPointExtractor(weights='/path/to/superpoint_v1.pth') "
                "(in a re-ranker spec: extractor_options={'weights': ...})",
            )
        model.load_state_dict(state, strict=True)
        return model.to(self.device).eval()

    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        import torch

        rgb = self._tensor(image)
        # ITU-R 601 luma, as kornia's rgb_to_grayscale and LightGlue's SuperPoint.
        grey = (rgb * rgb.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        with torch.inference_mode():
            kpts, scores, desc = self.model(grey)[0]
        z = np.zeros(len(kpts), np.float32)
        return (
            kpts.cpu().numpy().astype(np.float32),
            desc.cpu().numpy().astype(np.float32),
            scores.cpu().numpy().astype(np.float32),
            z,
            z,
        )


def _superpoint_state_from_hub(urls: tuple[str, ...]) -> dict[str, Any]:
    """The published SuperPoint state dict: the torch hub cache, else each URL in turn."""
    import torch

    errors = []
    for url in urls:
        try:
            return dict(torch.hub.load_state_dict_from_url(url, map_location="cpu", weights_only=True))
        except Exception as exc:  # try the next mirror; the caller reports all failures
            errors.append(f"{url}: {type(exc).__name__}: {exc}")
    raise RuntimeError("; ".join(errors))


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
