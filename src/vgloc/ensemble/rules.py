"""Fusion rules: several models' ranked lists of one query set -> one ranked list.

Each rule is a pure function registered in :data:`vgloc.registry.ENSEMBLES`; a new
fusion is a new function plus a registration. Every rule takes, per model ``m``,
``ids[m]`` (Q, K_m) database indices best first (``-1`` = an empty slot, e.g. a
database smaller than K) and ``sims[m]`` (Q, K_m) the similarities of those
candidates, and returns the fused ids (Q, k), padded with ``-1`` when the models
together found fewer than ``k`` distinct candidates.

The rules:

- ``nif`` (the published NIF of the "Rethinking Visual Geo-localization for
  Large-Scale Applications" extension project CarachinoAlessio/VisualGeolocalization,
  ``test_ensemble.py``): all candidates of all models sorted by their descriptor
  distance, a candidate seen by several models kept once at its closest, the top
  ``k`` kept. vgloc's similarities are inner products of L2-normalised descriptors
  (the :class:`~vgloc.describers.Describer` contract), so sorting by similarity,
  highest first, is sorting by L2 distance (``|a - b|^2 = 2 - 2 a.b``), as the
  project's ``IndexFlatL2`` distances did. Distances of different models are
  comparable only because both are on the unit sphere; that is the rule's premise.
  Ties keep model order, then rank (the project's stable ``sorted``).
- ``sif`` (same source): the candidates that every model retrieved, in the lead
  model's order; then the rest of the lead model's list; then the other models'
  remaining candidates, model by model, each in its own order. The project fused
  two models with the GeoWarp model as the lead (its order first); vgloc's lead is
  the first model unless ``lead`` says otherwise.
- ``rrf``: reciprocal-rank fusion (Cormack, Clarke & Buettcher, SIGIR 2009): score
  ``sum_m 1 / (k_rrf + rank_m)`` with 1-based ranks and ``k_rrf = 60``, a model that
  did not retrieve a candidate adding nothing. Ties go to the candidate with the
  better best rank, then to the earlier model (candidates are visited rank by rank,
  model by model, and sorted stably); scores of equal rank multisets are computed
  identically (terms summed in a fixed order) so such ties are exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vgloc.registry import ENSEMBLES

__all__ = [
    "RRF_K",
    "best_similarities",
    "check_ensemble",
    "check_rankings",
    "fuse",
    "nif",
    "rrf",
    "sif",
]

#: The RRF constant of Cormack, Clarke & Buettcher (SIGIR 2009).
RRF_K = 60


def check_ensemble(name: str, num_models: int, lead: int = 0) -> None:
    """Raise ValueError before any work when an ensemble cannot be run.

    Args:
        name: a registered fusion (``nif``, ``sif``, ``rrf``).
        num_models: how many models are fused (at least 2).
        lead: the 0-based lead model of ``sif``.
    """
    ENSEMBLES.entry(name)  # unknown name -> UnknownNameError listing close ones
    if num_models < 2:
        raise ValueError(
            f"an ensemble ({name}) fuses at least 2 models, got {num_models}; give --model/--index "
            "once per model, or leave --ensemble out to evaluate a single model"
        )
    if isinstance(lead, bool) or not 0 <= lead < num_models:
        raise ValueError(f"the ensemble's lead model must be 1..{num_models}, got {lead + 1}")


def check_rankings(ids: Sequence[np.ndarray], sims: Sequence[np.ndarray]) -> None:
    """Raise ValueError unless every model gives (Q, K_m) ids and similarities for the same Q."""
    if len(ids) != len(sims) or not ids:
        raise ValueError(f"need one (ids, similarities) pair per model, got {len(ids)} and {len(sims)}")
    q = np.shape(ids[0])[0] if np.ndim(ids[0]) == 2 else None
    for m, (i, s) in enumerate(zip(ids, sims, strict=True)):
        if np.ndim(i) != 2 or np.shape(i) != np.shape(s) or np.shape(i)[0] != q:
            raise ValueError(
                f"model {m + 1}: ids {np.shape(i)} and similarities {np.shape(s)} must both be "
                f"(Q, K) with the same Q ({q}) for every model"
            )


def _rows(ids: Sequence[np.ndarray], q: int) -> list[np.ndarray]:
    """Query ``q``'s candidates per model, empty slots dropped."""
    return [np.asarray(i[q], dtype=np.int64)[np.asarray(i[q]) >= 0] for i in ids]


def _pad(rows: list[list[int]], k: int) -> np.ndarray:
    out = np.full((len(rows), k), -1, dtype=np.int64)
    for q, row in enumerate(rows):
        out[q, : min(k, len(row))] = row[:k]
    return out


def _unique_in_order(candidates: np.ndarray) -> list[int]:
    """``candidates`` with repeats dropped, first occurrence kept."""
    _, first = np.unique(candidates, return_index=True)
    return [int(c) for c in candidates[np.sort(first)]]


@ENSEMBLES.register(
    "nif",
    description="all models' candidates by descriptor distance, duplicates at their closest "
    "(CarachinoAlessio/VisualGeolocalization, test_ensemble.py)",
)
def nif(ids: Sequence[np.ndarray], sims: Sequence[np.ndarray], k: int, **_: object) -> np.ndarray:
    """Merge by distance: every model's candidates sorted by similarity, highest first.

    Args:
        ids: per model, (Q, K_m) database indices best first (-1 = empty).
        sims: per model, (Q, K_m) similarities (inner products of unit vectors).
        k: candidates kept per query.

    Returns:
        (Q, k) int64 fused ids, -1 padded.
    """
    check_rankings(ids, sims)
    rows = []
    for q in range(np.shape(ids[0])[0]):
        cand = np.concatenate([np.asarray(i[q], dtype=np.int64) for i in ids])
        sim = np.concatenate([np.asarray(s[q], dtype=np.float64) for s in sims])
        keep = cand >= 0
        cand, sim = cand[keep], sim[keep]
        # Stable: equal similarities keep model order, then rank (the project's sorted()).
        order = np.argsort(-sim, kind="stable")
        rows.append(_unique_in_order(cand[order]))
    return _pad(rows, k)


@ENSEMBLES.register(
    "sif",
    description="candidates every model retrieved first (lead model's order), then the lead "
    "model's list, then the others' (CarachinoAlessio/VisualGeolocalization, test_ensemble.py)",
)
def sif(
    ids: Sequence[np.ndarray], sims: Sequence[np.ndarray], k: int, *, lead: int = 0, **_: object
) -> np.ndarray:
    """Shared first: candidates all models retrieved, then the lead model's, then the rest.

    Args:
        ids: per model, (Q, K_m) database indices best first (-1 = empty).
        sims: per model, (Q, K_m) similarities (unused: the rule is rank-based).
        k: candidates kept per query.
        lead: 0-based index of the lead ("stronger") model.

    Returns:
        (Q, k) int64 fused ids, -1 padded.
    """
    check_rankings(ids, sims)
    check_ensemble("sif", len(ids), lead)
    rows = []
    for q in range(np.shape(ids[0])[0]):
        per_model = _rows(ids, q)
        main = _unique_in_order(per_model[lead])
        others = [per_model[m].tolist() for m in range(len(per_model)) if m != lead]
        others_sets = [set(o) for o in others]
        shared = [c for c in main if all(c in o for o in others_sets)]
        seen = set(shared)
        row = list(shared)
        for c in [*main, *(c for o in others for c in o)]:
            if c not in seen:
                seen.add(c)
                row.append(c)
        rows.append(row)
    return _pad(rows, k)


@ENSEMBLES.register(
    "rrf",
    description="reciprocal-rank fusion, sum of 1/(60 + rank) (Cormack, Clarke & Buettcher, SIGIR 2009)",
)
def rrf(
    ids: Sequence[np.ndarray], sims: Sequence[np.ndarray], k: int, *, rrf_k: int = RRF_K, **_: object
) -> np.ndarray:
    """Reciprocal-rank fusion: score = sum over models of 1 / (rrf_k + rank), ranks from 1.

    Args:
        ids: per model, (Q, K_m) database indices best first (-1 = empty).
        sims: per model, (Q, K_m) similarities (unused: the rule is rank-based).
        k: candidates kept per query.
        rrf_k: the constant (60 in the paper).

    Returns:
        (Q, k) int64 fused ids, -1 padded.
    """
    check_rankings(ids, sims)
    if isinstance(rrf_k, bool) or rrf_k < 0:
        raise ValueError(f"rrf_k must be >= 0, got {rrf_k}")
    rows = []
    for q in range(np.shape(ids[0])[0]):
        ranks: dict[int, list[int]] = {}
        per_model = _rows(ids, q)
        depth = max(len(r) for r in per_model)
        # Visiting rank by rank, model by model, gives the stable tie order.
        for r in range(depth):
            for row in per_model:
                if r < len(row):
                    ranks.setdefault(int(row[r]), []).append(r + 1)
        cands = list(ranks)
        # Terms summed from the best rank on: equal rank multisets give bit-equal scores.
        scores = np.array([sum(1.0 / (rrf_k + x) for x in sorted(ranks[c])) for c in cands])
        order = np.argsort(-scores, kind="stable")
        rows.append([cands[i] for i in order])
    return _pad(rows, k)


def best_similarities(fused: np.ndarray, ids: Sequence[np.ndarray], sims: Sequence[np.ndarray]) -> np.ndarray:
    """The highest similarity any model gave each fused candidate (NaN for empty slots).

    The similarity shown for a fused candidate, and the weight the position
    predictors (``kde``, the confidence) give it; for ``nif`` it is the sort key.

    Args:
        fused: (Q, k) fused ids (-1 = empty).
        ids, sims: per model, (Q, K_m) ids and similarities.

    Returns:
        (Q, k) float32.
    """
    out = np.full(fused.shape, np.nan, dtype=np.float32)
    for q in range(fused.shape[0]):
        best: dict[int, float] = {}
        for i, s in zip(ids, sims, strict=True):
            for c, v in zip(np.asarray(i[q]).tolist(), np.asarray(s[q]).tolist(), strict=True):
                if c >= 0 and (c not in best or v > best[c]):
                    best[c] = v
        for r, c in enumerate(fused[q].tolist()):
            if c >= 0:
                out[q, r] = best[c]
    return out


def fuse(
    name: str,
    ids: Sequence[np.ndarray],
    sims: Sequence[np.ndarray],
    k: int,
    *,
    lead: int = 0,
    rrf_k: int = RRF_K,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the registered fusion ``name`` and attach each candidate's best similarity.

    Args:
        name: ``nif``, ``sif``, ``rrf`` or any other registered fusion.
        ids, sims: per model, (Q, K_m) database indices (-1 = empty) and similarities.
        k: candidates kept per query.
        lead: 0-based lead model (``sif``).
        rrf_k: the RRF constant (``rrf``).

    Returns:
        ``(similarities float32 (Q, k), ids int64 (Q, k))``, the order of
        :meth:`vgloc.index.GeoIndex.search`; empty slots are -1 with NaN.
    """
    check_ensemble(name, len(ids), lead)
    if isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    fused = ENSEMBLES.get(name)(ids, sims, k, lead=lead, rrf_k=rrf_k)
    return best_similarities(fused, ids, sims), fused
