"""Spec parsing, re-ranking on real photos, and the batch re-ordering contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.rerank._helpers import warped_copy
from vgloc.registry import RERANKERS, UnknownNameError
from vgloc.rerank import (
    FeatureCache,
    Reranker,
    RerankerSpec,
    Verification,
    parse_spec,
    rerank_predictions,
)


def test_parse_valid_specs() -> None:
    assert parse_spec("rootsift+mnn+ransac") == RerankerSpec("rootsift", "mnn", "ransac")
    assert parse_spec(" SIFT + ratio + fundamental ") == RerankerSpec("sift", "ratio", "fundamental")
    assert parse_spec("loftr+ransac") == RerankerSpec(None, "loftr", "ransac")
    assert str(parse_spec("orb+mnn+rss")) == "orb+mnn+rss"
    assert RERANKERS.get("local") is Reranker


@pytest.mark.parametrize(
    ("spec", "error", "pattern"),
    [
        ("rootsfit+mnn+ransac", UnknownNameError, r"did you mean: rootsift"),
        ("sift+mnm+ransac", UnknownNameError, r"unknown matcher 'mnm'.*did you mean: mnn"),
        ("sift+mnn+ransak", UnknownNameError, r"did you mean: ransac"),
        ("mnn+sift+ransac", ValueError, r"'mnn' is a matcher, not an extractor"),
        ("sift+ransac", ValueError, r"has no matcher: write e\.g\. 'sift\+mnn\+ransac'"),
        ("mnn+ransac", ValueError, r"needs an extractor"),
        ("sift+loftr+ransac", ValueError, r"detector-free"),
        ("sift+mnn+ransac+zscore", ValueError, r"4 parts"),
        ("sift++ransac", ValueError, r"empty part"),
        ("", ValueError, r"empty re-ranker spec"),
        ("rootsift+lightglue+ransac", None, None),  # parses; needs weights to build
    ],
)
def test_bad_specs_explain_themselves(spec: str, error: type[Exception] | None, pattern: str | None) -> None:
    if error is None:
        parse_spec(spec)
        return
    with pytest.raises(error, match=pattern):
        parse_spec(spec)


def test_lightglue_needs_features_it_has_a_model_for() -> None:
    with pytest.raises(ValueError, match="LightGlue has no model for 'orb'"):
        Reranker("orb+lightglue+ransac")


@pytest.fixture(scope="module")
def wrong_top1(lund_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """Query 05.jpg; candidates: 25.jpg (145 m away, ranked first) and a warped crop of 05."""
    tmp = tmp_path_factory.mktemp("rerank")
    copy = warped_copy(lund_dir / "05.jpg", tmp / "05_warped.jpg")
    return lund_dir / "05.jpg", [lund_dir / "25.jpg", copy]


@pytest.mark.parametrize("spec", ["rootsift+mnn+ransac", "sift+ratio+fundamental", "orb+mnn+ransac"])
def test_rerank_corrects_a_wrong_top1(wrong_top1: tuple[Path, list[Path]], spec: str) -> None:
    query, cands = wrong_top1
    order, scores, inliers = Reranker(spec, extractor_options={"resize": 480}).rerank(
        query, cands, np.array([0.9, 0.8])
    )
    assert order.tolist() == [1, 0]
    assert inliers[1] > 3 * max(inliers[0], 5)
    assert scores[1] > scores[0]


def test_rerank_with_cache_and_fusion(wrong_top1: tuple[Path, list[Path]], tmp_path: Path) -> None:
    query, cands = wrong_top1
    h5 = tmp_path / "f.h5"
    with Reranker("rootsift+mnn+rss", cache=h5, fusion="zscore", fusion_weight=0.25) as rr:
        res = rr.rerank(query, cands, [0.9, 0.8])
        assert res.order.tolist() == [1, 0]
        # z-scores of two values are ±1: 0.75 · (±1) + 0.25 · (∓1) = ±0.5.
        np.testing.assert_allclose(res.scores, [-0.5, 0.5])
        with pytest.raises(ValueError, match="needs the global similarities"):
            rr.rerank(query, cands)
    with FeatureCache(h5, rr.extractor) as cache:  # type: ignore[arg-type]
        # The candidates are cached; the query is not (cache_queries=False by default).
        assert cache.paths() == sorted(str(c) for c in cands)


def stub_reranker(monkeypatch: pytest.MonkeyPatch, score_of: dict[str, float]) -> Reranker:
    """A Reranker whose verification score is read from a table keyed by candidate name."""
    rr = Reranker("sift+mnn+count")

    def verify_pair(query: object, cand: object) -> tuple[None, Verification]:
        s = score_of[Path(str(cand)).name]
        return None, Verification(s, int(s), np.zeros(0, bool))

    monkeypatch.setattr(rr, "verify_pair", verify_pair)
    return rr


def test_rerank_predictions_reorders_top_k_keeps_tail_and_ties(monkeypatch: pytest.MonkeyPatch) -> None:
    db = [f"db{i}.jpg" for i in range(5)]
    rr = stub_reranker(
        monkeypatch, {"db0.jpg": 1.0, "db1.jpg": 7.0, "db2.jpg": 5.0, "db3.jpg": 5.0, "db4.jpg": 9.0}
    )
    preds = np.array([[3, 1, 2, 4, 0], [0, 4, -1, -1, -1]])
    new, scores, ms = rerank_predictions(["q0.jpg", "q1.jpg"], db, preds, spec=rr, k=3)
    # Row 0, top 3 = (3: 5, 1: 7, 2: 5) -> 1 first, then the 5-5 tie in original order
    # (3 before 2); the tail (4, 0) is untouched although db4 would score 9.
    np.testing.assert_array_equal(new[0], [1, 3, 2, 4, 0])
    np.testing.assert_array_equal(scores[0, :3], [7, 5, 5])
    assert np.isnan(scores[0, 3:]).all()
    # Row 1: two real candidates (0: 1, 4: 9) re-ordered, the empty slots stay last.
    np.testing.assert_array_equal(new[1], [4, 0, -1, -1, -1])
    np.testing.assert_array_equal(scores[1, :2], [9, 1])
    assert np.isnan(scores[1, 2:]).all()
    assert ms >= 0.0
    np.testing.assert_array_equal(preds[0], [3, 1, 2, 4, 0])  # input untouched


def test_rerank_predictions_checks_its_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    rr = stub_reranker(monkeypatch, {})
    with pytest.raises(ValueError, match="2 query paths but 1 prediction rows"):
        rerank_predictions(["a", "b"], ["x"], np.array([[0]]), spec=rr)
    with pytest.raises(ValueError, match="index database image 3"):
        rerank_predictions(["a"], ["x"], np.array([[3]]), spec=rr)
    with pytest.raises(ValueError, match="differ in shape"):
        rerank_predictions(["a"], ["x"], np.array([[0]]), np.zeros((1, 2)), spec=rr)
    with pytest.raises(ValueError, match="integer"):
        rerank_predictions(["a"], ["x"], np.array([[0.0]]), spec=rr)
