"""CSV and Parquet manifests: columns, relative paths, order, and every error naming its row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.data.helpers import write_image
from vgloc.data import DataError, detect_layout, load_image_set
from vgloc.geo import MetricFrame

ROWS = [
    ("imgs/b.jpg", 55.6982, 13.1954, 90.0),
    ("imgs/a.jpg", 55.6983, 13.1952, ""),
    ("c.png", 55.6990, 13.1949, 270.0),
]


def _images(root: Path) -> None:
    for rel, *_ in ROWS:
        write_image(root / rel)


def _csv(path: Path, header: str, rows: list[tuple[object, ...]]) -> Path:
    path.write_text(header + "\n" + "".join(",".join(str(v) for v in r) + "\n" for r in rows))
    return path


def test_csv_manifest_relative_paths_sorted(tmp_path: Path) -> None:
    _images(tmp_path)
    manifest = _csv(tmp_path / "db.csv", "path,lat,lon,heading", ROWS)
    assert detect_layout(manifest) == "manifest"
    s = load_image_set(manifest, progress=False)
    assert s.name == "db"
    assert [p.relative_to(tmp_path).as_posix() for p in s.paths] == ["c.png", "imgs/a.jpg", "imgs/b.jpg"]
    np.testing.assert_allclose(s.latlon, [[55.6990, 13.1949], [55.6983, 13.1952], [55.6982, 13.1954]])
    np.testing.assert_array_equal(s.heading, [270.0, np.nan, 90.0])
    assert s.frame == MetricFrame(33, True)
    np.testing.assert_allclose(s.utm, s.frame.to_utm(s.latlon[:, 0], s.latlon[:, 1]))


def test_parquet_manifest_equals_csv(tmp_path: Path) -> None:
    _images(tmp_path)
    csv_set = load_image_set(_csv(tmp_path / "m.csv", "path,lat,lon,heading", ROWS), progress=False)
    table = pa.table(
        {
            "path": [r[0] for r in ROWS],
            "lat": [r[1] for r in ROWS],
            "lon": [r[2] for r in ROWS],
            "heading": [None if r[3] == "" else r[3] for r in ROWS],
        }
    )
    pq.write_table(table, tmp_path / "m.parquet")
    pq_set = load_image_set(tmp_path / "m.parquet", progress=False)
    assert pq_set.paths == csv_set.paths
    np.testing.assert_array_equal(pq_set.utm, csv_set.utm)
    np.testing.assert_array_equal(pq_set.heading, csv_set.heading)


def test_column_aliases_any_case_bom_and_absolute_paths(tmp_path: Path) -> None:
    img = write_image(tmp_path / "elsewhere" / "x.jpg")
    manifest = tmp_path / "sub" / "m.csv"
    manifest.parent.mkdir()
    manifest.write_text("\ufeffPath,Latitude,LNG,extra\n" + f"{img},-33.85,151.21,foo\n", encoding="utf-8")
    s = load_image_set(manifest, progress=False)
    assert s.paths == [img]
    assert s.latlon.tolist() == [[-33.85, 151.21]]
    assert s.frame == MetricFrame(56, False)
    assert np.isnan(s.heading[0])


def test_numeric_looking_paths_stay_text(tmp_path: Path) -> None:
    # "007" must not become the number 7 (a JPEG without extension is still an image).
    (tmp_path / "007").write_bytes(write_image(tmp_path / "tmp.jpg").read_bytes())
    s = load_image_set(_csv(tmp_path / "m.csv", "path,lat,lon", [("007", 10.0, 20.0)]), progress=False)
    assert s.paths == [tmp_path / "007"]


def test_missing_column_lists_found_columns(tmp_path: Path) -> None:
    manifest = _csv(tmp_path / "m.csv", "file,lat,longitude_deg", [("a.jpg", 1, 2)])
    with pytest.raises(DataError) as info:
        load_image_set(manifest, progress=False)
    msg = str(info.value)
    assert "missing column 'path'" in msg and "missing column 'lon'" in msg
    assert "file, lat, longitude_deg" in msg


def test_ambiguous_columns(tmp_path: Path) -> None:
    manifest = _csv(tmp_path / "m.csv", "path,lat,latitude,lon", [("a.jpg", 1, 1, 2)])
    with pytest.raises(DataError, match="more than once"):
        load_image_set(manifest, progress=False)


def test_every_bad_row_is_reported_with_row_and_value(tmp_path: Path) -> None:
    _images(tmp_path)
    rows = [
        ("imgs/a.jpg", 55.7, 13.2, ""),  # row 1: fine
        ("imgs/b.jpg", "abc", 13.2, ""),  # row 2: non-numeric lat
        ("c.png", 95.5, 13.2, ""),  # row 3: lat out of range
        ("missing.jpg", 55.7, 13.2, ""),  # row 4: file not found
        ("imgs/a.jpg", 55.7, 200.0, ""),  # row 5: lon out of range and duplicate of row 1
        ("imgs/b.jpg", "", 13.2, "north"),  # row 6: empty lat, bad heading, duplicate of row 2
        ("./imgs/../imgs/b.jpg", 55.7, 13.2, ""),  # row 7: same file as row 2
    ]
    with pytest.raises(DataError) as info:
        load_image_set(_csv(tmp_path / "m.csv", "path,lat,lon,heading", rows), progress=False)
    msg = str(info.value)
    expected = [
        "row 2 (line 3): lat 'abc' is not a number",
        "row 3 (line 4): lat 95.5 outside",
        "row 4 (line 5): file 'missing.jpg' not found",
        "row 5 (line 6): lon 200.0 outside",
        "row 5 (line 6) ('imgs/a.jpg'): same file as row 1 (line 2) ('imgs/a.jpg')",
        "row 6 (line 7): lat is empty",
        "row 6 (line 7): heading 'north' is not a number",
        "row 6 (line 7) ('imgs/b.jpg'): same file as row 2",
        "row 7 (line 8) ('./imgs/../imgs/b.jpg'): same file as row 2",
    ]
    for e in expected:
        assert e in msg, e
    assert len(info.value.problems) == len(expected)
    assert "row 1 " not in msg.replace("same file as row 1", "")
    # Problems are listed in row order.
    rows_in_order = [int(p.split()[1]) for p in info.value.problems]
    assert rows_in_order == sorted(rows_in_order)


def test_parquet_errors_name_rows(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg")
    table = pa.table({"path": ["a.jpg", "a.jpg"], "lat": [10.0, None], "lon": [20.0, 20.0]})
    pq.write_table(table, tmp_path / "m.parquet")
    with pytest.raises(DataError) as info:
        load_image_set(tmp_path / "m.parquet", progress=False)
    assert "row 2: lat is empty" in str(info.value)
    assert "row 2 ('a.jpg'): same file as row 1" in str(info.value)


def test_many_problems_are_truncated_with_a_count(tmp_path: Path) -> None:
    rows = [(f"missing{i:02d}.jpg", 10.0, 20.0) for i in range(25)]
    with pytest.raises(DataError) as info:
        load_image_set(_csv(tmp_path / "m.csv", "path,lat,lon", rows), progress=False)
    msg = str(info.value)
    assert len(info.value.problems) == 25
    assert "missing19.jpg" in msg and "missing20.jpg" not in msg
    assert "and 5 more (25 in total)" in msg


def test_empty_and_unreadable_manifests(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no rows"):
        load_image_set(_csv(tmp_path / "m.csv", "path,lat,lon", []), progress=False)
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError, match=r"e\.csv: empty manifest"):
        load_image_set(tmp_path / "e.csv", progress=False)
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=r"bad\.parquet: cannot read manifest"):
        load_image_set(tmp_path / "bad.parquet", progress=False)


def test_other_files_and_missing_sources(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("a.jpg")
    with pytest.raises(DataError, match="not a folder or a manifest"):
        load_image_set(tmp_path / "list.txt", progress=False)
    with pytest.raises(FileNotFoundError, match="nope"):
        load_image_set(tmp_path / "nope", progress=False)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (" ", "lat is empty"),
        ("nan", "lat 'nan' is not a finite number"),
        ("inf", "lat 'inf' is not a finite"),
    ],
)
def test_blank_and_non_finite_latitudes(tmp_path: Path, value: str, message: str) -> None:
    write_image(tmp_path / "a.jpg")
    with pytest.raises(DataError) as info:
        load_image_set(_csv(tmp_path / "m.csv", "path,lat,lon", [("a.jpg", value, 20.0)]), progress=False)
    (problem,) = info.value.problems
    assert problem.startswith(f"row 1 (line 2): {message}")
