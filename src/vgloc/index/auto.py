"""``factory="auto"``: pick an index for a database of N descriptors.

Exact search (``Flat``) up to :data:`AUTO_EXACT_MAX` vectors; above it an inverted
file with compact product-quantised codes and a re-ranking refinement
(:func:`approximate_factory`), with search parameters tuned on
``benchmarks/bench_search.py``'s clustered data (BENCHMARKS.md, "Speed: search and
recall"). The choice is recorded in the index metadata (``faiss_factory``,
``search_params`` and ``extra["index_choice"]``) and logged.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vgloc.index.faiss_search import DEFAULT_SEARCH_PARAMS

__all__ = [
    "AUTO_EXACT_MAX",
    "AUTO_FACTORY",
    "AUTO_RERANK_CANDIDATES",
    "IndexChoice",
    "approximate_factory",
    "choose_index",
    "is_auto",
    "rerank_exact",
    "resolve_factory",
]

logger = logging.getLogger(__name__)

#: The factory string that asks for an automatic choice.
AUTO_FACTORY = "auto"

#: Largest database that ``"auto"`` searches exactly. Below it ``Flat`` costs at most
#: ~2.5 ms/query batched on two cores (512-d) and needs no training; above it the
#: approximate index is >= 20x faster at 1M (BENCHMARKS.md).
AUTO_EXACT_MAX = 100_000

#: Candidates that :meth:`vgloc.index.GeoIndex.search` re-scores exactly with the stored
#: descriptors for an automatically chosen approximate index (when they are loaded). On
#: bench_search's clustered 1M set the exact nearest vector is among them for 86 % of
#: the queries (3 % for the PQ codes alone) at 36x Flat's speed (BENCHMARKS.md).
AUTO_RERANK_CANDIDATES = 300


@dataclass(frozen=True)
class IndexChoice:
    """What ``"auto"`` picked, and why.

    Attributes:
        factory: the FAISS factory string built.
        search_params: the search parameters stored with it.
        num_vectors: the database size the choice was made for.
        exact_max: the threshold in force.
        reason: one readable sentence.
        rerank_candidates: candidates re-scored exactly with the stored descriptors at
            search time (0: none; see :func:`rerank_exact`).
    """

    factory: str
    search_params: str
    num_vectors: int
    exact_max: int
    reason: str
    rerank_candidates: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_auto(factory: str | None) -> bool:
    """True when ``factory`` asks for the automatic choice (``"auto"``, any case)."""
    return isinstance(factory, str) and factory.strip().lower() == AUTO_FACTORY


def _pow2_at_most(x: float) -> int:
    return 1 << max(0, int(x).bit_length() - 1)


def _pow2_nearest(x: float) -> int:
    return 1 << max(0, round(math.log2(max(x, 1.0))))


def approximate_factory(num_vectors: int, dim: int) -> tuple[str, str]:
    """The approximate index for ``num_vectors`` descriptors of dimension ``dim``.

    ``IVF<nlist>,PQ<M>x4fs,Refine(PQ<M>np)``: an inverted file of ``nlist`` lists (the
    power of two nearest ``sqrt(N)``, at most 4096, with at least 39 training vectors
    per list); candidates are scored with 4-bit fast-scan PQ codes (SIMD, M/2 bytes),
    then the ``k_factor_rf * k`` best are re-ranked with 8-bit PQ codes of the same
    vectors (M bytes). With M = 32: 16 + 32 bytes of codes + 8 of id per vector
    (~58 B/vector at 1M with the centroids).

    Returns:
        ``(factory, search_params)``.
    """
    nlist = min(_pow2_nearest(num_vectors**0.5), _pow2_at_most(max(1, num_vectors // 39)), 4096)
    m = _pq_m(dim, 2 * _CODE_BYTES)  # 4-bit codes: 2 sub-quantizers per byte
    m_refine = _pq_m(dim, _REFINE_BYTES)
    return f"IVF{nlist},PQ{m}x4fs,Refine(PQ{m_refine}np)", _SEARCH_PARAMS


# The measured configuration (BENCHMARKS.md, benchmarks/bench_search.py).
_CODE_BYTES = 16
_REFINE_BYTES = 32
_SEARCH_PARAMS = "nprobe=16,k_factor_rf=2"


def _pq_m(dim: int, target: int = _CODE_BYTES) -> int:
    """The largest divisor of ``dim`` that is at most ``target`` (PQ needs M | D)."""
    for m in range(min(target, dim), 0, -1):
        if dim % m == 0:
            return m
    return 1


def choose_index(num_vectors: int, dim: int, *, exact_max: int = AUTO_EXACT_MAX) -> IndexChoice:
    """The index ``"auto"`` builds for ``num_vectors`` descriptors of dimension ``dim``.

    Args:
        num_vectors: database size N (>= 1).
        dim: descriptor dimension.
        exact_max: ``Flat`` up to this many vectors (tests use a small one).

    Returns:
        An :class:`IndexChoice`.
    """
    if num_vectors < 1 or dim < 1:
        raise ValueError(f"need a non-empty database of positive dimension, got N={num_vectors}, D={dim}")
    if exact_max < 0:
        raise ValueError(f"exact_max must be >= 0, got {exact_max}")
    if num_vectors <= exact_max:
        choice = IndexChoice(
            "Flat", "", num_vectors, exact_max, f"{num_vectors} vectors <= {exact_max}: exact search"
        )
    else:
        factory, params = approximate_factory(num_vectors, dim)
        choice = IndexChoice(
            factory,
            params,
            num_vectors,
            exact_max,
            f"{num_vectors} vectors > {exact_max}: compact approximate index with re-ranking",
            AUTO_RERANK_CANDIDATES,
        )
    logger.info(
        "index choice (auto): %s, search params %r (%s)", choice.factory, choice.search_params, choice.reason
    )
    return choice


def resolve_factory(
    factory: str, search_params: str | None, shape: tuple[int, ...], exact_max: int, extra: dict[str, Any]
) -> tuple[str, str]:
    """The factory and search parameters to build for ``factory`` over (N, D) descriptors.

    ``"auto"`` becomes :func:`choose_index`'s choice (recorded in ``extra["index_choice"]``);
    search parameters left None become the choice's, or :data:`DEFAULT_SEARCH_PARAMS`.
    """
    if is_auto(factory):
        choice = choose_index(int(shape[0]), int(shape[1]), exact_max=exact_max)
        extra["index_choice"] = {"requested": AUTO_FACTORY, **choice.to_dict()}
        return choice.factory, choice.search_params if search_params is None else search_params
    return factory, DEFAULT_SEARCH_PARAMS if search_params is None else search_params


def rerank_exact(
    descriptors: np.ndarray, queries: np.ndarray, ids: np.ndarray, k: int, *, block: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Re-score candidate ``ids`` with exact inner products against stored ``descriptors``.

    Args:
        descriptors: (N, D) stored database descriptors (float16/float32, memory maps allowed).
        queries: (Q, D) or (D,) query descriptors.
        ids: (Q, C) candidate ids from an approximate search (-1 for none).
        k: how many to keep (<= C).
        block: queries per step (bounds memory to ``block * C * D`` floats).

    Returns:
        ``(similarities float32 (Q, k), ids int64 (Q, k))`` by decreasing exact
        similarity (ties by id); -1 slots stay last with similarity -inf.
    """
    q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    ids = np.asarray(ids, dtype=np.int64)
    sims = np.empty(ids.shape, np.float32)
    for s in range(0, len(q), block):
        cand = np.asarray(descriptors[np.maximum(ids[s : s + block], 0)], dtype=np.float32)
        sims[s : s + block] = np.einsum("qcd,qd->qc", cand, q[s : s + block])
    sims[ids < 0] = -np.inf
    order = np.lexsort((ids, -sims))[:, :k]
    return np.take_along_axis(sims, order, 1), np.take_along_axis(ids, order, 1)
