"""Match drawings: layout and colours on a hand-built example, and a PNG from two Lund photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vgloc.rerank import draw_matches, visualize_pair
from vgloc.rerank.visualize import INLIER_COLOUR, OUTLIER_COLOUR


def test_draw_matches_layout_and_colours() -> None:
    black = np.zeros((100, 100, 3), np.uint8)
    p0 = np.array([[10.0, 80.0], [10.0, 10.0]])
    p1 = np.array([[10.0, 80.0], [90.0, 90.0]])
    canvas = draw_matches(black, black, p0, p1, np.array([True, False]), height=100)
    assert canvas.shape == (100, 208, 3)  # 100 + 8 px gap + 100
    # Inlier: (10, 80) -> (118, 80), a horizontal green line.
    assert tuple(canvas[80, 60]) == INLIER_COLOUR
    # Outlier: (10, 10) -> (198, 90) passes x = 104 (the white gap) at y = 50, in red.
    # (anti-aliased over the white gap: within a few levels of the colour)
    assert np.abs(canvas[50, 104].astype(int) - OUTLIER_COLOUR).max() <= 20
    with pytest.raises(ValueError, match="inlier flags"):
        draw_matches(black, black, p0, p1, np.array([True]))


def test_visualize_pair_writes_a_png(lund_dir: Path, tmp_path: Path) -> None:
    out, ver = visualize_pair(lund_dir / "01.jpg", lund_dir / "02.jpg", tmp_path / "pair.png", height=240)
    im = np.asarray(Image.open(out).convert("RGB"))
    assert im.shape[0] == 240 and im.shape[1] == 2 * 320 + 8  # two 4:3 photos at 240 px
    assert ver.num_inliers >= 20
    greens = np.all(im == INLIER_COLOUR, axis=2).sum()
    assert greens > 100  # inlier lines were drawn
