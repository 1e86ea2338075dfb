"""Training steps, checkpoint, metrics and orientation estimates of the cross-view pipeline."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vgloc.crossview.evaluate import evaluate_crossview, orientation_errors, retrieval_metrics
from vgloc.crossview.network import CrossViewConfig, CrossViewNet, load_crossview
from vgloc.crossview.train import TrainSettings, orientation_loss, train_crossview

CFG = CrossViewConfig(
    "tiny+gem+fc16", orientation_head=True, ground_size=(24, 32), aerial_size=16, rotation_range=90
)


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


def test_orientation_loss_skips_unknown_headings() -> None:
    pred = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    rel = torch.tensor([0.0, math.nan])
    assert orientation_loss(pred, rel).item() == 0.0
    assert orientation_loss(pred, torch.tensor([math.pi, math.nan])).item() == pytest.approx(2.0)


@pytest.mark.parametrize("chunk", [0, 2])
def test_train_then_evaluate(xv_city: Path, tmp_path: Path, chunk: int) -> None:
    settings = TrainSettings(str(xv_city), loss="infonce", steps=2, batch_size=4, chunk_size=chunk)
    ckpt = train_crossview(settings, CFG, tmp_path)
    net, extra = load_crossview(ckpt)
    assert extra["settings"]["chunk_size"] == chunk and len(extra["loss_history"]) == 1
    torch.manual_seed(settings.seed)
    start = CrossViewNet(CFG)  # the same initialisation as the run's: the optimiser moved it
    moved = [
        not torch.equal(a, b)
        for a, b in zip(start.state_dict().values(), net.state_dict().values(), strict=True)
    ]
    assert net.config == CFG and any(moved)
    res = evaluate_crossview(ckpt, xv_city, samples=2, out_dir=tmp_path / "eval")
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert saved["recall@1"] == res["recall@1"] and 0 <= res["recall@1"] <= res["recall@10"] <= 100
    assert res["queries"] > 0 and sum(res["orientation_histogram_10deg"]) == res["queries"]
    assert res["orientation_method"] == "best rotation + head"


def test_train_checks_before_reading_data(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        train_crossview(TrainSettings(str(tmp_path), batch_size=1), CFG, tmp_path)
    with pytest.raises(KeyError, match="infonce"):
        train_crossview(TrainSettings(str(tmp_path), loss="infonse"), CFG, tmp_path)
