"""Learned local feature extractors: DISK, ALIKED (through kornia) and SuperPoint.

They need weights: a file given with ``weights=``, or the published checkpoints
(torch hub cache first, then a download when ``download=True``). Without either
they raise :class:`~vgloc.local.WeightsUnavailableError` saying what was tried and
how to pass a file. torch and kornia are imported when a model is built.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from typing import Any

import numpy as np

from vgloc.local.features.base import EXTRACTORS, LocalFeatureExtractor
from vgloc.local.image import Resize
from vgloc.local.weights import file_digest, load_weights_file, pretrained_or_error

__all__ = ["ALIKEDExtractor", "DISKExtractor", "SuperPointExtractor"]


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
    """SuperPoint (DeTone et al., 2018), the network in :mod:`vgloc.local.features.superpoint`.

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
        from vgloc.local.features.superpoint import SUPERPOINT_URLS, SuperPoint

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
