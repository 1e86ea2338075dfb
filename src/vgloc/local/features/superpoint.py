"""The SuperPoint network (DeTone, Malisiewicz & Rabinovich, 2018), MagicLeap architecture.

kornia has no SuperPoint, so the network is written out here. The layer names
match the published ``superpoint_v1.pth`` (LightGlue's release, the same weights
as MagicLeap's ``demo_superpoint.pth``): ``conv1a.weight`` ... ``convDb.bias``, so
that file loads with ``strict=True``.

Architecture (MagicLeap ``SuperPointNet``; LightGlue ``lightglue/superpoint.py``):

- shared VGG-style encoder: 3x3 convs conv1a/conv1b (64), conv2a/conv2b (64),
  conv3a/conv3b (128), conv4a/conv4b (128), each followed by ReLU, with a 2x2
  max-pool after blocks 1-3 (output stride 8);
- detector head: convPa (3x3, 256, ReLU) -> convPb (1x1, 65 = 64 cells + dustbin),
  channel softmax, dustbin dropped, cells pixel-shuffled to full resolution;
- descriptor head: convDa (3x3, 256, ReLU) -> convDb (1x1, 256), L2-normalised,
  bilinearly sampled at the keypoints and L2-normalised again.

Post-processing (LightGlue defaults, PROTOCOLS 6.3): simple NMS with radius 4
(max-pool based), detection threshold 0.0005, scores within 4 px of the border
removed, strongest ``max_keypoints`` kept.

The input is a grey image in [0, 1], shape (B, 1, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SUPERPOINT_URLS", "SuperPoint", "remove_borders", "sample_descriptors", "simple_nms"]

#: the published weights: LightGlue's release first, MagicLeap's original second (same tensors).
SUPERPOINT_URLS: tuple[str, ...] = (
    "https://github.com/cvg/LightGlue/releases/download/v0.1_arxiv/superpoint_v1.pth",
    "https://github.com/magicleap/SuperPointPretrainedNetwork/raw/master/demo_superpoint.pth",
)


def simple_nms(scores: torch.Tensor, nms_radius: int) -> torch.Tensor:
    """Fast non-maximum suppression with max-pooling (SuperGlue/LightGlue ``simple_nms``).

    A pixel survives when it equals the maximum of its (2r+1)x(2r+1) window; two
    extra rounds recover maxima whose window held only suppressed pixels. Ties
    (equal neighbouring maxima) both survive, as in the reference.

    Args:
        scores: score maps. Shape: (B, H, W).
        nms_radius: suppression radius in pixels (> 0).

    Returns:
        ``scores`` with every non-maximum set to 0. Shape: (B, H, W).
    """
    if nms_radius <= 0:
        raise ValueError(f"nms_radius must be positive, got {nms_radius}")

    def max_pool(x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, kernel_size=nms_radius * 2 + 1, stride=1, padding=nms_radius)

    zeros = torch.zeros_like(scores)
    max_mask = scores == max_pool(scores)
    for _ in range(2):
        supp_mask = max_pool(max_mask.float()) > 0
        supp_scores = torch.where(supp_mask, zeros, scores)
        new_max_mask = supp_scores == max_pool(supp_scores)
        max_mask = max_mask | (new_max_mask & (~supp_mask))
    return torch.where(max_mask, scores, zeros)


def remove_borders(scores: torch.Tensor, border: int) -> torch.Tensor:
    """Set scores within ``border`` pixels of the image edge to -1 (never detected).

    Args:
        scores: Shape: (B, H, W). Modified in place and returned.
        border: width in pixels; 0 leaves the map unchanged.
    """
    if border > 0:
        scores[:, :border] = -1
        scores[:, :, :border] = -1
        scores[:, -border:] = -1
        scores[:, :, -border:] = -1
    return scores


def sample_descriptors(keypoints: torch.Tensor, descriptors: torch.Tensor, s: int = 8) -> torch.Tensor:
    """Bilinearly sample the dense descriptors at keypoint positions, then L2-normalise.

    Uses the reference mapping from full-resolution pixels to the stride-``s``
    descriptor grid (SuperGlue/LightGlue ``sample_descriptors``).

    Args:
        keypoints: (x, y) full-resolution pixel coordinates. Shape: (B, N, 2).
        descriptors: the dense map. Shape: (B, D, H/s, W/s).
        s: the network stride.

    Returns:
        Unit-norm descriptors. Shape: (B, D, N).
    """
    b, c, h, w = descriptors.shape
    kp = keypoints - s / 2 + 0.5
    kp = kp / kp.new_tensor([(w * s - s / 2 - 0.5), (h * s - s / 2 - 0.5)])
    kp = kp * 2 - 1
    out = F.grid_sample(descriptors, kp.view(b, 1, -1, 2), mode="bilinear", align_corners=True)
    return F.normalize(out.reshape(b, c, -1), p=2, dim=1)


class SuperPoint(nn.Module):
    """SuperPoint detector and descriptor (MagicLeap ``SuperPointNet`` layers + LightGlue post-processing).

    Args:
        max_keypoints: keep at most this many (the strongest); ``None`` keeps all.
        nms_radius: simple-NMS radius in pixels (default 4).
        detection_threshold: minimum score (default 0.0005).
        remove_borders: border width with no detections (default 4).
    """

    descriptor_dim = 256

    def __init__(
        self,
        max_keypoints: int | None = 2048,
        nms_radius: int = 4,
        detection_threshold: float = 0.0005,
        remove_borders: int = 4,
    ) -> None:
        super().__init__()
        self.max_keypoints = max_keypoints
        self.nms_radius = int(nms_radius)
        self.detection_threshold = float(detection_threshold)
        self.remove_borders = int(remove_borders)

        c1, c2, c3, c4, c5 = 64, 64, 128, 128, 256
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.conv1a = nn.Conv2d(1, c1, kernel_size=3, stride=1, padding=1)
        self.conv1b = nn.Conv2d(c1, c1, kernel_size=3, stride=1, padding=1)
        self.conv2a = nn.Conv2d(c1, c2, kernel_size=3, stride=1, padding=1)
        self.conv2b = nn.Conv2d(c2, c2, kernel_size=3, stride=1, padding=1)
        self.conv3a = nn.Conv2d(c2, c3, kernel_size=3, stride=1, padding=1)
        self.conv3b = nn.Conv2d(c3, c3, kernel_size=3, stride=1, padding=1)
        self.conv4a = nn.Conv2d(c3, c4, kernel_size=3, stride=1, padding=1)
        self.conv4b = nn.Conv2d(c4, c4, kernel_size=3, stride=1, padding=1)
        self.convPa = nn.Conv2d(c4, c5, kernel_size=3, stride=1, padding=1)
        self.convPb = nn.Conv2d(c5, 65, kernel_size=1, stride=1, padding=0)
        self.convDa = nn.Conv2d(c4, c5, kernel_size=3, stride=1, padding=1)
        self.convDb = nn.Conv2d(c5, self.descriptor_dim, kernel_size=1, stride=1, padding=0)

    def dense(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw heads: full-resolution scores and the dense L2-normalised descriptors.

        Args:
            image: grey in [0, 1]. Shape: (B, 1, H, W).

        Returns:
            scores (B, 8*(H//8), 8*(W//8)) before NMS, descriptors (B, 256, H//8, W//8).
        """
        x = self.relu(self.conv1a(image))
        x = self.relu(self.conv1b(x))
        x = self.pool(x)
        x = self.relu(self.conv2a(x))
        x = self.relu(self.conv2b(x))
        x = self.pool(x)
        x = self.relu(self.conv3a(x))
        x = self.relu(self.conv3b(x))
        x = self.pool(x)
        x = self.relu(self.conv4a(x))
        x = self.relu(self.conv4b(x))

        cpa = self.relu(self.convPa(x))
        scores = torch.softmax(self.convPb(cpa), dim=1)[:, :-1]
        b, _, h, w = scores.shape
        scores = scores.permute(0, 2, 3, 1).reshape(b, h, w, 8, 8)
        scores = scores.permute(0, 1, 3, 2, 4).reshape(b, h * 8, w * 8)

        cda = self.relu(self.convDa(x))
        descriptors = F.normalize(self.convDb(cda), p=2, dim=1)
        return scores, descriptors

    def forward(self, image: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Detect and describe.

        Args:
            image: grey in [0, 1]. Shape: (B, 1, H, W).

        Returns:
            Per image: keypoints (N, 2) (x, y) pixels, scores (N,), descriptors (N, 256)
            unit-norm, strongest first.
        """
        if image.ndim != 4 or image.shape[1] != 1:
            raise ValueError(f"SuperPoint expects a (B, 1, H, W) grey image, got {tuple(image.shape)}")
        scores, descriptors = self.dense(image)
        scores = remove_borders(simple_nms(scores, self.nms_radius), self.remove_borders)
        out = []
        for i in range(scores.shape[0]):
            idx = torch.nonzero(scores[i] > self.detection_threshold)  # (N, 2) as (y, x)
            s = scores[i][idx[:, 0], idx[:, 1]]
            if self.max_keypoints is not None and len(s) > self.max_keypoints:
                s, top = torch.topk(s, self.max_keypoints, dim=0)
                idx = idx[top]
            else:
                s, order = torch.sort(s, descending=True)
                idx = idx[order]
            kpts = torch.flip(idx, [1]).to(scores.dtype)
            desc = sample_descriptors(kpts[None], descriptors[i : i + 1], 8)[0].t()
            out.append((kpts, s, desc))
        return out
