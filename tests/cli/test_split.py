"""``vgloc split``: geographic train/val/test lists from a GeoCLIP-style CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vgloc.cli import main
from vgloc.data import load_image_set
from vgloc.geo import haversine_m

# Five places, 8 photos each within ~1 km: 25 km separation keeps each place in one split.
PLACES = [(48.85, 2.35), (40.71, -74.0), (-33.87, 151.21), (35.68, 139.69), (-1.29, 36.82)]


@pytest.fixture
def geoclip_csv(tmp_path: Path) -> Path:
    """IMG_ID,LAT,LON (GeoCLIP / MP-16 header), images in an images/ folder next to the list."""
    (tmp_path / "images").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for p, (lat, lon) in enumerate(PLACES):
        for i in range(8):
            name = f"images/{p}_{i}.jpg"
            Image.new("RGB", (8, 8), (p * 40, i * 20, 0)).save(tmp_path / name)
            rows.append([name, lat + rng.normal(0, 0.004), lon + rng.normal(0, 0.004)])
    path = tmp_path / "mp16.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["IMG_ID", "AUTHOR", "LAT", "LON"])  # extra columns are ignored
        w.writerows([r[0], "someone", f"{r[1]:.6f}", f"{r[2]:.6f}"] for r in rows)
    return path


def test_split_writes_separated_lists_readable_as_manifests(
    geoclip_csv: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "lists"
    argv = ["split", "--csv", str(geoclip_csv), "--out", str(out), "--fractions", "0.6,0.2,0.2"]
    assert main([*argv, "--min-distance-km", "25", "--log-level", "warning"]) == 0
    assert "40 images" in capsys.readouterr().out
    sets = {
        n: load_image_set(out / f"{n}.csv", validate=False, progress=False) for n in ("train", "val", "test")
    }
    assert [len(s) for s in sets.values()] == [24, 8, 8]  # whole places: 3 / 1 / 1
    all_paths = sorted(str(p) for s in sets.values() for p in s.paths)
    assert all_paths == sorted(
        str(p) for p in load_image_set(geoclip_csv, validate=False, progress=False).paths
    )
    train, held = sets["train"].latlon, np.concatenate([sets["val"].latlon, sets["test"].latlon])
    gap = haversine_m(train[:, None, 0], train[:, None, 1], held[None, :, 0], held[None, :, 1]).min() / 1000
    summary = json.loads((out / "split.json").read_text())
    assert gap > 25 and summary["min_separation_km"] <= gap + 1e-3 and summary["counts"]["val"] == 8
    # existing lists are not overwritten by accident
    assert main([*argv, "--log-level", "warning"]) != 0
    assert "--force" in capsys.readouterr().err
    assert main([*argv, "--force", "--seed", "3", "--log-level", "warning"]) == 0


def test_split_refuses_bad_shares(geoclip_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["split", "--csv", str(geoclip_csv), "--out", str(tmp_path / "o"), "--fractions", "0.5,0.5,0.5"])
