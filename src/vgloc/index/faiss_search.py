"""Searching FAISS indexes: search-parameter strings, top-k search, the exact oracle, recall.

Every index uses the inner-product metric on L2-normalised descriptors (see
:mod:`vgloc.index.faiss_index`), so a similarity is a cosine in [-1, 1] and larger
is better. Indexes are tuned at search time by parameter strings
(``"nprobe=16,efSearch=64"``), as in FAISS itself.

Search parameters that do not apply to an index (``nprobe`` on ``Flat``) are
skipped and logged once at INFO level by default, because one default string
(:data:`DEFAULT_SEARCH_PARAMS`) serves IVF and HNSW indexes alike; pass
``strict=True`` to make them an error. A parameter name that FAISS knows for no
index at all (a typo such as ``nprobes``) is always an error.

Search parameters are set *on the index* (FAISS's ParameterSpace mutates it):
they stay in force for later searches until set again.
"""

from __future__ import annotations

import difflib
import logging
import math

import faiss
import numpy as np

from vgloc.index.faiss_common import (
    _as_float32_matrix,
    _faiss_message,
    _transforms,
    check_normalized,
    faiss_threads,
)

__all__ = [
    "DEFAULT_SEARCH_PARAMS",
    "EXACT_CHUNK_ROWS",
    "apply_search_params",
    "describe_index",
    "exact_search",
    "knn_overlap_at_k",
    "knn_recall_at_1",
    "parse_search_params",
    "search",
]

# The logger keeps the name it had before search moved out of faiss_index.py, so logging
# configuration that targets "vgloc.index.faiss_index" still reaches these messages.
logger = logging.getLogger("vgloc.index.faiss_index")

#: The default search-time parameters: ``nprobe`` for IVF indexes, ``efSearch`` for HNSW.
DEFAULT_SEARCH_PARAMS = "nprobe=16,efSearch=64"

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


#: Database rows converted to float32 and searched at a time by :func:`exact_search`:
#: 65,536 x 512 float32 is 128 MiB, whatever the database size.
EXACT_CHUNK_ROWS = 65_536


def _merge_top_k(
    best_s: np.ndarray, best_i: np.ndarray, sims: np.ndarray, ids: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The top-``k`` of two (Q, *) candidate sets, by decreasing similarity then increasing id."""
    s = np.concatenate([best_s, sims], axis=1)
    i = np.concatenate([best_i, ids], axis=1)
    order = np.lexsort((i, -s), axis=1)[:, :k]
    return np.take_along_axis(s, order, 1), np.take_along_axis(i, order, 1)


def exact_search(
    database: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    num_threads: int | None = None,
    chunk_rows: int = EXACT_CHUNK_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """The exact oracle: brute-force inner-product top-``k`` (FAISS ``knn``, no index copy).

    The database is searched ``chunk_rows`` rows at a time (each converted to float32
    on its own, so float16 arrays and memory maps never need a full float32 copy) and
    the per-chunk top-``k`` are merged: memory stays bounded at any database size.
    Ties are broken by the smaller id.

    Args:
        database: (N, D) L2-normalised descriptors.
        queries: (Q, D) L2-normalised queries.
        k: neighbours per query; clipped to N.
        num_threads: FAISS threads (None: leave FAISS's setting).
        chunk_rows: database rows per chunk (>= 1).

    Returns:
        ``(similarities float32 (Q, k'), ids int64 (Q, k'))`` with ``k' = min(k, N)``.

    Shape:
        database: (N, D), queries: (Q, D) -> (Q, min(k, N)).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    db_arr = database if isinstance(database, np.ndarray) else np.asarray(database)
    if db_arr.ndim != 2:
        raise ValueError(f"database descriptors must be a 2-D array (N, D), got shape {db_arr.shape}")
    if not np.issubdtype(db_arr.dtype, np.floating):
        raise ValueError(f"database descriptors must be floating point, got dtype {db_arr.dtype}")
    q = _as_float32_matrix(np.atleast_2d(np.asarray(queries)), "queries", db_arr.shape[1])
    n = len(db_arr)
    k_eff = min(int(k), n)
    if k_eff == 0 or len(q) == 0:
        return np.zeros((len(q), k_eff), np.float32), np.zeros((len(q), k_eff), np.int64)
    best_s = np.zeros((len(q), 0), np.float32)
    best_i = np.zeros((len(q), 0), np.int64)
    with faiss_threads(num_threads):
        for start in range(0, n, chunk_rows):
            chunk = _as_float32_matrix(db_arr[start : start + chunk_rows], "database descriptors")
            sims, ids = faiss.knn(q, chunk, min(k_eff, len(chunk)), metric=faiss.METRIC_INNER_PRODUCT)
            sims = np.asarray(sims, np.float32)
            ids = np.asarray(ids, np.int64) + start
            if start == 0 and n <= chunk_rows:
                return sims, ids
            best_s, best_i = _merge_top_k(best_s, best_i, sims, ids, k_eff)
    return best_s, best_i


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
