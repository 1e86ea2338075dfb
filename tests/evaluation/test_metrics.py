"""Registered metrics, the world-scale km accuracies and their automatic choice."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

import vgloc
from vgloc.data import GeoImageSet
from vgloc.describers import ExtractionOptions
from vgloc.evaluation.metrics import (
    DEFAULT_METRICS,
    KM_THRESHOLDS,
    WORLD_METRICS,
    MetricInputs,
    accuracy_km_of,
    compute_metrics,
    is_world_scale,
    metrics_for,
)
from vgloc.geo import errors_m
from vgloc.registry import METRICS, UnknownNameError


def plain_haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """An independent great-circle distance (math module only, WGS84 mean radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(math.sqrt(a))


def _inputs(error_m: np.ndarray) -> MetricInputs:
    q = len(error_m)
    return MetricInputs(np.zeros((q, 1), dtype=int), [np.zeros(0, dtype=int)] * q, error_m, (1,), 25.0)


def test_accuracy_km_counts_errors_at_most_each_threshold_and_nan_as_a_miss() -> None:
    err_km = np.array([0.5, 1.0, 1.001, 30.0, 800.0, 2500.0, 9000.0, np.nan])
    acc = accuracy_km_of(err_km * 1000.0)
    assert list(acc) == list(KM_THRESHOLDS)
    # <= 1 km: 0.5 and 1.0 (inclusive, as GeoCLIP's eval); the NaN query counts in the denominator.
    assert acc == {1.0: 25.0, 25.0: 37.5, 200.0: 50.0, 750.0: 50.0, 2500.0: 75.0}
    assert all(math.isnan(v) for v in accuracy_km_of(np.zeros(0)).values())


def test_registered_km_metrics_match_a_plain_haversine_on_random_points() -> None:
    rng = np.random.default_rng(0)
    truth = np.stack([rng.uniform(-90, 90, 300), rng.uniform(-180, 180, 300)], 1)
    # predictions at every scale: metres to the antipode
    step = rng.choice([0.001, 0.1, 1.0, 5.0, 30.0, 180.0], 300)[:, None] * rng.normal(size=(300, 2))
    pred = np.clip(truth + step, [-90, -180], [90, 180])
    values = compute_metrics(WORLD_METRICS, _inputs(errors_m(pred, truth)))
    brute = np.array([plain_haversine_km(*p, *t) for p, t in zip(pred, truth, strict=True)])
    for t in KM_THRESHOLDS:
        assert values[f"acc@{t:g}km"] == pytest.approx(100.0 * np.mean(brute <= t), abs=1e-9)
    assert values["median_error_km"] == pytest.approx(float(np.median(brute)), rel=1e-9)
    assert {"accuracy_km", "median_error_km"} <= set(METRICS.names())


def test_world_metrics_are_chosen_for_world_wide_data_or_by_flag() -> None:
    paths = [Path("a.jpg"), Path("b.jpg")]
    city = GeoImageSet.from_latlon(paths, np.array([55.70, 55.71]), np.array([13.19, 13.20]))
    world = GeoImageSet.from_latlon(paths, np.array([55.70, -33.87]), np.array([13.19, 151.21]))
    assert city.frame is not None and world.frame is None
    assert not is_world_scale(city) and is_world_scale(world) and is_world_scale(city, world)
    assert metrics_for(DEFAULT_METRICS, city) == DEFAULT_METRICS
    assert metrics_for(DEFAULT_METRICS, city, world) == (*DEFAULT_METRICS, *WORLD_METRICS)
    assert metrics_for(DEFAULT_METRICS, city, world=True) == (*DEFAULT_METRICS, *WORLD_METRICS)
    assert metrics_for(DEFAULT_METRICS, world, world=False) == DEFAULT_METRICS
    # a requested world metric is kept once, in its place
    assert metrics_for(("accuracy_km", "recall"), world) == ("accuracy_km", "recall", "median_error_km")
    with pytest.raises(UnknownNameError, match="accuracy_km"):
        metrics_for(("acuracy_km",), city)


OPTIONS = ExtractionOptions(image_size=(96, 128), batch_size=8, precision="fp32", progress=False)
# Query i is database photo i of place i, with its coordinates moved by OFFSET_KM[i] to the south.
PLACES = [(55.705, 13.19), (-33.87, 151.21), (40.71, -74.0), (-1.29, 36.82), (64.14, -21.94)]
OFFSET_KM = [0.2, 10.0, 100.0, 500.0, 3000.0]


def _manifest(path: Path, rows: list[tuple[Path, float, float]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "lat", "lon"])
        w.writerows([str(p), f"{lat:.7f}", f"{lon:.7f}"] for p, lat, lon in rows)
    return path


@pytest.mark.slow  # ~10-30 s: describes 10 photos with a network
def test_world_wide_eval_reports_km_accuracies_that_predictions_csv_reproduces(
    lund_dir: Path, tmp_path: Path
) -> None:
    frames = sorted(lund_dir.glob("*.jpg"))
    db = [(frames[i], lat, lon) for i, (lat, lon) in enumerate(PLACES)]
    deg_per_km = 1 / 111.2
    q = [(frames[i], lat - OFFSET_KM[i] * deg_per_km, lon) for i, (lat, lon) in enumerate(PLACES)]
    result = vgloc.evaluate(
        database=_manifest(tmp_path / "db.csv", db),
        queries=_manifest(tmp_path / "q.csv", q),
        model="tiny+gem",
        options=OPTIONS,
        recall_values=(1,),
        method="kde",  # on world-wide data: WORLD_KDE (k=100, m=10, sigma 4 km)
        out_dir=tmp_path / "out",
    )
    [d] = result.domains.values()
    # The independent check: recompute every threshold from predictions.csv with a plain haversine.
    rows = list(csv.DictReader((tmp_path / "out" / "predictions.csv").open()))
    km = [
        plain_haversine_km(*(float(r[c]) for c in ("pred_lat", "pred_lon", "true_lat", "true_lon")))
        for r in rows
    ]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())["domains"]["q"]["accuracy_km"]
    for t in KM_THRESHOLDS:
        want = 100.0 * np.mean(np.array(km) <= t)
        assert d.metrics[f"acc@{t:g}km"] == pytest.approx(want) and saved[f"{t:g}"] == pytest.approx(
            want, abs=1e-3
        )
    # each query finds its own photo: one more place falls within each larger threshold
    assert [d.metrics[f"acc@{t:g}km"] for t in KM_THRESHOLDS] == [20.0, 40.0, 60.0, 80.0, 80.0]
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Accuracy within 1 / 25 / 200 / 750 / 2500 km" in page and "<th>2500km</th>" in page
    table = result.table()
    assert "| 1km | 25km | 200km | 750km | 2500km | median km |" in table and "| 80.0 |" in table
