"""A photo collection spread over continents indexes, locates and evaluates."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import vgloc
from vgloc.describers import ExtractionOptions

OPTIONS = ExtractionOptions(image_size=(96, 128), batch_size=8, precision="fp32", progress=False)
# Places on four continents and both sides of the antimeridian (lat, lon).
PLACES = [(55.705, 13.19), (-33.87, 151.21), (40.71, -74.0), (-1.29, 36.82), (64.14, -21.94), (-17.7, 178.1)]


def write_manifest(path: Path, rows: list[tuple[Path, float, float]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "lat", "lon"])
        for image, lat, lon in rows:
            writer.writerow([str(image), f"{lat:.7f}", f"{lon:.7f}"])
    return path


@pytest.fixture(scope="module")
def world(lund_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list]:
    """Lund photos relabelled to six places: 2 database photos per place, 1 query per place."""
    frames = sorted(lund_dir.glob("*.jpg"))
    tmp = tmp_path_factory.mktemp("world")
    db_rows, q_rows = [], []
    for p, (lat, lon) in enumerate(PLACES):
        a, b = frames[2 * p], frames[2 * p + 1]
        db_rows += [(a, lat, lon), (b, lat + 0.0001, lon)]  # 11 m apart
        q_rows.append((a, lat + 0.00005, lon))  # the query is a database photo, 5.6 m away
    return write_manifest(tmp / "db.csv", db_rows), write_manifest(tmp / "q.csv", q_rows), q_rows


def test_world_wide_manifest_loads_as_a_world_set(world: tuple[Path, Path, list]) -> None:
    from vgloc.data import load_image_set

    db = load_image_set(world[0])
    assert db.frame is None and np.all(np.isnan(db.utm)) and np.all(np.isfinite(db.latlon))


def test_world_wide_index_locates_each_query_at_its_own_place(
    world: tuple[Path, Path, list], tmp_path: Path
) -> None:
    from vgloc.geo import distances_m

    db_csv, _, q_rows = world
    vgloc.build_index(db_csv, "tiny+gem", tmp_path / "idx", options=OPTIONS)
    preds = vgloc.locate([row[0] for row in q_rows], tmp_path / "idx", top_k=2)
    for pred, (_, lat, lon) in zip(preds, q_rows, strict=True):
        # Each query is a database photo: its own copy is the nearest neighbour.
        assert pred.matches[0].similarity == pytest.approx(1.0, abs=1e-4)
        assert distances_m(pred.lat, pred.lon, lat, lon) < 20
        assert np.isnan(pred.utm_east)  # no planar frame for world-wide data
    kde = vgloc.locate([q_rows[1][0]], tmp_path / "idx", method="kde")[0]
    assert distances_m(kde.lat, kde.lon, q_rows[1][1], q_rows[1][2]) < 20


def test_world_wide_evaluation_uses_great_circle_positives(
    world: tuple[Path, Path, list], tmp_path: Path
) -> None:
    from vgloc.geo import distances_m

    db_csv, q_csv, q_rows = world
    result = vgloc.evaluate(
        database=db_csv,
        queries=q_csv,
        model="tiny+gem",
        options=OPTIONS,
        recall_values=(1, 2),
        out_dir=tmp_path,
    )
    [d] = result.domains.values()
    # Brute-force haversine positives: the two database photos of the query's own place.
    from vgloc.data import load_image_set

    db = load_image_set(db_csv)
    for q, (_, lat, lon) in enumerate(q_rows):
        brute = np.flatnonzero(distances_m(db.latlon[:, 0], db.latlon[:, 1], lat, lon) <= 25.0)
        assert sorted(d.positives[q].tolist()) == brute.tolist() and len(brute) == 2
    assert d.recalls[1] == 100.0  # each query's own photo is in the database
    assert np.all(d.error_m < 20)
    rows = list(csv.DictReader((tmp_path / "predictions.csv").open()))
    assert all(float(r["error_m"]) < 20 for r in rows)
    assert (tmp_path / "report.html").is_file()
