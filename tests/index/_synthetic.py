"""Synthetic descriptors for index tests: Gaussian mixtures on the unit sphere."""

from __future__ import annotations

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32."""
    x = np.asarray(x, dtype=np.float64)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def sphere_centers(n_clusters: int, dim: int, seed: int) -> np.ndarray:
    """Cluster centres uniform on the unit sphere, (n_clusters, dim) float32."""
    return unit(np.random.default_rng(seed).standard_normal((n_clusters, dim)))


def sphere_mixture(n: int, centers: np.ndarray, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors drawn around random ``centers``.

    A point is ``normalise(c + spread * g / sqrt(D))`` with ``g`` standard normal, so its
    noise has norm close to ``spread`` and its cosine to its centre is about
    ``1 / sqrt(1 + spread**2)``.

    Returns:
        (points float32 (n, D), labels int64 (n,)).
    """
    rng = np.random.default_rng(seed)
    k, d = centers.shape
    labels = rng.integers(0, k, size=n)
    noise = rng.standard_normal((n, d)) * (spread / np.sqrt(d))
    return unit(centers[labels] + noise), labels
