"""Evaluation by geo-cell classification: positions from a geocell run, metrics recomputable from the files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from vgloc.describers import ExtractionOptions
from vgloc.evaluation.geocell import CellSettings, evaluate_geocell
from vgloc.predict.cells import GeoCellClassifier

from ._geocell_run import make_geocell_run, write_world

OPTIONS = ExtractionOptions(image_size=(48, 64), batch_size=8, precision="fp32", progress=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    from vgloc.data import load_image_set

    root = tmp_path_factory.mktemp("geocell_world")
    db, q = write_world(root)
    run = make_geocell_run(root / "run", load_image_set(db).latlon)
    return db, q, run


def _haversine_km(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    la1, lo1, la2, lo2 = (np.radians(x) for x in (a[:, 0], a[:, 1], b[:, 0], b[:, 1]))
    h = np.sin((la2 - la1) / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371.0088 * np.arcsin(np.sqrt(h))


def test_positions_are_the_classifiers_cells_and_km_accuracy_matches_the_files(
    world: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    db, q, run = world
    settings = CellSettings(run, k=3, position="centre", hierarchical=True)
    result = evaluate_geocell(
        database=db, queries=q, cells=settings, options=OPTIONS, out_dir=tmp_path, report=False
    )
    d = result.domains["q"]
    clf = GeoCellClassifier.load(run)
    from vgloc.data import load_image_set

    queries = load_image_set(q)
    want = clf.predict(queries.paths, k=3, position="centre", hierarchical=True, options=OPTIONS)
    np.testing.assert_allclose(d.predicted_latlon, want.latlon)
    np.testing.assert_allclose(d.confidence, want.probabilities[:, 0])
    rows = list(csv.DictReader((tmp_path / "predictions.csv").open()))
    pred = np.array([[float(r["pred_lat"]), float(r["pred_lon"])] for r in rows])
    true = np.array([[float(r["true_lat"]), float(r["true_lon"])] for r in rows])
    np.testing.assert_allclose(pred, want.latlon, atol=1e-6)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["settings"]["method"] == "geocell" and saved["settings"]["cells"]["hierarchical"] is True
    err = _haversine_km(pred, true)
    for km, pct in saved["domains"]["q"]["accuracy_km"].items():
        assert pct == pytest.approx(100.0 * np.mean(err <= float(km)), abs=1e-6)
    cells = list(csv.DictReader((tmp_path / "cells.csv").open()))
    assert [int(r["cell1"]) for r in cells] == want.cells[:, 0].tolist()
    assert [float(r["prob1"]) for r in cells] == pytest.approx(want.probabilities[:, 0].tolist(), abs=1e-5)
    # the coarse partition alone predicts coarse cells' mean positions
    coarse = evaluate_geocell(database=db, queries=q, cells=CellSettings(run, partition=0), options=OPTIONS)
    means = clf.partitions[0].means
    assert all(any(np.allclose(p, m) for m in means) for p in coarse.domains["q"].predicted_latlon)


def test_bad_settings_are_refused_before_anything_is_described(
    world: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    db, q, run = world
    with pytest.raises(ValueError, match="mean' or 'centre"):
        evaluate_geocell(database=db, queries=q, cells=CellSettings(run, position="middle"))
    with pytest.raises(FileNotFoundError, match=r"cells\.npz"):
        evaluate_geocell(database=db, queries=q, cells=tmp_path)
    with pytest.raises(ValueError, match="partition 5"):
        evaluate_geocell(database=db, queries=q, cells=CellSettings(run, partition=5))
    with pytest.raises(ValueError, match="not resnet18"):
        evaluate_geocell(database=db, queries=q, model="resnet18+gem", cells=run)
    with pytest.raises(ValueError, match="--index"):
        evaluate_geocell(database=db, queries=q, cells=run, index=tmp_path)
