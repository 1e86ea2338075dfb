"""Batched matching (vgloc.local.matching.batched) gives exactly the per-pair matcher's matches."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from tests.local._helpers import textured_image
from vgloc.local import LocalFeatures, create_extractor
from vgloc.local.matching import MNNMatcher, RatioMatcher, SparseMatcher
from vgloc.local.matching.batched import can_match_many, chunk_ranges, match_many

MATCHERS = [
    MNNMatcher(),
    MNNMatcher(max_distance=0.6),
    RatioMatcher(),
    RatioMatcher(ratio=0.9, mutual=False),
]


def _assert_same(
    matcher: SparseMatcher, query: LocalFeatures, cands: list[LocalFeatures], **kw: object
) -> None:
    got = match_many(matcher, query, cands, **kw)  # type: ignore[arg-type]
    assert len(got) == len(cands)
    for res, cand in zip(got, cands, strict=True):
        ref = matcher.match(query, cand)
        np.testing.assert_array_equal(res.matches, ref.matches)
        np.testing.assert_array_equal(res.scores, ref.scores)
        assert res.matches.dtype == np.int64 and res.scores.dtype == np.float32


@pytest.fixture(scope="module")
def photo_features(lund_dir: Path) -> list[LocalFeatures]:
    ext = create_extractor("rootsift", max_keypoints=400, resize=320)
    return [ext.extract_path(lund_dir / f"{i:02d}.jpg") for i in (4, 5, 6, 7, 20, 21)]


@pytest.fixture(scope="module")
def synthetic_features() -> list[LocalFeatures]:
    ext = create_extractor("rootsift", max_keypoints=300)
    return [ext(textured_image(seed=s)) for s in range(4)]


@pytest.mark.parametrize("matcher", MATCHERS, ids=repr)
def test_same_matches_as_per_pair_on_photos(
    photo_features: list[LocalFeatures], matcher: SparseMatcher
) -> None:
    query, cands = photo_features[0], photo_features[1:]
    assert all(len(f) > 100 for f in photo_features)
    _assert_same(matcher, query, cands)
    # Small chunks (several GEMMs) and the torch path on CPU give the same matches too.
    _assert_same(matcher, query, cands, max_elements=1)
    _assert_same(matcher, query, cands, device="cpu")


@pytest.mark.parametrize("matcher", MATCHERS, ids=repr)
def test_same_matches_on_synthetic_images_with_ties(
    synthetic_features: list[LocalFeatures], matcher: SparseMatcher
) -> None:
    query = synthetic_features[0]
    # Exact copies of the query (distances at or below 0 from rounding, tied neighbours),
    # a candidate with duplicated keypoints, a one-keypoint and an empty candidate.
    dup = LocalFeatures(
        *(
            np.concatenate([getattr(query, f)[:50]] * 2)
            for f in ("keypoints", "descriptors", "scores", "scales", "oris")
        ),
        image_size=query.image_size,
        working_size=query.working_size,
    )
    one = LocalFeatures(*(getattr(query, f)[3:4] for f in ("keypoints", "descriptors", "scores", "scales", "oris")),
                        image_size=query.image_size, working_size=query.working_size)  # fmt: skip
    none = LocalFeatures(*(getattr(query, f)[:0] for f in ("keypoints", "descriptors", "scores", "scales", "oris")),
                         image_size=query.image_size, working_size=query.working_size)  # fmt: skip
    cands = [query, dup, *synthetic_features[1:], one, none, query]
    # Duplicated keypoints tie: the mutual check keeps the first copy, the ratio test none.
    assert (len(matcher.match(query, dup)) > 0) == isinstance(matcher, MNNMatcher)
    for kw in ({}, {"max_elements": 1}, {"device": "cpu"}):
        _assert_same(matcher, query, cands, **kw)


def test_binary_descriptors_and_refusals(synthetic_features: list[LocalFeatures]) -> None:
    ext = create_extractor("orb", max_keypoints=200)
    orb = [ext(textured_image(seed=s)) for s in range(3)]
    _assert_same(MNNMatcher(), orb[0], orb[1:])
    _assert_same(RatioMatcher(), orb[0], orb[1:], device="cpu")
    with pytest.raises(ValueError, match="binary and float"):
        match_many(MNNMatcher(), orb[0], synthetic_features[:1])
    single = LocalFeatures(
        *(getattr(orb[0], f)[:1] for f in ("keypoints", "descriptors", "scores", "scales", "oris")),
        image_size=orb[0].image_size,
        working_size=orb[0].working_size,
    )
    # One query keypoint (a GEMV in the per-pair path) is left to the per-pair matcher.
    assert not can_match_many(RatioMatcher(), single) and not can_match_many(MNNMatcher(), single)
    assert can_match_many(MNNMatcher(), orb[0]) and not can_match_many(object(), orb[0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot reproduce"):
        match_many(MNNMatcher(), single, orb[1:])


def test_chunk_ranges_cover_all_candidates_within_the_cap(synthetic_features: list[LocalFeatures]) -> None:
    query, cands = synthetic_features[0], synthetic_features * 5
    cap = 3 * len(query) * max(len(c) for c in cands)
    ranges = chunk_ranges(query, cands, cap)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(cands)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert all(b - a <= 3 for a, b in ranges) and len(ranges) >= len(cands) // 3
    assert chunk_ranges(query, cands, 1) == [(i, i + 1) for i in range(len(cands))]


def test_candidate_norms_are_cached_while_the_features_live(synthetic_features: list[LocalFeatures]) -> None:
    import dataclasses
    import gc

    from vgloc.local.matching import batched

    feats = dataclasses.replace(synthetic_features[0])  # a fresh object, not shared with other tests
    b, norms = batched._float_and_sqnorm(feats)
    np.testing.assert_array_equal(norms, (b * b).sum(1))  # numpy's summation, as the per-pair path
    assert batched._float_and_sqnorm(feats)[1] is norms  # computed once
    key = id(feats)
    del feats, b
    gc.collect()
    assert key not in batched._SQNORMS  # dropped with the features
