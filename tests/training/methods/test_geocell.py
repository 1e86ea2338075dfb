"""``vgloc train geocell``: partitions from the training positions, one classifier per partition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vgloc.config import ConfigError, resolve_config
from vgloc.describers import ExtractionOptions
from vgloc.geo.cells import load_partitions
from vgloc.predict.cells import GeoCellClassifier, cell_predictions
from vgloc.registry import TRAINING_METHODS
from vgloc.training import train
from vgloc.training.methods import get_method

from .._helpers import small_overrides

# The tiny city spans ~100 m: cells of at most 16 / 4 images need a tiny area threshold.
GEOCELL_SMALL = [
    "geocell.t_img=[16, 4]",
    "geocell.min_images=1",
    "geocell.t_area_km2=1e-6",
    "geocell.batch_size=8",
    "geocell.iterations_per_epoch=3",
]


def _config(root: Path, *extra: str):  # type: ignore[no-untyped-def]
    base = [o for o in small_overrides(root, "geocell") if not o.startswith("cosplace.")]
    return resolve_config("geocell", overrides=[*base, *GEOCELL_SMALL, *extra])


def test_geocell_is_registered_with_geoestimation_defaults() -> None:
    assert "geocell" in TRAINING_METHODS.names()
    cfg = resolve_config("geocell")
    assert cfg.geocell.t_img == [5000, 2000, 1000] and cfg.geocell.min_images == 50
    assert get_method("geocell").trainer_class().method == "geocell"


@pytest.mark.slow  # ~20 s: two short runs and a resume
def test_geocell_trains_two_partitions_and_saves_cells_and_classifiers(
    tiny_city: Path, tmp_path: Path
) -> None:
    result = train(_config(tiny_city), run_dir=tmp_path / "run")
    assert result.global_step == 6 and all(np.isfinite(h["loss"]) for h in result.history if "loss" in h)
    from vgloc.data import load_split

    db = load_split(tiny_city, "train", validate=False, progress=False).database
    coarse, fine = load_partitions(tmp_path / "run" / "cells.npz", db.latlon)  # tied to the training data
    assert (coarse.t_img, fine.t_img) == (16, 4) and fine.num_cells > coarse.num_cells >= 2
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["method_state"]
    assert state["num_cells"] == [coarse.num_cells, fine.num_cells]
    w = state["heads"]["1.weight"]
    assert tuple(w.shape) == (fine.num_cells, 64)
    # resuming restores the classifiers (and checks they fit the partitions)
    more = train(_config(tiny_city, "schedule.epochs=3"), resume=tmp_path / "run")
    assert more.global_step == 9
    # the classifier's logits map to cells and positions of this partition
    pred = cell_predictions(np.random.default_rng(0).normal(size=(3, fine.num_cells)), fine, k=2)
    assert pred.cells.shape == (3, 2) and np.allclose(pred.latlon, fine.means[pred.cells[:, 0]])
    # the trained run predicts photos' cells: the best epoch's network and classifiers
    clf = GeoCellClassifier.load(tmp_path / "run")
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)["method_state"]["heads"]
    torch.testing.assert_close(clf.heads[1].weight, best["1.weight"])
    options = ExtractionOptions(image_size=(48, 64), progress=False)
    z = clf.logits(db.paths[:5], options)
    assert [a.shape for a in z] == [(5, coarse.num_cells), (5, fine.num_cells)]
    out = clf.predict(db.paths[:5], k=3, hierarchical=True, options=options)
    assert out.cells.shape == (5, 3) and np.all((out.probabilities > 0) & (out.probabilities <= 1))
    np.testing.assert_array_equal(out.latlon, fine.means[out.cells[:, 0]])
    np.testing.assert_array_equal(clf.predict(db.paths[:5], k=1, options=options).cells[:, 0], z[1].argmax(1))


def test_geocell_refuses_a_partition_without_two_cells(tiny_city: Path, tmp_path: Path) -> None:
    # GeoEstimation's defaults on a 100 m city: one world cell, nothing to classify
    cfg = _config(tiny_city, "geocell.t_img=[5000]", "geocell.min_images=50")
    with pytest.raises(ConfigError, match=r"lower geocell\.t_img"):
        train(cfg, run_dir=tmp_path / "run")
