"""Triplet mining of the VG benchmark (PROTOCOLS §1.2, VGB datasets_ws.py:93-98, 159-160, 177-196, 274-382).

Geography decides what may be a positive or a negative; the current model's
descriptors decide which of them are used:

* *hard positives*: database images within ``pos_radius`` = 10 m of the query (boundary
  included). The *best positive* is the one nearest to the query in descriptor space
  (squared L2, as faiss ``IndexFlatL2``).
* *soft positives*: database images within ``neg_radius`` = 25 m. A *negative* is any
  database image that is not a soft positive (there is no separate negative radius).
* the *hardest negatives*: the ``negs_per_query`` = 10 candidate negatives nearest to the
  query in descriptor space, nearest first.

Which database images are candidate negatives depends on ``mode``:

``partial`` (VGB default)
    ``neg_samples`` = 1000 database images are drawn once per refresh, without
    replacement, and shared by all queries of that refresh; each query drops its soft
    positives from them and keeps its 10 hardest.
``full``
    Each query draws its own 1000, drops its soft positives, adds its 10 hardest
    negatives of the previous refresh (the per-query negative cache), keeps the 10
    hardest and writes them back to the cache.
``random``
    ``10 + #soft positives`` random database images, soft positives removed, the first
    10 kept in random order: no descriptors are needed for negatives.

Usage by a training loop, once per cache refresh (1000 queries in VGB)::

    miner = TripletMiner(db_utm, q_utm, mode="partial", seed=0)
    query_ids = miner.sample_queries(1000)
    plan = miner.plan(query_ids)                  # draws the random samples
    q_desc = model(queries[plan.query_ids])       # (Q, D)
    db_desc = model(database[plan.db_ids])        # (len(plan.db_ids), D): only these are needed
    triplets = miner.mine(plan, q_desc, db_desc)  # list of Triplet(query, positive, negatives)

Queries without a hard positive cannot form a triplet. As in VGB they are excluded
(``trainable_query_ids``) and their number is logged; if more than
``max_removed_fraction`` of the queries would be excluded the miner refuses to start,
since that points at mismatched coordinate frames or a wrong radius. ``mine`` given
such a query raises an error naming it.

Deviations from VGB, all deliberate:

* Query ids stay those of ``q_utm`` after the exclusion. VGB deletes the excluded queries
  from its hard-positive list but not from its soft-positive list, so after the first
  excluded query the soft positives it subtracts belong to another query [QUIRK, a bug
  not reproduced here].
* Randomness comes from one seeded ``numpy.random.Generator`` owned by the miner, drawn
  in :meth:`TripletMiner.plan`, not from the global numpy state; results are
  reproducible for a seed but the draws are not VGB's.
* When the database has fewer than ``neg_samples`` images, all of them are used (VGB
  would fail in ``np.random.choice``).
* Ties in descriptor distance go to the candidate listed first (hard positives are
  ordered by geographic distance); faiss leaves tie order unspecified.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np

from vgloc.geo import positives_within

__all__ = ["MiningMode", "MiningPlan", "Triplet", "TripletMiner"]

log = logging.getLogger(__name__)

MiningMode = Literal["full", "partial", "random"]
_MODES = ("full", "partial", "random")
# Bound on the temporary (queries x database images) distance block, in elements,
# so that full-database mining of a large database does not allocate Q x N at once.
_MAX_BLOCK = 1 << 25


class Triplet(NamedTuple):
    """One training tuple.

    Attributes:
        query_id: Index into the query set.
        positive_id: Database index of the best positive.
        negative_ids: ``(negs_per_query,)`` int64 database indices of the negatives,
            hardest (nearest) first (random order in ``random`` mode).
    """

    query_id: int
    positive_id: int
    negative_ids: np.ndarray


@dataclass(frozen=True)
class MiningPlan:
    """The random draws of one cache refresh, and the descriptors they require.

    Attributes:
        mode: The miner's mode.
        query_ids: ``(Q,)`` query indices, in the order ``mine`` expects their descriptors.
        db_ids: Sorted unique database indices whose descriptors ``mine`` reads.
        candidates: Per query, the candidate negatives (``partial``/``full``; soft
            positives already removed) or the chosen negatives (``random``).
    """

    mode: str
    query_ids: np.ndarray
    db_ids: np.ndarray
    candidates: list[np.ndarray] = field(repr=False)


class TripletMiner:
    """Mine (query, best positive, hardest negatives) tuples as the VG benchmark does.

    Args:
        db_utm: Database UTM coordinates in metres.
        q_utm: Query UTM coordinates in the same frame.
        pos_radius: Hard-positive radius in metres (VGB ``train_positives_dist_threshold`` 10).
        neg_radius: Soft-positive radius in metres; negatives lie strictly beyond it
            (VGB ``val_positive_dist_threshold`` 25).
        negs_per_query: Negatives per query (VGB 10).
        mode: ``"partial"`` (VGB default), ``"full"`` or ``"random"``.
        neg_samples: Random database images per refresh (``partial``: shared; ``full``:
            per query). VGB 1000.
        seed: Seed of all random draws.
        max_removed_fraction: Refuse to start when more than this fraction of the
            queries has no hard positive.

    Attributes:
        hard_positives: Per query, database ids within ``pos_radius``, nearest first.
        soft_positives: Per query, database ids within ``neg_radius``.
        trainable_query_ids: Queries with at least one hard positive.
        removed_query_ids: Queries without one (never mined).

    Shape:
        - ``db_utm``: ``(N_db, 2)``; ``q_utm``: ``(N_q, 2)``.
    """

    def __init__(
        self,
        db_utm: np.ndarray,
        q_utm: np.ndarray,
        pos_radius: float = 10.0,
        neg_radius: float = 25.0,
        negs_per_query: int = 10,
        mode: MiningMode = "partial",
        neg_samples: int = 1000,
        seed: int = 0,
        max_removed_fraction: float = 0.5,
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"unknown mining mode {mode!r}; choose one of {_MODES}")
        if not 0 < pos_radius <= neg_radius:
            raise ValueError(
                f"need 0 < pos_radius <= neg_radius, got pos_radius={pos_radius}, neg_radius={neg_radius}"
            )
        if negs_per_query < 1:
            raise ValueError(f"negs_per_query must be >= 1, got {negs_per_query}")
        if neg_samples < negs_per_query:
            raise ValueError(f"neg_samples={neg_samples} must be >= negs_per_query={negs_per_query}")
        if not 0 <= max_removed_fraction <= 1:
            raise ValueError(f"max_removed_fraction must be in [0, 1], got {max_removed_fraction}")
        self.db_utm = _coords(db_utm, "db_utm")
        self.q_utm = _coords(q_utm, "q_utm")
        if len(self.db_utm) == 0 or len(self.q_utm) == 0:
            raise ValueError(f"need database and query images, got {len(self.db_utm)} and {len(self.q_utm)}")
        self.pos_radius = float(pos_radius)
        self.neg_radius = float(neg_radius)
        self.negs_per_query = int(negs_per_query)
        self.mode: str = mode
        self.neg_samples = int(neg_samples)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.num_db = len(self.db_utm)
        self.num_queries = len(self.q_utm)

        self.hard_positives = positives_within(self.db_utm, self.q_utm, self.pos_radius)
        self.soft_positives = positives_within(self.db_utm, self.q_utm, self.neg_radius)
        has_pos = np.array([len(p) > 0 for p in self.hard_positives])
        self.trainable_query_ids = np.flatnonzero(has_pos).astype(np.int64)
        self.removed_query_ids = np.flatnonzero(~has_pos).astype(np.int64)
        n_removed = len(self.removed_query_ids)
        if n_removed:
            frac = n_removed / self.num_queries
            msg = (
                f"{n_removed} of {self.num_queries} queries ({frac:.1%}) have no database image within "
                f"pos_radius={self.pos_radius} m"
            )
            if frac > max_removed_fraction:
                raise ValueError(
                    f"{msg}, more than max_removed_fraction={max_removed_fraction}: check that queries "
                    "and database share one UTM frame, or raise pos_radius (e.g. query ids "
                    f"{self.removed_query_ids[:5].tolist()})"
                )
            log.warning("%s; they are excluded from training, as in the VG benchmark", msg)
        # Per-query hardest negatives of the previous refresh (full mode only).
        self.neg_cache: dict[int, np.ndarray] = {}

    def __repr__(self) -> str:
        return (
            f"TripletMiner(mode={self.mode!r}, db={self.num_db}, queries={self.num_queries} "
            f"({len(self.trainable_query_ids)} trainable), pos_radius={self.pos_radius}, "
            f"neg_radius={self.neg_radius}, negs_per_query={self.negs_per_query}, "
            f"neg_samples={self.neg_samples})"
        )

    # -- sampling --------------------------------------------------------------------
    def sample_queries(self, num: int = 1000) -> np.ndarray:
        """Draw queries for one refresh, uniformly without replacement (VGB datasets_ws.py:296).

        Args:
            num: Number of queries (VGB ``cache_refresh_rate`` 1000).

        Returns:
            ``(num,)`` int64 query ids, all with a hard positive.
        """
        n = len(self.trainable_query_ids)
        if not 0 < num <= n:
            raise ValueError(f"cannot sample {num} queries: {n} queries have a hard positive")
        return self.rng.choice(self.trainable_query_ids, size=num, replace=False).astype(np.int64)

    def plan(self, query_ids: np.ndarray | list[int]) -> MiningPlan:
        """Draw the random database samples of one refresh.

        Args:
            query_ids: Queries to mine for; each needs a hard positive.

        Returns:
            The plan; compute descriptors for ``plan.query_ids`` and ``plan.db_ids``
            and pass them to :meth:`mine`.
        """
        qids = self._check_query_ids(query_ids)
        pos = [self.hard_positives[q] for q in qids]
        needed: list[np.ndarray] = list(pos)
        candidates: list[np.ndarray] = []
        k = min(self.neg_samples, self.num_db)
        if self.mode == "partial":
            shared = self.rng.choice(self.num_db, size=k, replace=False)
            for q in qids:
                candidates.append(np.setdiff1d(shared, self.soft_positives[q], assume_unique=True))
            needed.append(shared)
        elif self.mode == "full":
            for q in qids:
                own = self.rng.choice(self.num_db, size=k, replace=False)
                own = np.setdiff1d(own, self.soft_positives[q], assume_unique=True)
                cand = np.unique(np.concatenate([self.neg_cache.get(int(q), np.zeros(0, np.int64)), own]))
                candidates.append(cand)
                needed.append(cand)
        else:  # random
            for q in qids:
                soft = self.soft_positives[q]
                draw = self.rng.choice(
                    self.num_db, size=min(self.negs_per_query + len(soft), self.num_db), replace=False
                )
                # assume_unique keeps the random order of `draw`, as VGB's setdiff1d does.
                candidates.append(np.setdiff1d(draw, soft, assume_unique=True)[: self.negs_per_query])
        for q, cand in zip(qids, candidates, strict=True):
            if len(cand) < self.negs_per_query:
                raise ValueError(
                    f"query {int(q)}: only {len(cand)} candidate negatives beyond {self.neg_radius} m in "
                    f"this draw (need negs_per_query={self.negs_per_query}); the database is too small "
                    "or too concentrated around the query: lower negs_per_query or raise neg_samples"
                )
        db_ids = np.unique(np.concatenate(needed)).astype(np.int64)
        return MiningPlan(
            mode=self.mode,
            query_ids=qids,
            db_ids=db_ids,
            candidates=[np.asarray(c, dtype=np.int64) for c in candidates],
        )

    # -- mining ----------------------------------------------------------------------
    def mine(
        self,
        queries: MiningPlan | np.ndarray | list[int],
        query_desc: np.ndarray,
        db_desc: np.ndarray,
    ) -> list[Triplet]:
        """Choose the best positive and the negatives of each query.

        Args:
            queries: A plan from :meth:`plan`, or query ids (a plan is then drawn here
                and ``db_desc`` must cover the whole database).
            query_desc: Descriptors of ``plan.query_ids``, row ``i`` for query ``i``.
            db_desc: Either descriptors of the whole database (row = database id) or
                descriptors of ``plan.db_ids`` only, in that order.

        Returns:
            One :class:`Triplet` per query, in query order. In ``full`` mode the chosen
            negatives also replace the query's entry in ``neg_cache``.

        Shape:
            - ``query_desc``: ``(Q, D)``
            - ``db_desc``: ``(N_db, D)`` or ``(len(plan.db_ids), D)``
        """
        plan = queries if isinstance(queries, MiningPlan) else self.plan(queries)
        if plan.mode != self.mode:
            raise ValueError(f"plan was drawn for mode {plan.mode!r}, this miner mines {self.mode!r}")
        qd = np.asarray(query_desc)
        dd = np.asarray(db_desc)
        q_n = len(plan.query_ids)
        if qd.ndim != 2 or qd.shape[0] != q_n:
            raise ValueError(f"query_desc must be ({q_n}, D) for the plan's {q_n} queries, got {qd.shape}")
        if dd.ndim != 2 or dd.shape[1] != qd.shape[1]:
            raise ValueError(f"db_desc must be (rows, {qd.shape[1]}), got {dd.shape}")
        dtype = np.result_type(qd.dtype, dd.dtype, np.float32)
        col_of = np.full(self.num_db, -1, dtype=np.int64)  # database id -> column of the distance block
        if dd.shape[0] == len(plan.db_ids):
            X = dd  # rows already follow plan.db_ids
            col_of[plan.db_ids] = np.arange(len(plan.db_ids))
        elif dd.shape[0] == self.num_db:
            if 2 * len(plan.db_ids) > self.num_db:
                # Most of the database is needed (full mode): computing a few unused
                # columns is cheaper than copying the whole descriptor matrix.
                X = dd
                col_of = np.arange(self.num_db, dtype=np.int64)
            else:
                X = dd[plan.db_ids]
                col_of[plan.db_ids] = np.arange(len(plan.db_ids))
        else:
            raise ValueError(
                f"db_desc has {dd.shape[0]} rows; expected the whole database ({self.num_db}) or "
                f"the plan's db_ids ({len(plan.db_ids)})"
            )
        X = np.asarray(X, dtype=dtype)
        x_sq = np.einsum("ij,ij->i", X, X)

        out: list[Triplet] = []
        step = max(1, _MAX_BLOCK // max(1, len(X)))
        for start in range(0, q_n, step):
            qb = qd[start : start + step].astype(dtype, copy=False)
            # Squared L2 by expansion, as faiss IndexFlatL2 does for batched search.
            d2 = np.einsum("ij,ij->i", qb, qb)[:, None] + x_sq[None, :] - 2.0 * (qb @ X.T)
            for i in range(len(qb)):
                j = start + i
                qid = int(plan.query_ids[j])
                row = d2[i]
                hp = self.hard_positives[qid]
                best_pos = int(hp[np.argmin(row[col_of[hp]])])
                cand = plan.candidates[j]
                if self.mode == "random":
                    negs = cand
                else:
                    order = np.argsort(row[col_of[cand]], kind="stable")[: self.negs_per_query]
                    negs = cand[order]
                    if self.mode == "full":
                        self.neg_cache[qid] = negs.copy()
                out.append(Triplet(qid, best_pos, negs.astype(np.int64, copy=True)))
        return out

    # -- checkpointing -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Random state and negative cache, to resume mining exactly.

        Returns:
            A picklable dict.
        """
        return {
            "rng": self.rng.bit_generator.state,
            "neg_cache": {k: v.copy() for k, v in self.neg_cache.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output.

        Args:
            state: A dict from :meth:`state_dict`.
        """
        self.rng.bit_generator.state = state["rng"]
        self.neg_cache = {int(k): np.asarray(v, dtype=np.int64) for k, v in state["neg_cache"].items()}

    def _check_query_ids(self, query_ids: np.ndarray | list[int]) -> np.ndarray:
        qids = np.asarray(query_ids)
        if qids.ndim != 1 or qids.size == 0:
            raise ValueError(f"query_ids must be a non-empty 1-D list of ints, got shape {qids.shape}")
        if not np.issubdtype(qids.dtype, np.integer):
            raise ValueError(f"query_ids must be integers, got dtype {qids.dtype}")
        qids = qids.astype(np.int64)
        bad = qids[(qids < 0) | (qids >= self.num_queries)]
        if bad.size:
            raise ValueError(f"query id {int(bad[0])} out of range for {self.num_queries} queries")
        no_pos = [int(q) for q in qids if len(self.hard_positives[q]) == 0]
        if no_pos:
            raise ValueError(
                f"{len(no_pos)} of the requested queries have no hard positive within {self.pos_radius} m "
                f"(e.g. query ids {no_pos[:5]}); sample from trainable_query_ids"
            )
        return qids


def _coords(xy: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(xy, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"{what} must be (N, 2) easting/northing in metres, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        bad = np.flatnonzero(~np.all(np.isfinite(a), axis=1))
        raise ValueError(f"{what}: {len(bad)} row(s) are not finite, e.g. row {int(bad[0])}")
    return a
