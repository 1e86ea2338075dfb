"""The resolver: spec strings -> registered re-rankers (parsed once), and up-front checks."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest

import vgloc.rerank
from vgloc.registry import RERANKERS, UnknownNameError
from vgloc.rerank import (
    BaseReranker,
    LocalFeatureReranker,
    PairScores,
    RerankerSpec,
    check_rerank_options,
    reranker_kind_for_spec,
    resolve_reranker,
)


def test_a_local_spec_resolves_to_the_registered_local_reranker() -> None:
    assert reranker_kind_for_spec("rootsift+mnn+ransac") is RERANKERS.get("local") is LocalFeatureReranker
    assert RERANKERS.metadata("local")["fallback"] is True
    with resolve_reranker("rootsift+mnn+ransac") as rr:
        assert isinstance(rr, LocalFeatureReranker) and rr.kind == "local"
        assert rr.spec == RerankerSpec("rootsift", "mnn", "ransac") and str(rr.spec) == "rootsift+mnn+ransac"
        assert rr.extractor is not None and rr.extractor.name == "rootsift"
    with resolve_reranker(" SIFT + ratio + count ", fusion="linear", fusion_weight=2.0) as rr:
        assert str(rr.spec) == "sift+ratio+count" and rr.fusion == "linear" and rr.fusion_weight == 2.0


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        (
            "rootsfit+mnn+ransac",
            r"unknown local feature extractor 'rootsfit'.*did you mean: rootsift.*known: .*orb",
        ),
        ("sift+mnm+ransac", r"unknown matcher 'mnm'.*did you mean: mnn"),
        ("sift+mnn+ransak", r"unknown verifier 'ransak'.*did you mean: ransac"),
    ],
)
def test_an_unknown_part_gives_the_close_match_error(spec: str, pattern: str) -> None:
    with pytest.raises(UnknownNameError, match=pattern):
        resolve_reranker(spec)
    with pytest.raises(UnknownNameError, match=pattern):
        check_rerank_options(spec, 100, None, None, None)


def test_a_built_reranker_is_returned_unchanged() -> None:
    with LocalFeatureReranker("orb+mnn+count") as rr:
        assert resolve_reranker(rr) is rr
        with pytest.raises(ValueError, match="pass the cache and options to the Reranker itself"):
            resolve_reranker(rr, cache="features.h5")
        with pytest.raises(ValueError, match="pass the cache and options"):
            resolve_reranker(rr, fusion="zscore")
    with pytest.raises(TypeError, match="spec string or a BaseReranker, got int"):
        resolve_reranker(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty re-ranker spec"):
        resolve_reranker("  ")


class ConstantReranker(BaseReranker):
    """A made-up learned re-ranker: claims the spec ``constant<S>`` and scores every pair S."""

    kind = "constant"

    def __init__(self, value: float) -> None:
        self.spec = f"constant{value:g}"
        self.value = value

    @classmethod
    def claims(cls, spec: str) -> bool:
        return spec.startswith("constant")

    @classmethod
    def check_spec(cls, spec: str) -> None:
        float(spec[len("constant") :])

    @classmethod
    def from_spec(cls, spec: str, cache: Any = None, **options: Any) -> ConstantReranker:
        return cls(float(spec[len("constant") :]), **options)

    def score(self, query: object, candidates: Sequence[object]) -> PairScores:
        n = len(candidates)
        return PairScores(np.full(n, self.value), np.full(n, -1, np.int64))


@pytest.fixture
def constant_kind() -> Iterator[None]:
    RERANKERS.register("constant", ConstantReranker, description="test only")
    try:
        yield
    finally:
        RERANKERS.unregister("constant")


@pytest.mark.usefixtures("constant_kind")
def test_a_new_kind_registers_and_claims_its_specs() -> None:
    rr = resolve_reranker("constant2.5")
    assert isinstance(rr, ConstantReranker) and rr.value == 2.5
    check_rerank_options("constant1", 10, None, None, None)
    with pytest.raises(ValueError, match="could not convert"):
        check_rerank_options("constantX", 10, None, None, None)
    # Specs it does not claim still go to the local re-ranker.
    assert reranker_kind_for_spec("orb+mnn+ransac") is LocalFeatureReranker
    order, scores, inliers = rr.rerank("q.jpg", ["a.jpg", "b.jpg"])
    assert order.tolist() == [0, 1] and scores.tolist() == [2.5, 2.5] and inliers.tolist() == [-1, -1]


def test_check_rerank_options_applies_the_evaluation_rules() -> None:
    check_rerank_options(None, 100, None, None, None)
    check_rerank_options("rootsift+mnn+ransac", 5, "f.h5", "zscore", [1, 5], 0.25)
    check_rerank_options("rootsift+lightglue+ransac", 5, None, None, None)  # checks, loads no weights
    with LocalFeatureReranker("orb+mnn+count") as rr:
        check_rerank_options(rr, 5, None, "linear", None, 3.0)
    cases: list[tuple[tuple[Any, ...], str]] = [
        ((None, 100, "f.h5", "zscore", None), "rerank_cache, rerank_fusion given without a re-ranker"),
        ((None, 100, None, None, [1, 5]), "rerank_sweep given without a re-ranker"),
        (("rootsift+mnn+ransac", 0, None, None, None), "rerank_k must be a positive integer, got 0"),
        (("rootsift+mnn+ransac", True, None, None, None), "rerank_k must be a positive integer, got True"),
        (("rootsift+mnn+ransac", 10, None, None, [0, 5]), "sweep K values must be positive integers, got 0"),
        (("rootsift+mnn+ransac", 10, None, "mean", None), "rerank_fusion must be None, 'zscore' or 'linear'"),
        (("rootsift+mnn+ransac", 10, None, "zscore", None, 1.5), r"zscore fusion weight must be in \[0, 1\]"),
        (("sift+ransac", 10, None, None, None), "has no matcher"),
    ]
    for args, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            check_rerank_options(*args)


def test_the_names_existing_code_imports_are_still_there() -> None:
    # What api.py, cli/, evaluation/ and the benchmarks import from vgloc.rerank today.
    pipeline = importlib.import_module("vgloc.rerank.pipeline")
    for name in (
        "score_candidates",
        "rerank_sweep",
        "write_sweep",
        "check_sweep_ks",
        "SweepPoint",
        "SWEEP_STEM",
    ):
        assert hasattr(pipeline, name), name
    assert importlib.import_module("vgloc.rerank.cache").FeatureCache is vgloc.rerank.FeatureCache
    old_all = {
        "EXTRACTORS", "MATCHERS", "VERIFIERS", "AKAZEExtractor", "ALIKEDExtractor", "CacheCorruptError",
        "CacheMismatchError", "ClassicalVLAD", "Correspondences", "CountVerifier", "DISKExtractor",
        "DenseMatcher", "FeatureCache", "FundamentalVerifier", "HomographyVerifier", "LightGlueMatcher",
        "LoFTRMatcher", "LocalFeatureExtractor", "LocalFeatures", "MNNMatcher", "MatchResult",
        "ORBExtractor", "RapidSpatialVerifier", "RatioMatcher", "RerankResult", "Reranker", "RerankerSpec",
        "RootSIFTExtractor", "SIFTExtractor", "SparseMatcher", "SuperPointExtractor", "Verification",
        "Verifier", "WeightsUnavailableError", "create_extractor", "create_matcher", "create_verifier",
        "descriptor_distances", "draw_matches", "fit_fundamental", "fit_homography", "fuse_scores",
        "image_fingerprint", "mutual_nearest_neighbours", "parse_spec", "rapid_spatial_score", "ratio_test",
        "rerank_predictions", "root_sift", "save_match_figure", "visualize_pair", "vlad",
    }  # fmt: skip
    assert old_all <= set(vgloc.rerank.__all__)
    assert all(hasattr(vgloc.rerank, n) for n in vgloc.rerank.__all__)
