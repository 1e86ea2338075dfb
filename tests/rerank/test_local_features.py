"""The local-feature re-ranker: spec parsing, and re-ranking real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.local._helpers import warped_copy
from vgloc.local import CacheMismatchError, FeatureCache, RootSIFTExtractor
from vgloc.registry import RERANKERS, UnknownNameError
from vgloc.rerank import LocalFeatureReranker, Reranker, RerankerSpec, parse_spec
from vgloc.rerank.run import score_candidates


def test_parse_valid_specs() -> None:
    assert parse_spec("rootsift+mnn+ransac") == RerankerSpec("rootsift", "mnn", "ransac")
    assert parse_spec(" SIFT + ratio + fundamental ") == RerankerSpec("sift", "ratio", "fundamental")
    assert parse_spec("loftr+ransac") == RerankerSpec(None, "loftr", "ransac")
    assert str(parse_spec("orb+mnn+rss")) == "orb+mnn+rss"
    assert RERANKERS.get("local") is LocalFeatureReranker is Reranker


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


def test_a_cache_of_another_extractor_is_refused(tmp_path: Path) -> None:
    with FeatureCache(tmp_path / "feats.h5", RootSIFTExtractor(max_keypoints=100)) as cache:
        with pytest.raises(CacheMismatchError, match="re-ranker's extractor"):
            Reranker("rootsift+mnn+ransac", cache=cache)
        # the same configuration is accepted, and the caller's cache stays open
        with Reranker("rootsift+mnn+ransac", extractor_options={"max_keypoints": 100}, cache=cache) as rr:
            assert rr.cache is cache
        assert len(cache) == 0


def test_prefetch_extracts_the_next_query_in_the_background(
    wrong_top1: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    query, cands = wrong_top1
    opts = {"extractor_options": {"max_keypoints": 300, "resize": 320}}
    with Reranker("rootsift+mnn+ransac", **opts) as rr:  # type: ignore[arg-type]
        assert rr.extractor is not None
        ref = rr.extractor.extract_path(query)
        rr.prefetch_query(query)
        assert list(rr._prefetched) == [str(query.resolve())]
        got = rr.features(query, store=False)  # waits for the background extraction
        assert not rr._prefetched
        for field in ("keypoints", "descriptors", "scores"):
            np.testing.assert_array_equal(getattr(got, field), getattr(ref, field))
        rr.prefetch_query(query)  # in memory now: nothing to extract
        assert not rr._prefetched
        # An unreadable next query raises where its features are asked for, not in the thread.
        bad = tmp_path / "broken.jpg"
        bad.write_bytes(b"not a jpeg")
        rr.prefetch_query(bad)
        with pytest.raises(Exception, match=r"broken\.jpg"):
            rr.prepare_query(bad)
    assert rr._prefetcher is None  # close() stopped the thread
    # The loop prefetches query i+1 while scoring query i; results equal those without.
    preds = np.array([[0, 1], [1, 0], [0, 1]])
    queries = [query, cands[1], query]
    runs = [
        score_candidates(queries, cands, preds, None, "rootsift+mnn+ransac", k=2, prefetch=p, **opts)
        for p in (False, True)
    ]
    np.testing.assert_array_equal(runs[0].local, runs[1].local)
    np.testing.assert_array_equal(runs[0].inliers, runs[1].inliers)
    with Reranker("rootsift+mnn+ransac", cache_queries=True, cache=tmp_path / "q.h5", **opts) as rr:  # type: ignore[arg-type]
        rr.prefetch_query(query)  # query writes stay in the caller's thread: no prefetch
        assert not rr._prefetched and rr._prefetcher is None
