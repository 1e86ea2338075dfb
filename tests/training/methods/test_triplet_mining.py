"""VG benchmark triplet mining: hand-built cases, geographic guarantees, modes, determinism."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from vgloc.training.methods.triplet.mining import MiningPlan, TripletMiner


def _unit(angles: np.ndarray | list[float]) -> np.ndarray:
    a = np.asarray(angles, dtype=np.float64)
    return np.stack([np.cos(a), np.sin(a)], 1)


# Database along the east axis (north = 0). Descriptor angles chosen so that the
# geographically forbidden images (soft positives) are the most similar ones.
DB_X = [0, 6, 10, 18, 25, 30, 40, 50, 60, -35]
DB_ANGLE = [1.0, 0.5, 0.3, 0.01, 0.02, 0.9, 0.2, 2.0, 0.6, 0.4]
Q_X = [0, 45, 1000]  # query 2 has no database image within 10 m
Q_ANGLE = [0.0, np.pi / 2, 0.0]


def _hand_miner(mode: str = "partial", **kw: object) -> TripletMiner:
    db = np.stack([np.array(DB_X, float), np.zeros(len(DB_X))], 1)
    q = np.stack([np.array(Q_X, float), np.zeros(len(Q_X))], 1)
    return TripletMiner(db, q, negs_per_query=3, mode=mode, neg_samples=10, seed=0, **kw)


@pytest.mark.parametrize("mode", ["partial", "full"])
def test_best_positive_and_hardest_negatives_by_hand(mode: str) -> None:
    miner = _hand_miner(mode)
    # Boundaries are inclusive: 10 m is a hard positive, 25 m a soft positive.
    assert miner.hard_positives[0].tolist() == [0, 1, 2]
    assert sorted(miner.soft_positives[0].tolist()) == [0, 1, 2, 3, 4]
    triplets = miner.mine([0, 1], _unit([Q_ANGLE[0], Q_ANGLE[1]]), _unit(DB_ANGLE))
    q0, q1 = triplets
    # Query 0: the positive nearest in descriptor space is db 2 (angle 0.3); db 3 and 4
    # look closer still but lie within 25 m, so they are never negatives.
    assert (q0.query_id, q0.positive_id) == (0, 2)
    assert q0.negative_ids.tolist() == [6, 9, 8]  # angles 0.2, 0.4, 0.6 from the query
    # Query 1 (x=45, descriptor at pi/2): hard positives db 6 and db 7; db 7 (angle 2.0) wins.
    assert (q1.query_id, q1.positive_id) == (1, 7)
    assert q1.negative_ids.tolist() == [0, 1, 9]  # |pi/2 - a| = 0.57, 1.07, 1.17
    if mode == "full":
        assert miner.neg_cache[0].tolist() == [6, 9, 8]


def test_random_mode_by_hand() -> None:
    miner = _hand_miner("random")
    plan = miner.plan([0, 1])
    assert plan.db_ids.tolist() == [0, 1, 2, 6, 7]  # only the hard positives need descriptors
    q0, q1 = miner.mine(plan, _unit([Q_ANGLE[0], Q_ANGLE[1]]), _unit(DB_ANGLE))
    assert q0.positive_id == 2 and q1.positive_id == 7
    assert set(q0.negative_ids.tolist()) <= {5, 6, 7, 8, 9} and len(set(q0.negative_ids.tolist())) == 3
    assert set(q1.negative_ids.tolist()) <= {0, 1, 2, 3, 9}


def test_queries_without_hard_positive_are_excluded_with_a_logged_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="vgloc.training.methods.triplet.mining"):
        miner = _hand_miner()
    assert "1 of 3 queries" in caplog.text
    assert miner.trainable_query_ids.tolist() == [0, 1]
    assert miner.removed_query_ids.tolist() == [2]
    with pytest.raises(ValueError, match=r"no hard positive.*query ids \[2\]"):
        miner.plan([0, 2])
    with pytest.raises(ValueError, match="cannot sample 3 queries"):
        miner.sample_queries(3)
    assert sorted(miner.sample_queries(2).tolist()) == [0, 1]


def test_refuses_when_most_queries_have_no_positive() -> None:
    with pytest.raises(ValueError, match=r"1 of 3 queries.*max_removed_fraction=0.2.*UTM frame"):
        _hand_miner(max_removed_fraction=0.2)


def test_too_few_negatives_is_a_clear_error() -> None:
    db = np.array([[0.0, 0.0], [5.0, 0.0], [100.0, 0.0]])
    miner = TripletMiner(db, np.array([[0.0, 0.0]]), negs_per_query=2, neg_samples=10)
    with pytest.raises(ValueError, match=r"query 0: only 1 candidate negatives beyond 25.0 m"):
        miner.plan([0])


# -- random city: geographic guarantees and modes ---------------------------------------------


def _city(seed: int = 0, n_db: int = 400, n_q: int = 60, d: int = 8) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    db = rng.uniform(0, 300, size=(n_db, 2))
    # Queries near database images so that they have hard positives.
    q = db[rng.choice(n_db, n_q, replace=False)] + rng.uniform(-4, 4, size=(n_q, 2))
    db_desc = rng.normal(size=(n_db, d))
    q_desc = rng.normal(size=(n_q, d))
    db_desc /= np.linalg.norm(db_desc, axis=1, keepdims=True)
    q_desc /= np.linalg.norm(q_desc, axis=1, keepdims=True)
    return db, q, db_desc, q_desc


@pytest.mark.parametrize("mode", ["partial", "full", "random"])
def test_geographic_guarantees_in_every_mode(mode: str) -> None:
    db, q, db_desc, q_desc = _city()
    miner = TripletMiner(db, q, mode=mode, neg_samples=100, seed=3)
    qids = miner.sample_queries(40)
    plan = miner.plan(qids)
    triplets = miner.mine(plan, q_desc[plan.query_ids], db_desc)
    assert [t.query_id for t in triplets] == qids.tolist()
    for t in triplets:
        geo_neg = np.linalg.norm(db[t.negative_ids] - q[t.query_id], axis=1)
        assert geo_neg.min() > 25.0, "a negative lies within 25 m"
        assert np.linalg.norm(db[t.positive_id] - q[t.query_id]) <= 10.0
        assert len(t.negative_ids) == 10 and len(set(t.negative_ids.tolist())) == 10
        # Best positive = descriptor-nearest hard positive (brute force).
        hp = miner.hard_positives[t.query_id]
        d_hp = np.linalg.norm(db_desc[hp] - q_desc[t.query_id], axis=1)
        assert t.positive_id == hp[np.argmin(d_hp)]


@pytest.mark.parametrize("mode", ["partial", "full"])
def test_negatives_are_the_hardest_candidates(mode: str) -> None:
    db, q, db_desc, q_desc = _city()
    miner = TripletMiner(db, q, mode=mode, neg_samples=100, seed=1)
    plan = miner.plan(miner.sample_queries(30))
    triplets = miner.mine(plan, q_desc[plan.query_ids], db_desc)
    for t, cand in zip(triplets, plan.candidates, strict=True):
        d = np.linalg.norm(db_desc[cand] - q_desc[t.query_id], axis=1)
        assert t.negative_ids.tolist() == cand[np.argsort(d)[:10]].tolist()  # nearest first


def test_partial_shares_one_sample_full_draws_per_query() -> None:
    db, q, _, _ = _city()
    partial = TripletMiner(db, q, mode="partial", neg_samples=100, seed=0)
    plan = partial.plan(partial.sample_queries(30))
    pooled = np.unique(np.concatenate(plan.candidates))
    assert len(pooled) <= 100  # all queries' candidates come from the same 100 images
    full = TripletMiner(db, q, mode="full", neg_samples=100, seed=0)
    fplan = full.plan(full.sample_queries(30))
    assert len(np.unique(np.concatenate(fplan.candidates))) > 200  # each query drew its own 100


def test_full_mode_negative_cache_only_gets_harder() -> None:
    db, q, db_desc, q_desc = _city()
    miner = TripletMiner(db, q, mode="full", neg_samples=50, seed=2)
    qids = miner.sample_queries(30)
    hardest_prev = None
    for _ in range(4):
        plan = miner.plan(qids)
        for qid, cand in zip(qids, plan.candidates, strict=True):
            if int(qid) in miner.neg_cache:  # last refresh's negatives are candidates again
                assert set(miner.neg_cache[int(qid)].tolist()) <= set(cand.tolist())
        triplets = miner.mine(plan, q_desc[qids], db_desc)
        hardest = np.array(
            [np.linalg.norm(db_desc[t.negative_ids] - q_desc[t.query_id], axis=1).max() for t in triplets]
        )
        if hardest_prev is not None:
            assert np.all(hardest <= hardest_prev + 1e-12)  # the 10th-hardest never gets easier
        hardest_prev = hardest
        for t in triplets:
            assert miner.neg_cache[t.query_id].tolist() == t.negative_ids.tolist()
    partial = TripletMiner(db, q, mode="partial", neg_samples=50, seed=2)
    assert partial.neg_cache == {}


def test_random_mode_needs_no_negative_descriptors() -> None:
    db, q, db_desc, q_desc = _city()
    miner = TripletMiner(db, q, mode="random", seed=0)
    qids = miner.sample_queries(20)
    plan = miner.plan(qids)
    positives = np.unique(np.concatenate([miner.hard_positives[i] for i in qids]))
    assert plan.db_ids.tolist() == positives.tolist()
    triplets = miner.mine(plan, q_desc[qids], db_desc[plan.db_ids])  # aligned rows only
    negs = np.concatenate([t.negative_ids for t in triplets])
    assert not np.isin(negs, plan.db_ids).all()


@pytest.mark.parametrize("mode", ["partial", "full", "random"])
def test_deterministic_for_a_seed(mode: str) -> None:
    db, q, db_desc, q_desc = _city()

    def run(seed: int) -> list[tuple[int, int, list[int]]]:
        miner = TripletMiner(db, q, mode=mode, neg_samples=60, seed=seed)
        out = []
        for _ in range(2):
            qids = miner.sample_queries(25)
            out += [
                (t.query_id, t.positive_id, t.negative_ids.tolist())
                for t in miner.mine(qids, q_desc[qids], db_desc)
            ]
        return out

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_aligned_and_full_database_descriptors_agree() -> None:
    db, q, db_desc, q_desc = _city()
    a = TripletMiner(db, q, neg_samples=100, seed=4)
    b = TripletMiner(db, q, neg_samples=100, seed=4)
    plan_a = a.plan(a.sample_queries(20))
    plan_b = b.plan(b.sample_queries(20))
    ta = a.mine(plan_a, q_desc[plan_a.query_ids], db_desc)
    tb = b.mine(plan_b, q_desc[plan_b.query_ids], db_desc[plan_b.db_ids].astype(np.float32))
    assert [(t.query_id, t.positive_id, t.negative_ids.tolist()) for t in ta] == [
        (t.query_id, t.positive_id, t.negative_ids.tolist()) for t in tb
    ]


def test_state_dict_resumes_exactly() -> None:
    db, q, db_desc, q_desc = _city()
    a = TripletMiner(db, q, mode="full", neg_samples=60, seed=9)
    qids = a.sample_queries(20)
    a.mine(qids, q_desc[qids], db_desc)
    state = a.state_dict()
    b = TripletMiner(db, q, mode="full", neg_samples=60, seed=123)
    b.load_state_dict(state)
    qa, qb = a.sample_queries(20), b.sample_queries(20)
    assert qa.tolist() == qb.tolist()
    ta, tb = a.mine(qa, q_desc[qa], db_desc), b.mine(qb, q_desc[qb], db_desc)
    assert [t.negative_ids.tolist() for t in ta] == [t.negative_ids.tolist() for t in tb]


def test_bad_inputs_are_named() -> None:
    db, q, db_desc, q_desc = _city()
    with pytest.raises(ValueError, match="unknown mining mode 'hard'"):
        TripletMiner(db, q, mode="hard")
    with pytest.raises(ValueError, match="pos_radius <= neg_radius"):
        TripletMiner(db, q, pos_radius=30, neg_radius=25)
    with pytest.raises(ValueError, match=r"db_utm must be \(N, 2\)"):
        TripletMiner(db[:, :1], q)
    miner = TripletMiner(db, q, neg_samples=50)
    plan = miner.plan(miner.sample_queries(5))
    assert isinstance(plan, MiningPlan)
    with pytest.raises(ValueError, match=r"query_desc must be \(5, D\)"):
        miner.mine(plan, q_desc[:4], db_desc)
    with pytest.raises(ValueError, match="db_desc has 7 rows"):
        miner.mine(plan, q_desc[plan.query_ids], db_desc[:7])
    with pytest.raises(ValueError, match="out of range"):
        miner.plan([10_000])
    with pytest.raises(ValueError, match="drawn for mode 'partial', this miner mines 'random'"):
        TripletMiner(db, q, mode="random").mine(plan, q_desc[plan.query_ids], db_desc)
