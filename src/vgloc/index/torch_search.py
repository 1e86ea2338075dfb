"""Exact inner-product top-k with torch on any device: the GPU path of exact search.

faiss-gpu is not on PyPI for every CUDA/Python pair (the ``faiss-cpu`` wheel vgloc
depends on has no GPU code), while torch with CUDA is already installed wherever a
GPU runs the network. A matmul + ``topk`` per database chunk is what an exact GPU
search does anyway, so vgloc uses torch for it instead of an optional second FAISS
build. On CPU, FAISS's ``knn`` stays the path (:func:`vgloc.index.faiss_search.exact_search`);
this function runs there too, which is how its results are tested without a GPU.
"""

from __future__ import annotations

import faiss
import numpy as np
import torch

__all__ = ["TORCH_CHUNK_ROWS", "is_exact", "searches_on_gpu", "torch_exact_search"]


def searches_on_gpu(device: str | torch.device | None) -> bool:
    """Whether a search for a describer on ``device`` should run there (a CUDA device)."""
    return device is not None and torch.device(device).type == "cuda"


def is_exact(index: faiss.Index) -> bool:
    """Whether a FAISS index is an exact flat index (possibly behind a PCA pre-transform)."""
    ix = faiss.downcast_index(index)
    if isinstance(ix, faiss.IndexPreTransform):
        ix = faiss.downcast_index(ix.index)
    return isinstance(ix, faiss.IndexFlat)


#: Database rows moved to the device and scored at a time: 262,144 x 512 fp32 is 512 MiB.
TORCH_CHUNK_ROWS = 262_144


def torch_exact_search(
    database: np.ndarray | torch.Tensor,
    queries: np.ndarray | torch.Tensor,
    k: int,
    *,
    device: str | torch.device = "cuda",
    chunk_rows: int = TORCH_CHUNK_ROWS,
    query_rows: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force inner-product top-``k`` on ``device``, chunked so memory stays bounded.

    Scores are computed in float32 (float16 databases are converted chunk by chunk on
    the device). Ties are broken by the smaller id, as in
    :func:`vgloc.index.faiss_search.exact_search`, so both give the same ids.

    Args:
        database: ``(N, D)`` descriptors (numpy, memory map, or a tensor already on the
            device, which is then not copied again).
        queries: ``(Q, D)`` queries.
        k: neighbours per query (>= 1), clipped to ``N``.
        device: where to compute (``"cuda"``, ``"cuda:1"``, ``"cpu"``).
        chunk_rows: database rows per chunk (>= 1).
        query_rows: queries per block (bounds the ``query_rows x chunk_rows`` score matrix).

    Returns:
        ``(similarities float32 (Q, k'), ids int64 (Q, k'))`` with ``k' = min(k, N)``,
        on the host.

    Raises:
        ValueError: bad ``k``/``chunk_rows``, non-2-D inputs or mismatched dimensions.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if chunk_rows < 1 or query_rows < 1:
        raise ValueError(f"chunk_rows and query_rows must be positive, got {chunk_rows}, {query_rows}")
    dev = torch.device(device)
    q_all = torch.as_tensor(
        np.atleast_2d(np.asarray(queries)) if not isinstance(queries, torch.Tensor) else queries
    )
    if q_all.ndim != 2 or database.ndim != 2:
        raise ValueError(
            f"database and queries must be 2-D (N, D) and (Q, D), got {tuple(database.shape)} and {tuple(q_all.shape)}"
        )
    n, dim = int(database.shape[0]), int(database.shape[1])
    if q_all.shape[1] != dim:
        raise ValueError(f"queries have dimension {q_all.shape[1]}, the database {dim}")
    k_eff = min(int(k), n)
    out_s = np.zeros((len(q_all), k_eff), np.float32)
    out_i = np.zeros((len(q_all), k_eff), np.int64)
    if k_eff == 0 or len(q_all) == 0:
        return out_s, out_i
    with torch.inference_mode():
        for q0 in range(0, len(q_all), query_rows):
            q = q_all[q0 : q0 + query_rows].to(dev, torch.float32)
            best_s = torch.empty((len(q), 0), dtype=torch.float32, device=dev)
            best_i = torch.empty((len(q), 0), dtype=torch.int64, device=dev)
            for start in range(0, n, chunk_rows):
                block = database[start : start + chunk_rows]
                chunk = torch.as_tensor(block).to(dev, torch.float32, non_blocking=True)
                scores = q @ chunk.T
                s, i = torch.topk(scores, min(k_eff, len(chunk)), dim=1, largest=True, sorted=True)
                best_s = torch.cat([best_s, s], dim=1)
                best_i = torch.cat([best_i, i + start], dim=1)
                if best_s.shape[1] > k_eff:
                    best_s, best_i = _top_k_by_score_then_id(best_s, best_i, k_eff)
            best_s, best_i = _top_k_by_score_then_id(best_s, best_i, k_eff)
            out_s[q0 : q0 + len(q)] = best_s.cpu().numpy()
            out_i[q0 : q0 + len(q)] = best_i.cpu().numpy()
    return out_s, out_i


def _top_k_by_score_then_id(s: torch.Tensor, i: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best columns per row: decreasing score, ties by increasing id.

    Two stable sorts (id, then score) give the lexicographic order ``topk`` alone does not.
    """
    by_id = torch.argsort(i, dim=1, stable=True)
    s, i = torch.gather(s, 1, by_id), torch.gather(i, 1, by_id)
    by_score = torch.argsort(s, dim=1, descending=True, stable=True)[:, :k]
    return torch.gather(s, 1, by_score), torch.gather(i, 1, by_score)
