"""Building FAISS indexes over L2-normalised descriptors: factory strings, training, adding.

Every index here uses the inner-product metric on L2-normalised descriptors, so a
similarity is a cosine in [-1, 1] and larger is better. Indexes are described by
FAISS factory strings (``"Flat"``, ``"IVF1024,PQ64"``, ``"HNSW32"``,
``"PCA128,IVF1024,PQ16"``, ...). Searching them (parameter strings such as
``"nprobe=16,efSearch=64"``, the exact oracle, recall measures) lives in
:mod:`vgloc.index.faiss_search` and the shared checks in
:mod:`vgloc.index.faiss_common`; both are re-exported here, so every name is
still importable from this module.

Training time: FAISS reads ``PQ<M>`` with 8-bit codes as "also run polysemous
training", a simulated annealing over codebook orderings that serves only the
``ht=`` (Hamming threshold) search parameter and costs minutes for large M (about
2 minutes for PQ64 on two cores, whatever N). Append ``np`` (``"IVF1024,PQ64np"``)
to skip it: codes, search results and recall are otherwise identical.

Nothing here changes FAISS's thread count except inside :func:`faiss_threads`,
which restores it on exit.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import faiss
import numpy as np

from vgloc.index.faiss_common import (
    NORM_TOLERANCE,
    _as_float32_matrix,
    _faiss_message,
    _transforms,
    check_normalized,
    faiss_threads,
)
from vgloc.index.faiss_search import (
    DEFAULT_SEARCH_PARAMS,
    apply_search_params,
    describe_index,
    exact_search,
    knn_overlap_at_k,
    knn_recall_at_1,
    parse_search_params,
    search,
)

__all__ = [
    "ADD_CHUNK_SIZE",
    "DEFAULT_SEARCH_PARAMS",
    "MIN_POINTS_PER_CENTROID",
    "NORM_TOLERANCE",
    "TrainingDataError",
    "TrainingNeed",
    "add_vectors",
    "apply_search_params",
    "build_faiss_index",
    "check_normalized",
    "describe_index",
    "exact_search",
    "faiss_threads",
    "knn_overlap_at_k",
    "knn_recall_at_1",
    "make_index",
    "parse_search_params",
    "search",
    "train_index",
    "training_needs",
]

logger = logging.getLogger(__name__)


#: FAISS's k-means warns below this many training points per centroid (ClusteringParameters).
MIN_POINTS_PER_CENTROID = 39

#: How many vectors are converted to float32 and added to the index at a time; bounds the
#: extra memory when the input is float16 or a memory map.
ADD_CHUNK_SIZE = 65_536


class TrainingDataError(ValueError):
    """Too few training vectors for the index's centroids (IVF lists, PQ codebooks)."""


@dataclass(frozen=True)
class TrainingNeed:
    """One trained component of an index and how many centroids it learns.

    Attributes:
        component: a readable name, e.g. ``"IVF4096 coarse quantizer"``.
        centroids: number of k-means centroids; FAISS needs at least this many training
            vectors and recommends ``39 * centroids``.
        kind: ``"ivf"``, ``"pq"`` or ``"opq"``, to tailor the advice in error messages.
    """

    component: str
    centroids: int
    kind: str


# --------------------------------------------------------------------------- building


def make_index(dim: int, factory: str = "Flat") -> faiss.Index:
    """An empty, untrained FAISS index with the inner-product metric.

    Args:
        dim: descriptor dimension (> 0).
        factory: a FAISS factory string, e.g. ``"Flat"``, ``"IVF1024,PQ64"``, ``"HNSW32"``.

    Returns:
        The index (``faiss.Index``), ``ntotal == 0``.
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"descriptor dimension must be a positive integer, got {dim!r}")
    if not isinstance(factory, str) or not factory.strip():
        raise ValueError(f"faiss factory must be a non-empty string, got {factory!r}")
    try:
        return faiss.index_factory(int(dim), factory.strip(), faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise ValueError(
            f"invalid faiss factory string {factory!r} for dimension {dim}: {_faiss_message(e)}"
        ) from e


def training_needs(index: faiss.Index) -> list[TrainingNeed]:
    """The k-means-trained components of an index and their centroid counts.

    Covers IVF coarse quantizers, product quantizers (IVF-PQ, PQ, HNSW-PQ, fast-scan)
    and OPQ rotations, including inside pre-transforms (PCA, OPQ) and refinement
    wrappers. Components not listed here are still trained; FAISS's own error is then
    translated by :func:`train_index`.

    Args:
        index: any FAISS index.

    Returns:
        A list of :class:`TrainingNeed`, outermost first; empty for ``Flat``/``HNSW``.
    """
    needs: list[TrainingNeed] = []
    ix = faiss.downcast_index(index)
    if isinstance(ix, faiss.IndexPreTransform):
        for vt in _transforms(ix):
            if isinstance(vt, faiss.OPQMatrix):
                # OPQ alternates its rotation with a PQ of M codebooks of 2^8 centroids.
                needs.append(TrainingNeed(f"OPQ{vt.M} rotation", 256, "opq"))
        return needs + training_needs(ix.index)
    if isinstance(ix, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        return training_needs(ix.index)
    if isinstance(ix, faiss.IndexRefine):
        return training_needs(ix.base_index) + training_needs(ix.refine_index)
    if isinstance(ix, faiss.IndexHNSW):
        return training_needs(ix.storage)
    if isinstance(ix, faiss.IndexIVF):
        needs.append(TrainingNeed(f"IVF{ix.nlist} coarse quantizer", int(ix.nlist), "ivf"))
    pq = getattr(ix, "pq", None)
    if isinstance(pq, faiss.ProductQuantizer):
        needs.append(
            TrainingNeed(f"PQ{pq.M}x{pq.nbits} codebooks", int(pq.ksub), "pq"),
        )
    return needs


def _prepare_clustering(index: faiss.Index, seed: int) -> None:
    """Seed every k-means of the index and silence FAISS's own too-few-points message.

    The message is printed by C++ to stderr (beyond Python's control); :func:`train_index`
    issues the same advice as a Python warning instead.
    """
    ix = faiss.downcast_index(index)
    if isinstance(ix, faiss.IndexPreTransform):
        _prepare_clustering(ix.index, seed)
        return
    if isinstance(ix, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        _prepare_clustering(ix.index, seed)
        return
    if isinstance(ix, faiss.IndexRefine):
        _prepare_clustering(ix.base_index, seed)
        _prepare_clustering(ix.refine_index, seed)
        return
    if isinstance(ix, faiss.IndexHNSW):
        _prepare_clustering(ix.storage, seed)
        return
    if isinstance(ix, faiss.IndexIVF):
        ix.cp.seed = seed
        ix.cp.min_points_per_centroid = 1
    pq = getattr(ix, "pq", None)
    if isinstance(pq, faiss.ProductQuantizer):
        pq.cp.seed = seed
        pq.cp.min_points_per_centroid = 1
    if getattr(ix, "do_polysemous_training", False):
        logger.info(
            "polysemous training of %s's PQ codes is slow and only serves the ht= search "
            "parameter; append 'np' to the PQ in the factory string (e.g. PQ64np) to skip it",
            type(ix).__name__,
        )


def _suggest_nlist(n_train: int) -> int:
    """The largest power of two with at least 39 training vectors per list (>= 1)."""
    per = max(1, n_train // MIN_POINTS_PER_CENTROID)
    return 1 << (per.bit_length() - 1)


def _check_training_size(needs: list[TrainingNeed], n_train: int, factory: str) -> None:
    """Raise when a component has more centroids than training vectors; warn below 39x."""
    for need in needs:
        if n_train < need.centroids:
            if need.kind == "ivf":
                advice = (
                    f"use a smaller nlist, e.g. IVF{_suggest_nlist(n_train)} "
                    f"(at least {MIN_POINTS_PER_CENTROID} training vectors per list), or more data"
                )
            elif need.kind == "pq":
                advice = "use fewer bits per code (e.g. PQ<M>x4), a Flat/HNSW index, or more data"
            else:
                advice = "drop the OPQ transform or provide more data"
            raise TrainingDataError(
                f"faiss factory {factory!r}: the {need.component} learns {need.centroids} "
                f"centroids but only {n_train} training vectors were given; {advice}"
            )
    for need in needs:
        recommended = MIN_POINTS_PER_CENTROID * need.centroids
        if n_train < recommended:
            extra = f" (e.g. IVF{_suggest_nlist(n_train)})" if need.kind == "ivf" else ""
            warnings.warn(
                f"faiss factory {factory!r}: {n_train} training vectors for the {need.component} "
                f"({need.centroids} centroids) is below faiss's recommended {recommended} "
                f"({MIN_POINTS_PER_CENTROID} per centroid); the centroids will be poor. "
                f"Use more training data or fewer centroids{extra}.",
                UserWarning,
                stacklevel=3,
            )


def train_index(
    index: faiss.Index,
    descriptors: np.ndarray,
    *,
    train_sample: int | None = None,
    seed: int = 0,
    factory: str = "",
) -> int:
    """Train ``index`` on (a random sample of) ``descriptors`` when it needs training.

    Args:
        index: an untrained or trained FAISS index (a trained one is left alone).
        descriptors: (N, D) L2-normalised float descriptors (float16/float32/float64,
            memory maps allowed: only the sample is loaded).
        train_sample: train on this many vectors drawn without replacement (seeded).
            None: all N vectors, capped at 256 per centroid of the largest component,
            the point beyond which FAISS's k-means subsamples anyway.
        seed: seeds the sample and every k-means inside the index.
        factory: the factory string, for messages.

    Returns:
        The number of training vectors used (0 when no training was needed).

    Raises:
        TrainingDataError: fewer training vectors than a component's centroids.

    Shape:
        descriptors: (N, D).
    """
    if index.is_trained:
        return 0
    shape = np.shape(descriptors)
    if len(shape) != 2:
        raise ValueError(f"descriptors must be a 2-D array (N, D), got shape {shape}")
    n, d = shape
    if d != index.d:
        raise ValueError(f"descriptors have dimension {d}, the index expects {index.d}")
    needs = training_needs(index)
    if train_sample is None:
        cap = 256 * max((need.centroids for need in needs), default=0)
        n_train = min(n, cap) if cap else n
    else:
        if isinstance(train_sample, bool) or not isinstance(train_sample, (int, np.integer)):
            raise ValueError(f"train_sample must be a positive integer or None, got {train_sample!r}")
        if train_sample < 1:
            raise ValueError(f"train_sample must be a positive integer or None, got {train_sample}")
        n_train = min(n, int(train_sample))
    _check_training_size(needs, n_train, factory or type(index).__name__)
    if n_train < n:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=n_train, replace=False))
        sample = np.asarray(descriptors[rows])
    else:
        sample = np.asarray(descriptors)
    sample = _as_float32_matrix(sample, "training descriptors", index.d)
    check_normalized(sample, "training descriptors")
    _prepare_clustering(index, seed)
    t0 = time.perf_counter()
    try:
        index.train(sample)
    except RuntimeError as e:
        raise TrainingDataError(
            f"faiss factory {factory!r}: training on {n_train} vectors failed: {_faiss_message(e)}"
        ) from e
    logger.info("trained %s on %d vectors in %.1f s", factory, n_train, time.perf_counter() - t0)
    return n_train


def add_vectors(
    index: faiss.Index,
    descriptors: np.ndarray,
    *,
    chunk_size: int = ADD_CHUNK_SIZE,
    progress: bool = False,
) -> None:
    """Add ``descriptors`` to a trained ``index`` in chunks (ids continue from ``ntotal``).

    Each chunk is converted to float32 and checked for L2-normalisation on its own, so
    float16 arrays and memory maps never need a full float32 copy.

    Args:
        index: a trained FAISS index.
        descriptors: (N, D) L2-normalised float descriptors.
        chunk_size: vectors per ``index.add`` call.
        progress: show a tqdm progress bar.

    Shape:
        descriptors: (N, D).
    """
    if not index.is_trained:
        raise ValueError("the index is not trained; call train_index first")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    arr = descriptors if isinstance(descriptors, np.ndarray) else np.asarray(descriptors)
    if arr.ndim != 2 or arr.shape[1] != index.d:
        raise ValueError(f"descriptors must have shape (N, {index.d}), got {arr.shape}")
    starts: Iterable[int] = range(0, len(arr), chunk_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="adding to index", unit="chunk")
    for start in starts:
        chunk = _as_float32_matrix(arr[start : start + chunk_size], "descriptors", index.d)
        check_normalized(chunk, "descriptors", offset=start)
        index.add(chunk)


def build_faiss_index(
    descriptors: np.ndarray,
    factory: str = "Flat",
    *,
    train_sample: int | None = None,
    seed: int = 0,
    num_threads: int | None = None,
    progress: bool = False,
) -> faiss.Index:
    """Build an inner-product FAISS index over L2-normalised descriptors.

    Trains the index when the factory needs it (IVF, PQ, OPQ, PCA), then adds all
    vectors in chunks; vector ``i`` gets id ``i``.

    Args:
        descriptors: (N, D) L2-normalised descriptors, float16/32/64.
        factory: FAISS factory string (``"Flat"``, ``"IVF4096,PQ32"``, ``"HNSW32"``,
            ``"IVF256,Flat"``, ``"PCA128,IVF1024,PQ16"``, ...).
        train_sample: number of vectors to train on (see :func:`train_index`).
        seed: seeds the training sample and k-means.
        num_threads: FAISS threads while building (None: leave FAISS's setting).
        progress: show a progress bar while adding.

    Returns:
        The built ``faiss.Index`` with ``ntotal == N``.

    Raises:
        TrainingDataError: too few training vectors for the index (e.g. IVF4096 on 1,000).
        ValueError: bad factory string, non-normalised or non-finite descriptors.

    Shape:
        descriptors: (N, D).
    """
    shape = np.shape(descriptors)
    if len(shape) != 2:
        raise ValueError(f"descriptors must be a 2-D array (N, D), got shape {shape}")
    n, d = shape
    if n == 0:
        raise ValueError("cannot build an index from 0 descriptors")
    index = make_index(d, factory)
    with faiss_threads(num_threads):
        train_index(index, descriptors, train_sample=train_sample, seed=seed, factory=factory)
        t0 = time.perf_counter()
        add_vectors(index, descriptors, progress=progress)
    logger.info("added %d vectors to %s in %.1f s", n, factory, time.perf_counter() - t0)
    return index
