"""Cross-view pairs: synthetic city, CSV layout, distinct-tile batches, tile rotation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vgloc.crossview.data import (
    PairDataset,
    TileDataset,
    distinct_tile_batches,
    load_csv_pairs,
    load_pairs,
    rotate_tile,
)
from vgloc.data.vgnames import parse_vg_name


def test_synthetic_pairs_use_the_nearest_tile(xv_city: Path) -> None:
    pairs = load_pairs(xv_city, "train", "database")
    assert len(pairs.tiles) > 2 and len(pairs) > len(pairs.tiles)
    assert np.isfinite(pairs.heading).all()
    g = np.array([[parse_vg_name(p).utm_east, parse_vg_name(p).utm_north] for p in pairs.ground])
    a = np.array([[parse_vg_name(p).utm_east, parse_vg_name(p).utm_north] for p in pairs.tiles])
    d = np.linalg.norm(g[:, None] - a[None], axis=2)
    np.testing.assert_allclose(d[np.arange(len(g)), pairs.tile_of], d.min(1))
    assert all(p.parent.name == "aerial" for p in pairs.tiles)


def _write_png(path: Path) -> None:
    Image.new("RGB", (16, 16), (10, 20, 30)).save(path)


def test_csv_pairs(tmp_path: Path) -> None:
    for name in ("g0.png", "g1.png", "g2.png", "t0.png", "t1.png"):
        _write_png(tmp_path / name)
    (tmp_path / "train.csv").write_text(
        "ground,aerial,lat,lon,heading,aerial_lat,aerial_lon\n"
        "g0.png,t0.png,1.0,2.0,90,1.5,2.5\n"
        "g1.png,t1.png,3.0,4.0,,,\n"
        "g2.png,t0.png,1.1,2.1,10,1.5,2.5\n"
    )
    pairs = load_pairs(tmp_path, "train")
    assert [p.name for p in pairs.tiles] == ["t0.png", "t1.png"]
    assert pairs.tile_of.tolist() == [0, 1, 0]
    assert pairs.heading[0] == 90 and math.isnan(pairs.heading[1])
    np.testing.assert_allclose(pairs.tile_latlon, [[1.5, 2.5], [3.0, 4.0]])


def test_csv_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("ground,lat,lon\na.png,1,2\n")
    with pytest.raises(ValueError, match="aerial"):
        load_csv_pairs(bad)
    bad.write_text("ground,aerial,lat,lon\na.png,b.png,north,2\n")
    with pytest.raises(ValueError, match="not a number"):
        load_csv_pairs(bad)
    bad.write_text("ground,aerial,lat,lon\na.png,b.png,1,2\n")
    with pytest.raises(FileNotFoundError, match=r"a\.png"):
        load_csv_pairs(bad)
    with pytest.raises(FileNotFoundError, match="vgloc synth"):
        load_pairs(tmp_path, "test")


def test_distinct_tile_batches() -> None:
    tile_of = np.array([0, 0, 1, 2, 2, 2, 3, 4])
    gen = distinct_tile_batches(tile_of, 2, seed=0)
    seen = set()
    for _ in range(10):
        batch = next(gen)
        assert len(batch) == 2 and len({int(tile_of[i]) for i in batch}) == 2
        seen.update(batch)
    assert {int(tile_of[i]) for i in seen} == {0, 1, 2, 3, 4}
    with pytest.raises(ValueError, match="batch_size"):
        next(distinct_tile_batches(tile_of, 6, seed=0))


def test_rotate_tile_turns_content_counter_clockwise() -> None:
    tile = torch.zeros(1, 40, 40)
    tile[0, 12:16, 18:22] = 1.0  # a mark north of the centre (image up)
    out = rotate_tile(tile, 90.0, 28)
    assert out.shape == (1, 28, 28)
    ys, xs = torch.nonzero(out[0] > 0.3, as_tuple=True)
    # Counter-clockwise by 90: north moves to the left of the centre.
    assert xs.float().mean() < 10 and abs(ys.float().mean() - 13.5) < 2


def test_pair_dataset_relative_heading(xv_city: Path) -> None:
    pairs = load_pairs(xv_city, "train", "database")
    i = int(np.flatnonzero(pairs.heading % 360 == 135)[0])  # a street view looking south-east
    fixed = PairDataset(pairs, (24, 32), 16, rotation_range=0, seed=0)
    g, a, rel = fixed[i]
    assert g.shape == (3, 24, 32) and a.shape == (3, 16, 16)
    assert rel.item() == 0.0  # aligned: the view's heading points up in the tile
    tile = fixed.tile_tf(Image.open(pairs.tiles[int(pairs.tile_of[i])]).convert("RGB"))
    torch.testing.assert_close(a, rotate_tile(tile, 135.0, 16))
    free = PairDataset(pairs, (24, 32), 16, rotation_range=180, seed=0)
    rels = [free[i + k * len(pairs)][2].item() for k in range(6)]
    assert len(set(rels)) == 6 and all(abs(r) <= math.pi / 2 for r in rels)  # -delta, |delta| <= 90
    with pytest.raises(ValueError, match="rotation_range"):
        PairDataset(pairs, (24, 32), 16, rotation_range=400, seed=0)


def test_tile_dataset_angles(xv_city: Path) -> None:
    ds = TileDataset(load_pairs(xv_city, "test").tiles, 16, samples=4)
    assert ds.angles == [0.0, 90.0, 180.0, 270.0]
    assert ds[0].shape == (4, 3, 16, 16)
