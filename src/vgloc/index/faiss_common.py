"""Shared FAISS plumbing for building and searching: thread count, input checks, messages.

Nothing here changes FAISS's thread count except inside :func:`faiss_threads`,
which restores it on exit.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import faiss
import numpy as np

__all__ = ["NORM_TOLERANCE", "check_normalized", "faiss_threads"]

#: A descriptor counts as L2-normalised when its norm is within this of 1 (float16 storage
#: and half-precision models give errors of ~1e-3).
NORM_TOLERANCE = 1e-2


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


# --------------------------------------------------------------------------- FAISS helpers


def _transforms(ix: faiss.IndexPreTransform) -> list[faiss.VectorTransform]:
    """The downcast vector transforms of a pre-transform index, in order."""
    # faiss's stubs type ``chain`` as a list, but at run time it is a SWIG std::vector.
    chain: Any = ix.chain
    return [faiss.downcast_VectorTransform(chain.at(i)) for i in range(chain.size())]


def _faiss_message(e: BaseException) -> str:
    """The useful part of a FAISS C++ exception, without the function/file/line preamble."""
    text = str(e).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    last = lines[-1] if lines else text
    # "Error in <function> at <file>:<line>: Error: '<check>' failed: <message>" -> "<message>"
    m = re.search(r" at \S+:\d+: (.*)$", last)
    msg = m.group(1) if m else last
    return re.sub(r"^Error: '.*?' failed: ", "", msg)
