"""Compact descriptors: PCA-whitening fitted on the database, kept inside the FAISS index.

``vgloc index build --pca 512`` (``GeoIndex.build(..., pca=512)``) fits a FAISS
``PCAMatrix`` (eigen power -1/2: whitening) on the database descriptors, reduces and
L2-normalises them, builds the requested index (``Flat``, ``auto``, ...) on the reduced
vectors, and wraps it in an ``IndexPreTransform`` whose chain is that PCA followed by
L2 normalisation. The transform is written with the index (``index.faiss``, atomic and
checksummed like every index file) and FAISS applies it to every query, so
``vgloc locate`` and ``vgloc eval --index`` need no extra step. Every stage of the inner
index (an "auto" index's re-ranking codes included) and the stored descriptors
(``descriptors.npy``) live in the reduced space, so a large database stores ``pca``
numbers per image instead of ``D``. (The factory string ``PCAW512,L2norm,IVF..,Refine(..)``
would not do this: FAISS puts ``Refine`` around the whole chain, on full vectors.)

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

__all__ = ["apply_chain", "check_pca", "fit_pca", "pca_info", "reduce", "wrap"]


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


def fit_pca(descriptors: np.ndarray, pca: int, whiten: bool = True) -> tuple[faiss.VectorTransform, ...]:
    """Fit PCA(-whitening) to ``pca`` dimensions on database descriptors.

    Args:
        descriptors: (N, D) database descriptors (FAISS subsamples large sets for the covariance).
        pca: the output dimension d < D, d <= N.
        whiten: scale each component by 1/sqrt(eigenvalue) (whitening); False keeps the
            projection only. Whitening helps when the covariance is well estimated (many
            images per dimension) and amplifies noise when it is not (BENCHMARKS.md).

    Returns:
        The transform chain: (``PCAMatrix`` D -> d whitened, ``NormalizationTransform`` d).
    """
    x = np.ascontiguousarray(descriptors, dtype=np.float32)
    check_pca(pca, x.shape[1], len(x))
    matrix = faiss.PCAMatrix(x.shape[1], pca, -0.5 if whiten else 0.0)  # eigen power -1/2: whitening
    matrix.train(x)
    return matrix, faiss.NormalizationTransform(pca, 2.0)


def apply_chain(chain: tuple[faiss.VectorTransform, ...], x: np.ndarray) -> np.ndarray:
    """(N, D) vectors through ``chain`` -> (N, d) float32."""
    out = np.ascontiguousarray(np.atleast_2d(np.asarray(x)), dtype=np.float32)
    for vt in chain:
        out = np.ascontiguousarray(vt.apply(out), dtype=np.float32)
    return out


def wrap(chain: tuple[faiss.VectorTransform, ...], inner: faiss.Index) -> faiss.Index:
    """``inner`` (built on reduced vectors) behind ``chain``: the index then takes (N, D) vectors."""
    index = faiss.IndexPreTransform(chain[-1], inner)
    for vt in reversed(chain[:-1]):
        index.prepend_transform(vt)
    return index


def pca_info(pca: int, descriptor_dim: int, whiten: bool = True) -> dict[str, Any]:
    """What the index metadata records about its PCA (``extra["pca"]``)."""
    return {
        "dim": int(pca),
        "input_dim": int(descriptor_dim),
        "whiten": bool(whiten),
        "fitted_on": "database",
    }


def reduce(index: faiss.Index, x: np.ndarray) -> np.ndarray:
    """Apply an index's pre-transform chain (PCA-whitening, L2 norm) to vectors.

    Args:
        index: a FAISS index; without a pre-transform ``x`` is returned as float32.
        x: (N, D) vectors in the model's space (a (D,) vector is treated as (1, D)).

    Returns:
        (N, d) float32 vectors in the index's internal space (d = the PCA dimension).
    """
    ix = faiss.downcast_index(index)
    chain = tuple(_transforms(ix)) if isinstance(ix, faiss.IndexPreTransform) else ()
    return apply_chain(chain, x)
