"""Draw a query and a candidate side by side with their matches (inliers green, outliers red)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vgloc.io import atomic_path
from vgloc.local.image import load_rgb

__all__ = ["INLIER_COLOUR", "OUTLIER_COLOUR", "draw_matches", "save_match_figure", "visualize_pair"]

#: RGB colours of the drawn matches.
INLIER_COLOUR = (0, 200, 0)
OUTLIER_COLOUR = (230, 0, 0)


def draw_matches(
    image0: np.ndarray,
    image1: np.ndarray,
    points0: np.ndarray,
    points1: np.ndarray,
    inliers: np.ndarray | None = None,
    *,
    height: int = 480,
    max_outliers: int | None = 200,
    title: str | None = None,
) -> np.ndarray:
    """Render two images side by side with lines between matched points.

    Both images are scaled to ``height`` (aspect kept); inlier matches are drawn green,
    outliers red and thinner, inliers on top.

    Args:
        image0: (H0, W0, 3) uint8 RGB, e.g. the query.
        image1: (H1, W1, 3) uint8 RGB, e.g. the candidate.
        points0: (M, 2) (x, y) in ``image0``'s pixels.
        points1: (M, 2) matching (x, y) in ``image1``'s pixels.
        inliers: (M,) bool; None draws every match as an inlier.
        height: the output height in pixels.
        max_outliers: draw at most this many outliers (evenly subsampled) so the
            inliers stay visible; None draws all.
        title: text written in the top-left corner.

    Returns:
        The canvas. Shape: (height, W, 3) uint8 RGB.
    """
    import cv2

    p0 = np.asarray(points0, np.float64).reshape(-1, 2)
    p1 = np.asarray(points1, np.float64).reshape(-1, 2)
    if len(p0) != len(p1):
        raise ValueError(f"point sets differ in length: {len(p0)} vs {len(p1)}")
    mask = np.ones(len(p0), bool) if inliers is None else np.asarray(inliers, bool).reshape(-1)
    if len(mask) != len(p0):
        raise ValueError(f"{len(p0)} matches but {len(mask)} inlier flags")

    def fit(img: np.ndarray) -> tuple[np.ndarray, float]:
        s = height / img.shape[0]
        return cv2.resize(img, (max(1, round(img.shape[1] * s)), height), interpolation=cv2.INTER_AREA), s

    a, sa = fit(np.ascontiguousarray(image0))
    b, sb = fit(np.ascontiguousarray(image1))
    gap = 8
    canvas = np.full((height, a.shape[1] + gap + b.shape[1], 3), 255, np.uint8)
    canvas[:, : a.shape[1]] = a
    canvas[:, a.shape[1] + gap :] = b
    q0 = np.rint((p0 + 0.5) * sa - 0.5).astype(int)
    q1 = np.rint((p1 + 0.5) * sb - 0.5).astype(int)
    q1[:, 0] += a.shape[1] + gap

    out_idx = np.flatnonzero(~mask)
    if max_outliers is not None and len(out_idx) > max_outliers:
        out_idx = out_idx[np.linspace(0, len(out_idx) - 1, max_outliers).round().astype(int)]
    for idx, colour, thick in ((out_idx, OUTLIER_COLOUR, 1), (np.flatnonzero(mask), INLIER_COLOUR, 2)):
        for i in idx:
            x0, y0 = int(q0[i, 0]), int(q0[i, 1])
            x1, y1 = int(q1[i, 0]), int(q1[i, 1])
            cv2.line(canvas, (x0, y0), (x1, y1), colour, thick, cv2.LINE_AA)
            cv2.circle(canvas, (x0, y0), 3, colour, -1, cv2.LINE_AA)
            cv2.circle(canvas, (x1, y1), 3, colour, -1, cv2.LINE_AA)
    if title:
        for colour, thick in (((0, 0, 0), 4), ((255, 255, 255), 1)):
            cv2.putText(canvas, title, (10, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, thick, cv2.LINE_AA)
    return canvas


def save_match_figure(canvas: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write an RGB canvas as a PNG, atomically.

    Args:
        canvas: (H, W, 3) uint8 RGB.
        path: the output ``.png`` file.

    Returns:
        The path written.
    """
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(canvas), cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"OpenCV could not encode the figure for {path}")
    with atomic_path(path, suffix=".png") as tmp:
        tmp.write_bytes(buf.tobytes())
    return Path(path)


def visualize_pair(
    query_path: str | os.PathLike[str],
    candidate_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    reranker: Any = "rootsift+mnn+ransac",
    **draw_options: Any,
) -> tuple[Path, Any]:
    """Match, verify and draw one query-candidate pair into a PNG.

    Args:
        query_path: the query image.
        candidate_path: the candidate image.
        out_path: the output ``.png``.
        reranker: a :class:`~vgloc.rerank.LocalFeatureReranker` or a spec string (it
            must draw point correspondences, which only local-feature re-rankers have).
        **draw_options: passed to :func:`draw_matches` (``height``, ``max_outliers``).

    Returns:
        The PNG path and the :class:`~vgloc.local.Verification`.
    """
    from vgloc.rerank.local_features import LocalFeatureReranker
    from vgloc.rerank.resolve import resolve_reranker

    rr = resolve_reranker(reranker)
    try:
        if not isinstance(rr, LocalFeatureReranker):
            raise TypeError(
                f"{rr.spec!s} has no point correspondences to draw: use a local-feature re-ranker"
            )
        corr, ver = rr.verify_pair(query_path, candidate_path)
    finally:
        if rr is not reranker:
            rr.close()
    title = draw_options.pop("title", None) or (
        f"{rr.spec}: {ver.num_inliers} inliers / {len(corr)} matches, score {ver.score:.4g}"
    )
    canvas = draw_matches(
        load_rgb(query_path),
        load_rgb(candidate_path),
        corr.points0,
        corr.points1,
        ver.inliers,
        title=title,
        **draw_options,
    )
    return save_match_figure(canvas, out_path), ver
