"""Aerial index and photo location: answers, checkpoint check, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vgloc.crossview.data import load_pairs
from vgloc.crossview.locate import build_aerial_index, locate_photos
from vgloc.crossview.network import CrossViewConfig, CrossViewNet, save_crossview


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    cfg = CrossViewConfig("tiny+gem+fc16", orientation_head=True, ground_size=(24, 32), aerial_size=16)
    return save_crossview(CrossViewNet(cfg), tmp_path / "xv.pt")


def test_index_then_locate(xv_city: Path, checkpoint: Path, tmp_path: Path) -> None:
    index = build_aerial_index(checkpoint, xv_city, tmp_path / "idx", split="test", samples=4)
    pairs = load_pairs(xv_city, "test", "queries")
    photos = [str(p) for p in pairs.ground[:3]]
    out = locate_photos(index.parent, photos)
    assert [o["image"] for o in out] == photos
    centres = {tuple(ll) for ll in pairs.tile_latlon.tolist()}
    tiles = {str(p) for p in pairs.tiles}
    for o in out:
        assert (o["lat"], o["lon"]) in centres and o["tile"] in tiles
        assert 0 <= o["heading_deg"] < 360 and 0 < o["confidence"] <= 1
    # The confidence is a probability over tiles: at least 1 / T for the chosen one.
    assert min(o["confidence"] for o in out) >= 1 / len(tiles) - 1e-6


def test_changed_checkpoint_is_refused(xv_city: Path, checkpoint: Path, tmp_path: Path) -> None:
    index = build_aerial_index(checkpoint, xv_city, tmp_path / "idx", samples=1)
    photo = str(load_pairs(xv_city, "test", "queries").ground[0])
    torch.manual_seed(1)
    save_crossview(CrossViewNet(CrossViewConfig("tiny+gem+fc16", orientation_head=True)), checkpoint)
    with pytest.raises(ValueError, match="rebuild the index"):
        locate_photos(index, [photo])


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="crossview index"):
        locate_photos(tmp_path, ["x.jpg"])
    (tmp_path / "aerial_index.pt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no photo"):
        locate_photos(tmp_path, [str(tmp_path / "missing.jpg")])
