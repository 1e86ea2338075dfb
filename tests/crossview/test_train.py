"""Training steps, checkpoint contents and the evaluation that reads them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from vgloc.crossview.evaluate import evaluate_crossview
from vgloc.crossview.network import CrossViewConfig, CrossViewNet, load_crossview
from vgloc.crossview.train import TrainSettings, orientation_loss, train_crossview

CFG = CrossViewConfig(
    "tiny+gem+fc16", orientation_head=True, ground_size=(24, 32), aerial_size=16, rotation_range=90
)


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
