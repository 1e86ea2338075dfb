"""``vgloc synth --world``: synthetic cities on several continents, merged into one world-wide dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vgloc.cli import main
from vgloc.data import load_split
from vgloc.data.synthetic import CitySize
from vgloc.data.synthetic.style import CityStyle
from vgloc.data.synthetic.world import WORLD_STYLES, generate_world
from vgloc.geo import haversine_m

SMALL = CitySize(
    train_cols=1, val_cols=1, test_cols=1, rows=1, db_spacing_m=16.0, db_headings=2,
    queries_per_pano=0.5, aerial_step_m=1000.0,
)  # fmt: skip
PLACES = (("paris", 48.8566, 2.3522), ("sydney", -33.8688, 151.2093))


@pytest.mark.slow  # ~10-20 s: renders two small cities
def test_world_merges_styled_cities_into_a_world_wide_dataset(tmp_path: Path) -> None:
    mine = CityStyle(walls=(1,), tree_rate=0.0)
    root = generate_world(
        tmp_path / "world",
        SMALL,
        0,
        places=PLACES,
        styles={"paris": mine},
        image_size=(32, 48),
        progress=False,
        workers=1,
    )
    architecture = json.loads((root / "world.json").read_text())["params"]["architecture"]
    assert architecture == {"paris": mine.to_dict(), "sydney": WORLD_STYLES["sydney"].to_dict()}
    assert (
        json.loads((root / "_cities" / "paris" / "city.json").read_text())["params"]["style"]
        == mine.to_dict()
    )
    split = load_split(root, "train", validate=False, progress=False)
    db = split.database
    assert db.frame is None and db.is_world  # two continents: no UTM frame
    near = [float(haversine_m(*db.latlon.T, lat, lon).max()) for _, lat, lon in PLACES]
    sides = haversine_m(db.latlon[:, 0], db.latlon[:, 1], PLACES[0][1], PLACES[0][2]) < 5_000
    assert 0 < sides.sum() < len(db) and min(near) > 1e6  # photos in both cities
    counts = json.loads((root / "world.json").read_text())["counts"]
    assert sum(counts["train/database"].values()) == len(db) and "queries" in split.queries
    # every merged image is its city's image with that city's colour grade
    style = json.loads((root / "world.json").read_text())["params"]["styles"]["sydney"]
    f = next(p for p, s in zip(db.paths, sides, strict=True) if not s)
    src = root / "_cities" / "sydney" / "images" / "train" / "database" / Path(f).name
    raw = np.asarray(Image.open(src).convert("RGB"), dtype=np.float32)
    graded = np.asarray(Image.open(f).convert("RGB"), dtype=np.float32)
    want = np.clip(raw * np.asarray(style["gain"]) + np.asarray(style["offset"]), 0, 255)
    assert np.abs(graded - want).mean() < 4.0  # JPEG re-encoding only
    # a second call reuses the world; the command writes one too
    mtime = (root / "world.json").stat().st_mtime_ns
    again = generate_world(
        root, SMALL, 0, places=PLACES, styles={"paris": mine}, image_size=(32, 48), progress=False
    )
    assert again == root
    assert (root / "world.json").stat().st_mtime_ns == mtime


def test_world_refuses_bad_places_and_foreign_folders(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="two or more places"):
        generate_world(tmp_path / "w", places=PLACES[:1])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a synthetic world"):
        generate_world(tmp_path / "other", places=PLACES)
    with pytest.raises(SystemExit):
        main(["synth", "--world", "--size", "huge", "--out", str(tmp_path / "x")])
