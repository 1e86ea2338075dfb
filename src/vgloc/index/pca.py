"""Compact descriptors: PCA-whitening fitted on the database, kept inside the FAISS index.

``vgloc index build --pca 512`` (``GeoIndex.build(..., pca=512)``) wraps the index in a
FAISS ``IndexPreTransform`` whose chain is ``PCAMatrix`` (eigen power -1/2: whitening)
followed by L2 normalisation, i.e. the factory string ``PCAW512,L2norm,<factory>``. The
transform is fitted on the database descriptors when the index is trained, written
with the index (``index.faiss``, atomic and checksummed like every index file), and
FAISS applies it to every query, so ``vgloc locate`` and ``vgloc eval --index`` need no
extra step. The stored descriptors (``descriptors.npy``) are the reduced ones, so a
large database also stores ``pca`` floats per image instead of ``D``.

PCA-whitening followed by L2 normalisation is the standard compaction of global
place-recognition descriptors (Jegou & Chum, "Negative evidences and co-occurrences
in image retrieval: the benefit of PCA and whitening", ECCV 2012; used by NetVLAD,
Arandjelovic et al., CVPR 2016, to reduce 32k-d descriptors to 4096-d).
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from vgloc.index.faiss_common import _transforms

__all__ = ["PCA_PREFIX", "check_pca", "pca_factory", "pca_info", "reduce"]

#: The factory prefix: whitened PCA to ``dim`` dimensions, then L2 normalisation.
PCA_PREFIX = "PCAW{dim},L2norm,"


def check_pca(pca: Any, descriptor_dim: int, num_images: int) -> int:
    """Check a requested PCA output dimension before any expensive work.

    Args:
        pca: the requested dimension.
        descriptor_dim: the model's descriptor dimension D.
        num_images: database images the PCA is fitted on.

    Returns:
        ``pca`` as an int.

    Raises:
        ValueError: not a positive integer, not smaller than D (nothing to compact), or
            larger than the number of images (fewer samples than components: the extra
            directions would be noise, and whitening would blow them up).
    """
    if isinstance(pca, bool) or not isinstance(pca, (int, np.integer)) or pca < 1:
        raise ValueError(f"--pca must be a positive integer (output dimension), got {pca!r}")
    if pca >= descriptor_dim:
        raise ValueError(
            f"--pca {pca} must be smaller than the model's descriptor dimension {descriptor_dim} "
            "(PCA only compacts descriptors); leave --pca out to keep them whole"
        )
    if pca > num_images:
        raise ValueError(
            f"--pca {pca} needs at least {pca} database images to fit {pca} components, got {num_images}; "
            "choose a smaller --pca or index more images"
        )
    return int(pca)


def pca_factory(pca: int, factory: str) -> str:
    """The factory string that puts whitened PCA to ``pca`` dimensions in front of ``factory``."""
    return PCA_PREFIX.format(dim=pca) + factory.strip()


def pca_info(pca: int, descriptor_dim: int) -> dict[str, Any]:
    """What the index metadata records about its PCA (``extra["pca"]``)."""
    return {"dim": int(pca), "input_dim": int(descriptor_dim), "whiten": True, "fitted_on": "database"}


def reduce(index: faiss.Index, x: np.ndarray) -> np.ndarray:
    """Apply an index's pre-transform chain (PCA-whitening, L2 norm) to vectors.

    Args:
        index: a FAISS index; without a pre-transform ``x`` is returned as float32.
        x: (N, D) vectors in the model's space (a (D,) vector is treated as (1, D)).

    Returns:
        (N, d) float32 vectors in the index's internal space (d = the PCA dimension).
    """
    out = np.ascontiguousarray(np.atleast_2d(np.asarray(x)), dtype=np.float32)
    ix = faiss.downcast_index(index)
    if not isinstance(ix, faiss.IndexPreTransform):
        return out
    for vt in _transforms(ix):
        out = np.ascontiguousarray(vt.apply(out), dtype=np.float32)
    return out
