"""The local-feature re-ranker's fast path (vgloc.rerank.fast) against the per-pair path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.local._helpers import textured_image, warped_copy, write_rgb
from vgloc.rerank import LocalFeatureReranker
from vgloc.rerank.fast import FastScorer
from vgloc.rerank.fusion import order_by_scores
from vgloc.rerank.run import score_candidates

OPTS = {"extractor_options": {"max_keypoints": 400, "resize": 320}}


@pytest.fixture(scope="module")
def photos(lund_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """A query photo and 8 candidates: a warped copy of it, its neighbours, far frames, a texture."""
    tmp = tmp_path_factory.mktemp("fast")
    copy = warped_copy(lund_dir / "06.jpg", tmp / "06_warped.jpg")
    noise = write_rgb(tmp / "texture.png", textured_image(320, 240, seed=3))
    cands = [lund_dir / f"{i:02d}.jpg" for i in (25, 5, 7, 12, 18, 29)] + [copy, noise]
    return lund_dir / "06.jpg", cands


@pytest.mark.parametrize("spec", ["rootsift+mnn+ransac", "sift+ratio+fundamental", "rootsift+mnn+rss"])
def test_fast_path_scores_like_the_per_pair_path(photos: tuple[Path, list[Path]], spec: str) -> None:
    query, cands = photos
    with (
        LocalFeatureReranker(spec, batched=False, **OPTS) as ref,  # type: ignore[arg-type]
        LocalFeatureReranker(spec, workers=2, **OPTS) as fast,  # type: ignore[arg-type]
    ):
        slow = ref.score(query, cands)
        quick = fast.score(query, cands)
        assert slow.ms is not None and quick.ms is None  # the fast path times the pairs jointly
        np.testing.assert_array_equal(quick.scores, slow.scores)
        np.testing.assert_array_equal(quick.inliers, slow.inliers)
        np.testing.assert_array_equal(order_by_scores(quick.scores)[0], order_by_scores(slow.scores)[0])
        assert fast.fast.verified == len(cands) and fast.fast.skipped == 0
        assert fast.fast._pool is not None  # the chunks ran on the thread pool
    assert fast.fast._pool is None  # close() stopped it
    if spec.endswith("ransac"):
        # The warped copy of the query wins, with many inliers.
        assert int(np.argmax(quick.scores)) == 6 and quick.inliers[6] > 3 * np.sort(quick.inliers)[-2]


def test_early_exit_keeps_the_top_n(photos: tuple[Path, list[Path]]) -> None:
    query, cands = photos
    with (
        LocalFeatureReranker("rootsift+mnn+ransac", workers=2, **OPTS) as full,  # type: ignore[arg-type]
        LocalFeatureReranker("rootsift+mnn+ransac", workers=2, exact_top=1, **OPTS) as top1,  # type: ignore[arg-type]
        LocalFeatureReranker("rootsift+mnn+ransac", workers=1, exact_top=3, **OPTS) as top3,  # type: ignore[arg-type]
    ):
        ref = full.score(query, cands)
        order = order_by_scores(ref.scores)[0]
        for rr, n in ((top1, 1), (top3, 3)):
            got = rr.score(query, cands)
            skipped = np.isnan(got.scores)
            assert rr.fast.skipped == skipped.sum() and rr.fast.verified == len(cands) - skipped.sum()
            # The warped copy's inliers exceed the other candidates' tentative matches, so
            # for the top 1 the rest need no RANSAC; the third best (~40 inliers) bounds
            # no other candidate, so for the top 3 everything is verified.
            assert skipped.sum() == (len(cands) - 2 if n == 1 else 0)
            assert (got.inliers[skipped] == -1).all()
            np.testing.assert_array_equal(got.scores[~skipped], ref.scores[~skipped])
            new = order_by_scores(got.scores)[0]
            np.testing.assert_array_equal(new[:n], order[:n])
            # Skipped candidates come last, in retrieval order.
            np.testing.assert_array_equal(new[len(cands) - skipped.sum() :], np.flatnonzero(skipped))


def test_early_exit_refuses_fusion_and_bad_options(photos: tuple[Path, list[Path]]) -> None:
    query, cands = photos
    with pytest.raises(ValueError, match="exact_top"):
        LocalFeatureReranker("rootsift+mnn+ransac", exact_top=1, fusion="zscore")
    with pytest.raises(ValueError, match="batched"):
        LocalFeatureReranker("rootsift+mnn+ransac", exact_top=1, batched=False)
    for bad in ({"workers": 0}, {"exact_top": 0}, {"exact_top": 1.5}):
        with pytest.raises(ValueError, match="positive integer"):
            FastScorer(**bad)  # type: ignore[arg-type]
    preds = np.array([[0, 1]])
    with pytest.raises(ValueError, match="early exit"):
        score_candidates([query], cands[:2], preds, np.array([[0.9, 0.8]]), "rootsift+mnn+ransac", k=2,
                         fusion="zscore", exact_top=1)  # fmt: skip


def test_loop_gives_the_same_order_fast_or_per_pair(photos: tuple[Path, list[Path]]) -> None:
    query, cands = photos
    preds = np.arange(len(cands))[None].repeat(2, 0)
    preds[1] = preds[1][::-1]
    runs = [
        score_candidates(
            [query, query], cands, preds, None, "rootsift+mnn+ransac", k=len(cands), batched=b, **OPTS
        )
        for b in (False, True)
    ]
    np.testing.assert_array_equal(runs[0].local, runs[1].local)
    np.testing.assert_array_equal(runs[0].rerank().predictions, runs[1].rerank().predictions)
    assert np.isfinite(runs[1].pair_ms).all()
