"""FAISS indexes over L2-normalised descriptors: factory strings, training, search parameters.

Every index here uses the inner-product metric on L2-normalised descriptors, so a
similarity is a cosine in [-1, 1] and larger is better. Indexes are described by
FAISS factory strings (``"Flat"``, ``"IVF1024,PQ64"``, ``"HNSW32"``,
``"PCA128,IVF1024,PQ16"``, ...) and tuned at search time by parameter strings
(``"nprobe=16,efSearch=64"``), as in FAISS itself.

Search parameters that do not apply to an index (``nprobe`` on ``Flat``) are
skipped and logged once at INFO level by default, because one default string
(:data:`DEFAULT_SEARCH_PARAMS`) serves IVF and HNSW indexes alike; pass
``strict=True`` to make them an error. A parameter name that FAISS knows for no
index at all (a typo such as ``nprobes``) is always an error.

Search parameters are set *on the index* (FAISS's ParameterSpace mutates it):
they stay in force for later searches until set again.

Training time: FAISS reads ``PQ<M>`` with 8-bit codes as "also run polysemous
training", a simulated annealing over codebook orderings that serves only the
``ht=`` (Hamming threshold) search parameter and costs minutes for large M (about
2 minutes for PQ64 on two cores, whatever N). Append ``np`` (``"IVF1024,PQ64np"``)
to skip it: codes, search results and recall are otherwise identical.

Nothing here changes FAISS's thread count except inside :func:`faiss_threads`,
which restores it on exit.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import math
import re
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

logger = logging.getLogger(__name__)

#: The default search-time parameters: ``nprobe`` for IVF indexes, ``efSearch`` for HNSW.
DEFAULT_SEARCH_PARAMS = "nprobe=16,efSearch=64"

#: FAISS's k-means warns below this many training points per centroid (ClusteringParameters).
MIN_POINTS_PER_CENTROID = 39

#: How many vectors are converted to float32 and added to the index at a time; bounds the
#: extra memory when the input is float16 or a memory map.
ADD_CHUNK_SIZE = 65_536

#: A descriptor counts as L2-normalised when its norm is within this of 1 (float16 storage
#: and half-precision models give errors of ~1e-3).
NORM_TOLERANCE = 1e-2

# Parameter names that faiss.ParameterSpace.set_index_parameter understands for some index
# type (faiss/AutoTune.cpp), with the smallest valid value and whether it must be an integer.
# "quantizer_<name>" forwards <name> to an IVF index's coarse quantizer.
_KNOWN_PARAMS: dict[str, tuple[float, bool]] = {
    "nprobe": (1, True),
    "efSearch": (1, True),
    "efConstruction": (1, True),
    "max_codes": (0, True),
    "ht": (0, True),
    "k_factor": (1, False),
    "k_factor_rf": (1, True),
    "prune_headroom": (0, False),
    "verbose": (0, True),
}
_QUANTIZER_PREFIX = "quantizer_"

# (index class, parameter) pairs already reported as not applicable: logged once per process.
_reported_inapplicable: set[tuple[str, str]] = set()


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


# --------------------------------------------------------------------------- threads


@contextlib.contextmanager
def faiss_threads(num_threads: int | None) -> Iterator[None]:
    """Run the body with FAISS's OpenMP thread count set to ``num_threads``, then restore it.

    The count is OpenMP's setting for the calling thread, used by every FAISS call it
    makes; this is the only place vgloc changes it. Pass ``None`` to leave it as it is
    (OpenMP's default: all cores, or ``OMP_NUM_THREADS``). On a machine shared with other
    busy processes, FAISS's spinning OpenMP threads slow down sharply (PQ training ran
    5x slower with 2 threads than with 1 on a loaded 2-core machine): use 1 there.

    Args:
        num_threads: threads for FAISS inside the block (>= 1), or None.
    """
    if num_threads is None:
        yield
        return
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(num_threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


# --------------------------------------------------------------------------- validation


def _as_float32_matrix(x: np.ndarray, what: str, dim: int | None = None) -> np.ndarray:
    """Check a (N, D) float matrix and return it as C-contiguous float32 (no copy when possible)."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (N, D), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{what} must be floating point, got dtype {arr.dtype}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{what} have dimension {arr.shape[1]}, the index expects {dim}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def check_normalized(x: np.ndarray, what: str = "descriptors", *, offset: int = 0) -> None:
    """Raise ValueError when any row is non-finite or not L2-normalised.

    Inner product equals cosine similarity only on unit vectors; a forgotten
    normalisation silently favours large-norm database vectors, so it is refused.

    Args:
        x: (N, D) float array.
        what: a name for the error message.
        offset: added to row numbers in the message (when ``x`` is a chunk).
    """
    x = np.asarray(x)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0]) + offset
        raise ValueError(f"{what}: row {row} contains NaN or infinity")
    norms = np.linalg.norm(x.astype(np.float32, copy=False), axis=1)
    bad = np.abs(norms - 1.0) > NORM_TOLERANCE
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{what} must be L2-normalised (inner product = cosine similarity): row "
            f"{row + offset} has norm {norms[row]:.4g} ({int(bad.sum())} of {len(x)} rows are off "
            f"by more than {NORM_TOLERANCE}); normalise with x / np.linalg.norm(x, axis=1, keepdims=True)"
        )


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
        return training_needs(ix.base_index)
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


def _transforms(ix: faiss.IndexPreTransform) -> list[faiss.VectorTransform]:
    """The downcast vector transforms of a pre-transform index, in order."""
    # faiss's stubs type ``chain`` as a list, but at run time it is a SWIG std::vector.
    chain: Any = ix.chain
    return [faiss.downcast_VectorTransform(chain.at(i)) for i in range(chain.size())]


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


# --------------------------------------------------------------------------- search params


def parse_search_params(params: str | None) -> dict[str, float]:
    """Parse a FAISS search-parameter string such as ``"nprobe=16,efSearch=64"``.

    Args:
        params: comma-separated ``name=value`` pairs; None or ``""`` for none.

    Returns:
        An ordered dict name -> value.

    Raises:
        ValueError: malformed pair, duplicate or unknown name (with the closest known
            name), a value that is not a number, not an integer where one is needed,
            or below the parameter's minimum (e.g. ``nprobe=0``).
    """
    if params is None:
        return {}
    if not isinstance(params, str):
        raise ValueError(f"search params must be a string like 'nprobe=16', got {params!r}")
    out: dict[str, float] = {}
    for raw in params.split(","):
        item = raw.strip()
        if not item:
            if params.strip():
                raise ValueError(f"search params {params!r}: empty entry between commas")
            continue
        name, sep, value_s = item.partition("=")
        name, value_s = name.strip(), value_s.strip()
        if not sep or not name or not value_s:
            raise ValueError(f"search params {params!r}: expected name=value, got {item!r}")
        base = name[len(_QUANTIZER_PREFIX) :] if name.startswith(_QUANTIZER_PREFIX) else name
        if base not in _KNOWN_PARAMS:
            known = sorted(_KNOWN_PARAMS)
            close = difflib.get_close_matches(base, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"search params {params!r}: unknown parameter {name!r}{hint} "
                f"(known: {', '.join(known)}, and quantizer_<name> for an IVF's quantizer)"
            )
        if name in out:
            raise ValueError(f"search params {params!r}: parameter {name!r} given twice")
        try:
            value = float(value_s)
        except ValueError:
            raise ValueError(
                f"search params {params!r}: value of {name!r} is not a number: {value_s!r}"
            ) from None
        minimum, integer = _KNOWN_PARAMS[base]
        if math.isnan(value) or (math.isinf(value) and base != "max_codes"):
            raise ValueError(f"search params {params!r}: {name}={value_s} is not finite")
        if integer and math.isfinite(value) and value != int(value):
            raise ValueError(f"search params {params!r}: {name} must be an integer, got {value_s}")
        if value < minimum:
            raise ValueError(f"search params {params!r}: {name} must be >= {minimum:g}, got {value_s}")
        out[name] = value
    return out


def describe_index(index: faiss.Index) -> str:
    """A short name of an index's structure, e.g. ``"IndexPreTransform(PCAMatrix -> IndexIVFPQ)"``."""
    ix = faiss.downcast_index(index)
    if isinstance(ix, faiss.IndexPreTransform):
        chain = [type(vt).__name__ for vt in _transforms(ix)]
        return f"IndexPreTransform({' -> '.join([*chain, describe_index(ix.index)])})"
    return type(ix).__name__


def apply_search_params(
    index: faiss.Index, params: str | dict[str, float] | None, *, strict: bool = False
) -> dict[str, float]:
    """Set search-time parameters on ``index`` through ``faiss.ParameterSpace``.

    Args:
        index: the FAISS index (modified in place; the values stay in force).
        params: a parameter string (see :func:`parse_search_params`), a parsed dict, or None.
        strict: raise instead of skipping a parameter the index does not have.

    Returns:
        The parameters that were applied (those that did not apply are left out).

    Raises:
        ValueError: malformed/unknown parameters; with ``strict``, a parameter that does
            not apply to this index (e.g. ``nprobe`` on a Flat index).
    """
    parsed = params if isinstance(params, dict) else parse_search_params(params)
    space = faiss.ParameterSpace()
    applied: dict[str, float] = {}
    for name, value in parsed.items():
        try:
            space.set_index_parameter(index, name, float(value))
        except RuntimeError as e:
            if "could not set parameter" not in str(e):
                raise ValueError(f"search parameter {name}={value:g}: {_faiss_message(e)}") from e
            kind = describe_index(index)
            if strict:
                raise ValueError(
                    f"search parameter {name!r} does not apply to this index ({kind}); "
                    "nprobe is for IVF indexes, efSearch for HNSW"
                ) from None
            if (kind, name) not in _reported_inapplicable:
                _reported_inapplicable.add((kind, name))
                logger.info("search parameter %r does not apply to this index (%s); ignored", name, kind)
            continue
        applied[name] = float(value)
    return applied


# --------------------------------------------------------------------------- search


def search(
    index: faiss.Index,
    queries: np.ndarray,
    k: int,
    params: str | None = DEFAULT_SEARCH_PARAMS,
    *,
    strict: bool = False,
    num_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` inner-product search.

    ``k`` larger than the index is clipped to ``index.ntotal``. Approximate indexes can
    still find fewer than ``k`` vectors for a query (an IVF whose probed lists hold fewer
    than ``k``): those slots are at the end of the row with id ``-1`` and similarity
    ``-inf``, so that rows keep one length; callers must skip ids < 0.

    Args:
        index: a FAISS index built with the inner-product metric.
        queries: (Q, D) L2-normalised float queries; a single (D,) query is treated as (1, D).
        k: number of neighbours (>= 1).
        params: search parameters applied before searching (see
            :func:`apply_search_params`); None leaves the index's current settings.
        strict: raise when a parameter does not apply to this index.
        num_threads: FAISS threads for this search (None: leave FAISS's setting).

    Returns:
        ``(similarities, ids)``: float32 (Q, k') in decreasing order and int64 (Q, k'),
        where ``k' = min(k, index.ntotal)``.

    Shape:
        queries: (Q, D) -> similarities, ids: (Q, min(k, ntotal)).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    q = np.asarray(queries)
    if q.ndim == 1:
        q = q[None, :]
    q = _as_float32_matrix(q, "queries", index.d)
    check_normalized(q, "queries")
    if params is not None:
        apply_search_params(index, params, strict=strict)
    k_eff = min(int(k), int(index.ntotal))
    if k_eff == 0 or len(q) == 0:
        return np.zeros((len(q), k_eff), np.float32), np.zeros((len(q), k_eff), np.int64)
    with faiss_threads(num_threads):
        sims, ids = index.search(q, k_eff)
    sims = np.asarray(sims, dtype=np.float32)
    ids = np.asarray(ids, dtype=np.int64)
    sims[ids < 0] = -np.inf  # FAISS pads with -FLT_MAX; -inf cannot be mistaken for a score
    return sims, ids


def exact_search(
    database: np.ndarray, queries: np.ndarray, k: int, *, num_threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The exact oracle: brute-force inner-product top-``k`` (FAISS ``knn``, no index copy).

    Args:
        database: (N, D) L2-normalised descriptors.
        queries: (Q, D) L2-normalised queries.
        k: neighbours per query; clipped to N.
        num_threads: FAISS threads (None: leave FAISS's setting).

    Returns:
        ``(similarities float32 (Q, k'), ids int64 (Q, k'))`` with ``k' = min(k, N)``.

    Shape:
        database: (N, D), queries: (Q, D) -> (Q, min(k, N)).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    db = _as_float32_matrix(database, "database descriptors")
    q = _as_float32_matrix(np.atleast_2d(np.asarray(queries)), "queries", db.shape[1])
    k_eff = min(int(k), len(db))
    if k_eff == 0 or len(q) == 0:
        return np.zeros((len(q), k_eff), np.float32), np.zeros((len(q), k_eff), np.int64)
    with faiss_threads(num_threads):
        sims, ids = faiss.knn(q, db, k_eff, metric=faiss.METRIC_INNER_PRODUCT)
    return np.asarray(sims, np.float32), np.asarray(ids, np.int64)


# --------------------------------------------------------------------------- measures


def knn_recall_at_1(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Fraction of queries whose approximate top-1 is the exact top-1 (1-recall@1).

    Args:
        approx_ids: (Q, >=1) ids from an approximate index.
        exact_ids: (Q, >=1) ids from :func:`exact_search`.

    Returns:
        A float in [0, 1].
    """
    a, e = np.asarray(approx_ids), np.asarray(exact_ids)
    if a.ndim != 2 or e.ndim != 2 or len(a) != len(e) or a.shape[1] < 1 or e.shape[1] < 1:
        raise ValueError(f"id arrays must be (Q, k>=1) with equal Q, got {a.shape} and {e.shape}")
    return float(np.mean(a[:, 0] == e[:, 0])) if len(a) else float("nan")


def knn_overlap_at_k(approx_ids: np.ndarray, exact_ids: np.ndarray, k: int) -> float:
    """Mean share of the exact top-``k`` found in the approximate top-``k`` (k-recall@k).

    Args:
        approx_ids: (Q, >=k) ids from an approximate index (-1 for missing).
        exact_ids: (Q, >=k) exact ids.
        k: the cut-off.

    Returns:
        A float in [0, 1].
    """
    a, e = np.asarray(approx_ids), np.asarray(exact_ids)
    if a.ndim != 2 or e.ndim != 2 or len(a) != len(e) or min(a.shape[1], e.shape[1]) < k or k < 1:
        raise ValueError(f"id arrays must be (Q, >={k}) with equal Q, got {a.shape} and {e.shape}")
    if not len(a):
        return float("nan")
    hits = [len(np.intersect1d(a[i, :k][a[i, :k] >= 0], e[i, :k])) for i in range(len(a))]
    return float(np.mean(hits) / k)


def _faiss_message(e: BaseException) -> str:
    """The useful part of a FAISS C++ exception, without the function/file/line preamble."""
    text = str(e).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    last = lines[-1] if lines else text
    # "Error in <function> at <file>:<line>: Error: '<check>' failed: <message>" -> "<message>"
    m = re.search(r" at \S+:\d+: (.*)$", last)
    msg = m.group(1) if m else last
    return re.sub(r"^Error: '.*?' failed: ", "", msg)
