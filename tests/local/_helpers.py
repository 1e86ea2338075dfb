"""Builders for re-ranking tests: textured synthetic images and warped copies of photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def textured_image(width: int = 256, height: int = 192, seed: int = 0) -> np.ndarray:
    """A random blob texture (plenty of SIFT/ORB keypoints). Shape (H, W, 3) uint8."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(img)


def write_rgb(path: Path, image: np.ndarray, quality: int = 95) -> Path:
    """Save an RGB array (JPEG or PNG by extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(np.asarray(image, np.uint8))
    if path.suffix.lower() in (".jpg", ".jpeg"):
        im.save(path, quality=quality)
    else:
        im.save(path)
    return path


def warped_copy(src: Path, dst: Path, crop: float = 0.8, shift: float = 0.04) -> Path:
    """Write a centrally cropped, slightly perspective-warped copy of a photo."""
    import cv2

    img = np.asarray(Image.open(src).convert("RGB"))
    h, w = img.shape[:2]
    cw, ch = int(w * crop), int(h * crop)
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    img = np.ascontiguousarray(img[y0 : y0 + ch, x0 : x0 + cw])
    d = shift * cw
    src_pts = np.float32([[0, 0], [cw, 0], [cw, ch], [0, ch]])
    dst_pts = np.float32([[d, 0], [cw - d, d], [cw, ch], [0, ch - d]])
    H = cv2.getPerspectiveTransform(src_pts, dst_pts)
    return write_rgb(dst, cv2.warpPerspective(img, H, (cw, ch), borderMode=cv2.BORDER_REFLECT))
