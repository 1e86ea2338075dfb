"""Nearest-neighbour matching of one query against many candidates at once (torch, any device).

The per-pair matchers (:class:`~vgloc.local.matching.nearest.MNNMatcher`,
:class:`~vgloc.local.matching.nearest.RatioMatcher`) compute one distance matrix per
pair with numpy. :func:`match_many` computes the same matrices for a chunk of
candidates in one batched GEMM (the candidates' descriptors padded to a common length)
and runs the mutual / ratio checks on the whole chunk with torch reductions, on CPU or
on a GPU.

Same matches as the per-pair path. Each distance is computed with the same float32
arithmetic in the same order as :func:`~vgloc.local.matching.nearest.descriptor_distances`:
the dot product (one GEMM over the descriptor dimension, whose accumulation order does
not depend on how many rows are batched), times -2, plus the query's squared norm, plus
the candidate's squared norm (both norms computed by numpy exactly as there), clipped at
0; ties are broken towards the lower index in both directions, as ``argmin`` does. On
CPU the results are therefore identical (the tests check it on real photos). On a GPU,
cuBLAS may sum in another order, so a nearest neighbour tied with its runner-up to
within float32 rounding can differ.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from vgloc.local.features import LocalFeatures
from vgloc.local.matching.base import MatchResult, SparseMatcher
from vgloc.local.matching.nearest import MNNMatcher, RatioMatcher

__all__ = ["QueryDescriptors", "can_match_many", "chunk_ranges", "match_chunk", "match_many", "prepare_query"]

#: Elements of one chunk's distance matrix (float32): 512k = 2 MB, small enough that the
#: element-wise passes and reductions after the GEMM run in cache (measured: 1.9 ms/pair
#: at 512k vs 2.8 ms/pair at 4M elements for 600 x 600 RootSIFT keypoints).
DEFAULT_CHUNK_ELEMENTS = 2**19


def can_match_many(matcher: SparseMatcher, query: LocalFeatures) -> bool:
    """Whether :func:`match_many` reproduces ``matcher`` for this query.

    True for ``mnn`` and ``ratio`` (float or binary descriptors) and a query with at least
    two keypoints.
    """
    # One query keypoint makes numpy's product a GEMV, whose rounding the batch cannot reproduce.
    return isinstance(matcher, (MNNMatcher, RatioMatcher)) and len(query) >= 2


def _as_float(desc: np.ndarray) -> np.ndarray:
    """Descriptors in the float32 form the distance is computed on (bits unpacked for binary)."""
    if desc.dtype == np.uint8:
        return np.unpackbits(desc, axis=1).astype(np.float32)
    return np.ascontiguousarray(desc, dtype=np.float32)


#: Squared norms of float candidates' descriptors, by ``id`` of their LocalFeatures,
#: dropped when those features are garbage-collected (a weakref finalizer), so a
#: database image revisited by later queries has its norms computed once.
_SQNORMS: dict[int, np.ndarray] = {}


def _float_and_sqnorm(feats: LocalFeatures) -> tuple[np.ndarray, np.ndarray]:
    """(N, D') float32 descriptors and their (N,) squared norms, as the per-pair path computes them.

    The norms of float descriptors are cached for as long as ``feats`` lives (same
    numbers: numpy's ``(b * b).sum(1)`` once instead of once per query).
    """
    b = _as_float(feats.descriptors)
    if feats.binary:
        return b, (b * b).sum(1)
    key = id(feats)
    nb = _SQNORMS.get(key)
    if nb is None:
        nb = (b * b).sum(1)
        try:
            # The callback runs before the object's memory (and so its id) can be reused.
            weakref.finalize(feats, _SQNORMS.pop, key, None)
        except TypeError:  # features that cannot be weakly referenced: no caching
            return b, nb
        _SQNORMS[key] = nb
    return b, nb


def chunk_ranges(
    query: LocalFeatures, candidates: Sequence[LocalFeatures], max_elements: int = DEFAULT_CHUNK_ELEMENTS
) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` candidate ranges whose padded (N0, C, W) distances fit ``max_elements``.

    A candidate larger than the cap gets a range of its own.
    """
    sizes, n0 = [len(c) for c in candidates], max(1, len(query))
    out, start = [], 0
    while start < len(sizes):
        stop, width = start, 2
        while stop < len(sizes):
            w = max(width, sizes[stop])
            if stop > start and (stop + 1 - start) * w * n0 > max_elements:
                break
            width, stop = w, stop + 1
        out.append((start, stop))
        start = stop
    return out


class QueryDescriptors(NamedTuple):
    """A query's descriptors ready for :func:`match_chunk` (:func:`prepare_query`).

    Attributes:
        features: the query's features (N0 keypoints).
        desc: (N0, D') float32 descriptors (bits unpacked for binary ones) times -2: the
            GEMM then yields ``-2 a.b`` directly, bit for bit (scaling by a power of two is
            exact), which saves a pass over the distances.
        sqnorm: (N0,) float32 squared norms (numpy's summation, as the per-pair path).
        squared: whether distances are squared Euclidean (float descriptors) or Hamming.
    """

    features: LocalFeatures
    desc: np.ndarray
    sqnorm: np.ndarray
    squared: bool


def prepare_query(query: LocalFeatures) -> QueryDescriptors:
    """The query's float descriptors and squared norms, computed once for all chunks."""
    a = _as_float(query.descriptors)
    return QueryDescriptors(query, a * np.float32(-2.0), (a * a).sum(1), not query.binary)


def _distances(q: QueryDescriptors, candidates: Sequence[LocalFeatures], device: Any) -> Any:
    """(N0, C, W) distances of the query to the chunk's candidates, padding rows at +inf.

    The arithmetic of :func:`~vgloc.local.matching.nearest.descriptor_distances`, in its
    order: ``a . b`` (one GEMM) times -2, plus the query's squared norm, plus the
    candidate's; NOT yet clipped at 0 (see :func:`_clip_min`). The layout puts each query keypoint's distances to one
    candidate's keypoints contiguously (the nearest-neighbour search is a contiguous
    reduction), and the search over query keypoints is an element-wise min of rows.
    """
    prepared = [_float_and_sqnorm(f) for f in candidates]
    n0 = len(q.desc)
    if device is None and len(prepared) == 1 and len(prepared[0][0]) >= 2:
        # One candidate per chunk (the usual case at 480x640: ~600 x 600 keypoints fill a
        # chunk): its descriptors are the (W, D) matrix the padded path would copy, so the
        # same GEMM runs on them directly, with no padding copy.
        b, nb1 = prepared[0]
        dist = q.desc @ b.T
        dist += q.sqnorm[:, None]
        dist += nb1[None, :]
        return dist.reshape(n0, 1, len(b))
    width = max(2, *(len(b) for b, _ in prepared))  # >= 2: the ratio test's runner-up may be padding
    pad = np.zeros((len(prepared), width, q.desc.shape[1]), np.float32)
    nb = np.full((len(prepared), width), np.inf, np.float32)  # padding rows: infinitely far
    for j, (b, nbj) in enumerate(prepared):
        pad[j, : len(b)] = b
        nb[j, : len(b)] = nbj
    if device is None:
        dist = q.desc @ pad.reshape(-1, q.desc.shape[1]).T
        dist += q.sqnorm[:, None]
        dist += nb.reshape(1, -1)
        return dist.reshape(n0, len(prepared), width)
    import torch

    ta = torch.from_numpy(q.desc).to(device)
    tb = torch.from_numpy(pad.reshape(-1, q.desc.shape[1])).to(device)
    tdist = (ta @ tb.T).view(n0, len(prepared), width)
    tdist.add_(torch.from_numpy(q.sqnorm).to(device)[:, None, None])
    tdist.add_(torch.from_numpy(nb).to(device)[None])
    return tdist


def _clip_min(dist: Any) -> np.ndarray:
    """Clip the distances at 0 as the per-pair path does, and return the (C, W) min over axis 0.

    Rounding makes a distance negative only for (nearly) identical descriptors, so the
    clip pass is run only when the minimum (needed anyway) shows a negative value.
    """
    col_min = _np(dist.min(0) if isinstance(dist, np.ndarray) else dist.amin(0))
    if (col_min < 0).any():
        if isinstance(dist, np.ndarray):
            np.maximum(dist, 0.0, out=dist)
        else:
            dist.clamp_min_(0.0)
        col_min = np.maximum(col_min, np.float32(0.0))
    return col_min


def _np(x: Any) -> np.ndarray:
    return x if isinstance(x, np.ndarray) else x.cpu().numpy()


def _mutual(
    dist: Any, col_min: np.ndarray, max_distance: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mutual nearest neighbours in (N0, C, W) distances, as ``mutual_nearest_neighbours`` per candidate.

    Returns:
        ``(keep, fwd, d1)``: (N0, C) bool, (N0, C) int64 nearest candidate keypoint of each
        query keypoint (the first on ties, as ``argmin``; torch documents the same rule),
        (N0, C) float32 its distance.
    """
    # Row-wise argmin and the min over rows (axis 0) are contiguous, fast reductions; an
    # argmin over axis 0 is not (numpy: a strided loop ~5x slower), so it is avoided.
    fwd_x = dist.argmin(2)
    fwd = _np(fwd_x)
    n0, c = fwd.shape
    cols = np.arange(c)[None, :]
    d1 = _np(
        dist[np.arange(n0)[:, None], cols, fwd]
        if isinstance(dist, np.ndarray)
        else dist.gather(2, fwd_x[..., None])[..., 0]
    )
    # Query keypoint i is its nearest j's nearest when it attains j's column minimum and is
    # the FIRST row attaining it (argmin's rule). Only those candidates' columns are read
    # again to find that first row (ties are rare, the read is small).
    keep = d1 == col_min[cols, fwd]
    qi, cj = np.nonzero(keep)
    if len(qi):
        wj = fwd[qi, cj]
        if isinstance(dist, np.ndarray):
            columns = dist[:, cj, wj]  # (N0, S)
        else:
            import torch

            idx = torch.from_numpy(cj).to(dist.device), torch.from_numpy(wj).to(dist.device)
            columns = _np(dist[:, idx[0], idx[1]])
        first = np.argmax(columns == col_min[cj, wj][None, :], axis=0)
        keep[qi, cj] = first == qi
    if max_distance is not None:
        keep &= d1 <= max_distance
    return keep, fwd, d1


def _two_smallest(dist: Any, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """The smallest and second smallest along ``axis`` (equal when the minimum is tied)."""
    if isinstance(dist, np.ndarray):
        two = np.sort(np.partition(dist, 1, axis=axis).take([0, 1], axis=axis), axis=axis)
    else:
        two = _np(dist.topk(2, dim=axis, largest=False).values)
    return two.take(0, axis=axis), two.take(1, axis=axis)


def _ratio_pass(d1: np.ndarray, d2: np.ndarray, r: float) -> np.ndarray:
    return (d1 <= np.float32(r) * d2) & (d2 > 0)


def match_chunk(
    matcher: SparseMatcher,
    query: QueryDescriptors,
    candidates: Sequence[LocalFeatures],
    *,
    device: Any = None,
) -> list[MatchResult]:
    """Match the query (image 0) with each candidate of a chunk (image 1), in one batch.

    Args:
        matcher: an ``mnn`` or ``ratio`` matcher (see :func:`can_match_many`); its options
            (``max_distance``, ``ratio``, ``mutual``) apply.
        query: the query from :func:`prepare_query`.
        candidates: C candidates' features (N_c keypoints each, same descriptor type);
            :func:`chunk_ranges` sizes chunks.
        device: None: numpy on CPU (fastest there); a torch device (``"cpu"``,
            ``"cuda"``, ...): the same computation in torch on that device.

    Returns:
        One :class:`~vgloc.local.matching.MatchResult` per candidate, equal to
        ``matcher.match(query, candidate)``: (M, 2) int64 pairs sorted by query index,
        (M,) float32 scores (-distance).

    Raises:
        ValueError: a matcher :func:`can_match_many` refuses, or mixed descriptor types.
    """
    if not can_match_many(matcher, query.features):
        raise ValueError(
            f"batched matching cannot reproduce {matcher!r} for {len(query.features)} query keypoints"
        )
    if any(c.binary != query.features.binary for c in candidates):
        raise ValueError("cannot match binary and float descriptors")
    # A candidate with one keypoint (numpy computes that product as a GEMV, rounded
    # differently) or none is matched by the per-pair matcher itself.
    batch = [c for c in candidates if len(c) >= 2]
    if len(batch) < len(candidates):
        it = iter(_match_batch(matcher, query, batch, device) if batch else [])
        return [next(it) if len(c) >= 2 else matcher.match(query.features, c) for c in candidates]
    return _match_batch(matcher, query, candidates, device)


def _match_batch(
    matcher: SparseMatcher, query: QueryDescriptors, candidates: Sequence[LocalFeatures], device: Any
) -> list[MatchResult]:
    dist = _distances(query, candidates, device)
    col_min = _clip_min(dist)
    if isinstance(matcher, MNNMatcher):
        limit = matcher.max_distance
        keep, fwd, d1 = _mutual(
            dist, col_min, None if limit is None else limit**2 if query.squared else limit
        )
    else:
        assert isinstance(matcher, RatioMatcher)
        r = matcher.ratio**2 if query.squared else matcher.ratio
        row = _ratio_pass(*_two_smallest(dist, 2), r)  # (N0, C)
        if matcher.mutual:
            keep, fwd, d1 = _mutual(dist, col_min, None)
            col = _ratio_pass(*_two_smallest(dist, 0), r)  # (C, W)
            keep &= row & col[np.arange(col.shape[0])[None, :], fwd]
        else:
            fwd = _np(dist.argmin(2))
            d1 = _np(dist.min(2) if isinstance(dist, np.ndarray) else dist.amin(2))
            keep = row
    results = []
    for j in range(len(candidates)):
        i = np.flatnonzero(keep[:, j])
        d = d1[i, j].astype(np.float32)
        pairs = np.stack([i, fwd[i, j]], axis=1).astype(np.int64)
        results.append(MatchResult(pairs, -(np.sqrt(d) if query.squared else d)))
    return results


def match_many(
    matcher: SparseMatcher,
    query: LocalFeatures,
    candidates: Sequence[LocalFeatures],
    *,
    device: Any = None,
    max_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> list[MatchResult]:
    """Match the query with each candidate, chunk by chunk (:func:`match_chunk`), in one thread.

    Args:
        matcher: an ``mnn`` or ``ratio`` matcher.
        query: the query's features (N0 keypoints).
        candidates: K candidates' features.
        device: None (numpy on CPU) or a torch device.
        max_elements: cap on a chunk's distance matrix.

    Returns:
        K :class:`~vgloc.local.matching.MatchResult`, equal to ``matcher.match(query, c)``.
    """
    q = prepare_query(query)
    out: list[MatchResult] = []
    for start, stop in chunk_ranges(query, candidates, max_elements):
        out += match_chunk(matcher, q, candidates[start:stop], device=device)
    return out
