"""The benchmark tree <root>/images/{split}/{database,queries,queries_*}."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.data.helpers import vg_file_name, write_image
from vgloc.data import BenchmarkSplit, DataError, find_query_domains, load_split
from vgloc.geo import MetricFrame

DB = [(48.0, 11.990), (48.0, 11.995), (48.0, 11.998)]  # zone 32
Q_DAY = [(48.0, 11.9951)]
Q_NIGHT = [(48.0, 12.001)]  # zone 33: must be moved into the database's frame


def _tree(root: Path) -> Path:
    for folder, pts in [("database", DB), ("queries", Q_DAY), ("queries_night", Q_NIGHT)]:
        for lat, lon in pts:
            write_image(root / "images" / "test" / folder / vg_file_name(lat, lon))
    (root / "images" / "train").mkdir(parents=True)
    (root / "images" / "test" / "notes").mkdir()
    return root


def test_load_split_puts_queries_in_database_frame(tmp_path: Path) -> None:
    root = _tree(tmp_path / "city")
    split = load_split(root, "test", progress=False)
    assert isinstance(split, BenchmarkSplit)
    assert split.split == "test" and split.root == root / "images"
    assert split.domains == ["queries", "queries_night"]
    assert split.database.name == "test/database" and len(split.database) == 3
    assert split.database.frame == MetricFrame(32, True)
    night = split.queries["queries_night"]
    assert night.name == "test/queries_night"
    assert night.frame == split.database.frame
    np.testing.assert_allclose(night.utm, split.database.frame.to_utm(np.array([48.0]), np.array([12.001])))
    # The day query is 0.0001 deg (~7.5 m) east of database image 1, the night one 224 m east of 2.
    d_day = np.linalg.norm(split.database.utm - split.queries["queries"].utm[0], axis=1)
    assert int(np.argmin(d_day)) == 1 and d_day.min() == pytest.approx(7.46, abs=0.05)
    d_night = np.linalg.norm(split.database.utm - night.utm[0], axis=1)
    assert int(np.argmin(d_night)) == 2 and d_night.min() == pytest.approx(223.8, abs=0.5)


@pytest.mark.parametrize("where", ["", "images", "images/test"])
def test_root_may_be_dataset_images_or_split(tmp_path: Path, where: str) -> None:
    root = _tree(tmp_path / "city")
    split = load_split(root / where if where else root, "test", validate=False, progress=False)
    assert split.root == root / "images"
    assert len(split.database) == 3


def test_find_query_domains(tmp_path: Path) -> None:
    root = _tree(tmp_path / "city")
    assert find_query_domains(root, "test") == ["queries", "queries_night"]
    assert find_query_domains(root / "images", "train") == []


def test_missing_split_lists_existing(tmp_path: Path) -> None:
    root = _tree(tmp_path / "city")
    with pytest.raises(DataError, match=r"no split folder 'val'; found: test, train"):
        load_split(root, "val", progress=False)
    with pytest.raises(FileNotFoundError):
        load_split(tmp_path / "nowhere", "test", progress=False)


def test_missing_database_or_queries_lists_existing(tmp_path: Path) -> None:
    root = _tree(tmp_path / "city")
    with pytest.raises(DataError, match=r"no 'database' folder; found: \(no sub-folders\)"):
        load_split(root, "train", progress=False)
    (root / "images" / "train" / "database").mkdir()
    (root / "images" / "train" / "db_extra").mkdir()
    with pytest.raises(DataError, match=r"no query folder .*found: database, db_extra"):
        load_split(root, "train", progress=False)


def test_problems_of_all_folders_reported_together(tmp_path: Path) -> None:
    root = _tree(tmp_path / "city")
    write_image(root / "images" / "test" / "database" / "@x@1@.jpg")
    (root / "images" / "test" / "queries_night" / "@5@6@.jpg").write_text("not an image")
    with pytest.raises(DataError) as info:
        load_split(root, "test", progress=False)
    problems = info.value.problems
    assert any(p.startswith("[database] @x@1@.jpg: field UTM_east='x'") for p in problems)
    assert any(p.startswith("[queries_night] @5@6@.jpg: not an image") for p in problems)
    # The night folder also mixes zoneless and zoned files.
    assert any(p.startswith("[queries_night]") and "neither a UTM zone" in p for p in problems)
