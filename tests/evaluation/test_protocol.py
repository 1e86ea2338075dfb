"""The evaluation protocol: one code path, checks first, any layout, every output file."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest

import vgloc
from vgloc.describers import ExtractionOptions

OPTIONS = ExtractionOptions(image_size=(96, 128), batch_size=8, precision="fp32", progress=False)
PINNED = Path(__file__).parent / "data" / "pinned_tiny_city.json"


@pytest.mark.parametrize("spec", ["tiny+gem", "rootsift+vlad16"])
def test_per_query_predictions_are_those_of_the_previous_release(tiny_city_root: Path, spec: str) -> None:
    """Pinned with the pre-redesign code (api.py of 84fc521); the redesign changes no ranking."""
    pinned = json.loads(PINNED.read_text())[spec]
    result = vgloc.evaluate(tiny_city_root, "test", spec, options=OPTIONS, seed=0)
    assert set(result.domains) == set(pinned)
    for name, old in pinned.items():
        d = result.domains[name]
        assert {str(k): v for k, v in d.recalls.items()} == old["recalls"]
        sims = np.asarray(old["sims"])
        np.testing.assert_allclose(d.similarities[:, :5], sims, atol=1e-4)
        # Rankings are identical wherever the similarity gap is not a float tie.
        ties = np.abs(np.diff(sims, axis=1)) < 1e-5
        same = d.predictions[:, :5] == np.asarray(old["top5"])
        assert np.all(same[:, :-1] | ties), name


def test_eval_on_own_geotagged_photos_writes_every_output(lund_dir: Path, tmp_path: Path) -> None:
    import shutil

    frames = sorted(lund_dir.glob("*.jpg"))
    (tmp_path / "db").mkdir()
    (tmp_path / "q").mkdir()
    for i, f in enumerate(frames):
        shutil.copy(f, tmp_path / ("db" if i % 2 == 0 else "q") / f.name)
    result = vgloc.evaluate(
        database=tmp_path / "db",
        queries=tmp_path / "q",
        model="tiny+gem",
        options=OPTIONS,
        recall_values=(1, 5),
        out_dir=tmp_path / "out",
    )
    [domain] = result.domains.values()
    assert domain.num_queries == len(frames) // 2
    assert result.split == "custom" and 0 <= domain.recalls[1] <= domain.recalls[5] <= 100
    rows = list(csv.DictReader((tmp_path / "out" / "predictions.csv").open()))
    assert list(rows[0])[:7] == [
        "query",
        "true_lat",
        "true_lon",
        "pred_lat",
        "pred_lon",
        "error_m",
        "confidence",
    ]
    assert len(rows) == domain.num_queries and "top5_path" in rows[0]
    # error_m is the distance between the written true and predicted positions.
    from vgloc.geo import haversine_m

    for row in rows:
        d = haversine_m(
            float(row["true_lat"]), float(row["true_lon"]), float(row["pred_lat"]), float(row["pred_lon"])
        )
        assert float(row["error_m"]) == pytest.approx(float(d), abs=0.5)
    assert domain.metrics["median_error_m"] == pytest.approx(
        np.median([float(r["error_m"]) for r in rows]), abs=0.01
    )
    assert (tmp_path / "out" / "report.html").stat().st_size > 1000
    assert json.loads((tmp_path / "out" / "results.json").read_text())["split"] == "custom"


def test_a_built_index_is_reused_instead_of_describing_the_database(
    tiny_city_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vgloc.data import load_split
    from vgloc.describers.net import NetDescriber

    split = load_split(tiny_city_root, "test")
    vgloc.build_index(split.database, "tiny+gem", tmp_path / "idx", options=OPTIONS, validate=False)
    sizes: list[int] = []
    original = NetDescriber.describe

    def counting(self, images, options, *, queries=False):  # type: ignore[no-untyped-def]
        sizes.append(len(images))
        return original(self, images, options, queries=queries)

    monkeypatch.setattr(NetDescriber, "describe", counting)
    result = vgloc.evaluate(tiny_city_root, "test", index=tmp_path / "idx", options=OPTIONS)
    assert sizes == [len(q) for q in split.queries.values()]  # queries only
    fresh = vgloc.evaluate(tiny_city_root, "test", "tiny+gem", options=OPTIONS)
    assert result.model_spec == fresh.model_spec
    with pytest.raises(ValueError, match="the index was built with tiny\\+gem"):
        vgloc.evaluate(tiny_city_root, "test", "tiny+avg", index=tmp_path / "idx", options=OPTIONS)


def test_bad_settings_fail_before_any_image_is_described(
    tiny_city_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vgloc.describers.net import NetDescriber

    def forbidden(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("an image was described before the settings were checked")

    monkeypatch.setattr(NetDescriber, "describe", forbidden)
    with pytest.raises(ValueError, match="faiss factory"):
        vgloc.evaluate(tiny_city_root, "test", "tiny+gem", factory="IVF-bogus", options=OPTIONS)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError):
        vgloc.evaluate(tiny_city_root, "test", "tiny+gem", out_dir=blocker, options=OPTIONS)
    with pytest.raises(Exception, match="metric"):
        vgloc.evaluate(tiny_city_root, "test", "tiny+gem", metrics=("recal",), options=OPTIONS)
    with pytest.raises(ValueError, match="without a re-ranker"):
        vgloc.evaluate(tiny_city_root, "test", "tiny+gem", rerank_fusion="zscore", options=OPTIONS)


def test_recall_at_n_beyond_the_database_is_clipped_with_a_warning(
    tiny_city_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        result = vgloc.evaluate(tiny_city_root, "test", "tiny+gem", recall_values=(1, 500), options=OPTIONS)
    assert result.recall_values == (1, result.num_database)
    assert "Recall@N for N >" in caplog.text
    for d in result.domains.values():
        assert d.recalls[result.num_database] == 100.0  # the whole database always holds the positive


def test_metrics_are_registered_and_computed_by_name() -> None:
    from vgloc.evaluation.metrics import MetricInputs, compute_metrics
    from vgloc.registry import METRICS

    assert {"recall", "median_error_m"} <= set(METRICS.names())
    inputs = MetricInputs(
        ranked_ids=np.array([[0, 1], [1, 0], [2, 2]]),
        positives=[np.array([0]), np.array([0]), np.array([5])],
        error_m=np.array([1.0, 3.0, np.nan]),
        recall_values=(1, 2),
        threshold_m=25.0,
    )
    out = compute_metrics(["recall", "median_error_m"], inputs)
    assert out == pytest.approx({"R@1": 100 / 3, "R@2": 200 / 3, "median_error_m": 2.0})
