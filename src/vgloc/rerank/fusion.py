"""Fusing local scores with global similarities, and ordering candidates by a score.

Both are per query and shared by every re-ranker: a re-ranker only scores pairs
(:meth:`~vgloc.rerank.base.BaseReranker.score`); fusion and ordering happen here, once,
so that scoring the top K once can serve any smaller K (:mod:`vgloc.rerank.run`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["FUSIONS", "check_fusion", "fuse_scores", "order_by_scores"]

#: The fusion modes: None (the local score alone, as To-Match), "zscore", "linear".
FUSIONS: tuple[str | None, ...] = (None, "zscore", "linear")


def check_fusion(fusion: str | None, weight: float, what: str = "fusion") -> None:
    """Raise ValueError for an unknown fusion mode or a zscore weight outside [0, 1].

    Args:
        fusion: the mode (see :data:`FUSIONS`).
        weight: the weight of the global similarity.
        what: how the caller names the mode in messages (``"rerank_fusion"``).
    """
    if fusion not in FUSIONS:
        raise ValueError(f"{what} must be None, 'zscore' or 'linear', got {fusion!r}")
    if fusion == "zscore" and not 0.0 <= weight <= 1.0:
        raise ValueError(f"zscore fusion weight must be in [0, 1], got {weight}")


def _zscore(x: np.ndarray) -> np.ndarray:
    std = x.std()
    return np.zeros_like(x) if std == 0 or not np.isfinite(std) else (x - x.mean()) / std


def fuse_scores(
    local: np.ndarray,
    global_sims: np.ndarray,
    mode: str = "zscore",
    weight: float = 0.5,
) -> np.ndarray:
    """Combine local verification scores with global similarities over one query's candidates.

    - ``"zscore"``: ``(1 − w)·z(local) + w·z(global)``, with ``z`` the z-normalisation
      over the K candidates (Patch-NetVLAD fuses its per-patch-size scores this way,
      PROTOCOLS 5; here the global similarity is the second score). A constant score
      contributes 0.
    - ``"linear"``: ``local + w·global``. With inlier counts and cosine similarities
      and ``w`` around 1, the global term mostly breaks near-ties.

    Args:
        local: Shape (K,) local scores (higher is better).
        global_sims: Shape (K,) global similarities (higher is better).
        mode: ``"zscore"`` or ``"linear"``.
        weight: ``w`` above; for ``"zscore"`` in [0, 1].

    Returns:
        Shape (K,) float64 fused scores.
    """
    loc = np.asarray(local, np.float64).reshape(-1)
    glo = np.asarray(global_sims, np.float64).reshape(-1)
    if loc.shape != glo.shape:
        raise ValueError(f"local scores {loc.shape} and global similarities {glo.shape} differ in shape")
    if mode == "zscore":
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"zscore fusion weight must be in [0, 1], got {weight}")
        return (1.0 - weight) * _zscore(loc) + weight * _zscore(glo)
    if mode == "linear":
        return loc + weight * glo
    raise ValueError(f"unknown fusion mode {mode!r}; use 'zscore' or 'linear'")


def order_by_scores(
    local: np.ndarray,
    global_sims: np.ndarray | None = None,
    fusion: str | None = None,
    weight: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """The new order of one query's candidates, and the score it sorts by.

    The sort is stable and descending: ties keep the given (retrieval) order, as the
    evaluation protocols expect (To-Match's ``torch.sort`` leaves it unspecified).

    Args:
        local: (K,) local scores, in the candidates' given order.
        global_sims: (K,) global similarities in the same order; needed for fusion.
        fusion: None (sort by ``local``), ``"zscore"`` or ``"linear"`` (see :func:`fuse_scores`).
        weight: the weight of the global similarity in the fusion.

    Returns:
        ``(order, scores)``: (K,) int64 permutation, best first; (K,) float64 ranking
        score of each candidate in the GIVEN order (the fused score with fusion).
    """
    scores = np.asarray(local, np.float64).reshape(-1)
    if fusion is not None:
        if global_sims is None:
            raise ValueError(f"fusion={fusion!r} needs the global similarities")
        scores = fuse_scores(scores, global_sims, fusion, weight)
    return np.argsort(-scores, kind="stable").astype(np.int64), scores
