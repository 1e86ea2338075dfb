"""Cross-view metrics: recall by hand, rotation fusion, orientation estimates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vgloc.crossview.evaluate import orientation_errors, retrieval_metrics
from vgloc.crossview.network import CrossViewConfig, CrossViewNet


def test_retrieval_metrics_by_hand() -> None:
    # 3 queries, 4 tiles (K=1); query 0 ranks its tile 1st, query 1 ranks it 2nd, query 2 last.
    tiles = torch.eye(4)[:, None, :]
    ground = F.normalize(torch.tensor([[1.0, 0, 0, 0], [0.5, 0.4, 0, 0], [0.1, 0.2, 0.3, 0]]), dim=1)
    res = retrieval_metrics(ground, tiles, np.array([0, 1, 3]))
    assert res["recall@1"] == pytest.approx(100 / 3, abs=0.01)
    assert res["recall@5"] == 100.0
    assert res["top1%_k"] == 1 and res["recall@top1%"] == res["recall@1"]
    assert res["median_rank"] == 2.0


def test_fusion_best_vs_mean() -> None:
    # Tile 0 holds the query's direction at one rotation only; tile 1 is close at both.
    tiles = torch.tensor([[[1.0, 0.0], [-1.0, 0.0]], [[0.9, 0.436], [0.9, 0.436]]])
    ground = torch.tensor([[1.0, 0.0]])
    assert retrieval_metrics(ground, tiles, np.array([0]), "best")["recall@1"] == 100.0
    assert retrieval_metrics(ground, tiles, np.array([0]), "mean")["recall@1"] == 0.0
    with pytest.raises(ValueError, match="fusion"):
        retrieval_metrics(ground, tiles, np.array([0]), "max")


def test_orientation_errors_from_best_rotation() -> None:
    net = CrossViewNet(CrossViewConfig("tiny+gem+fc16"))  # no head: the best rotation's angle
    angles = [0.0, 90.0, 180.0, 270.0]
    tiles = torch.eye(4)[None]  # one tile, rotation k -> basis vector k
    ground = torch.eye(4)[[1, 3]]  # best rotations 90 and 270
    err = orientation_errors(net, ground, tiles, angles, np.array([0, 0]), np.array([100.0, 10.0]))
    np.testing.assert_allclose(err, [10.0, 100.0])
    none = orientation_errors(net, ground, tiles, angles, np.array([0, 0]), np.array([np.nan, np.nan]))
    assert none.shape == (0,)


def test_metrics_from_scores_and_pair_orientation() -> None:
    from vgloc.crossview.evaluate import _pair_orientation_errors, metrics_from_scores

    # 2 queries x 3 tiles x 2 rotations of logits: query 0's tile 0 wins at rotation 1,
    # query 1's tile 2 ranks second behind tile 0.
    scores = torch.tensor([[[0.0, 5.0], [1.0, 1.0], [0.0, 0.0]], [[3.0, 0.0], [0.0, 0.0], [2.0, -1.0]]])
    res = metrics_from_scores(scores.amax(-1), np.array([0, 2]))
    assert (
        res["recall@1"] == 50.0 and res["recall@5"] == 100.0 and res["median_rank"] == 1.0
    )  # torch: the lower median
    err = _pair_orientation_errors(scores, [0.0, 180.0], np.array([0, 2]), np.array([170.0, np.nan]))
    np.testing.assert_allclose(err, [10.0])
