"""``vgloc eval`` / ``vgloc locate`` with a ``vgloc train geocell`` run (``--cells RUN``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vgloc.api
from vgloc.cli import main
from vgloc.predict.cells import GeoCellClassifier

from ..evaluation._geocell_run import make_geocell_run, write_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    from vgloc.data import load_image_set

    root = tmp_path_factory.mktemp("cli_cells")
    db, q = write_world(root, per_place=4, queries_per_place=1)
    return db, q, make_geocell_run(root / "run", load_image_set(db).latlon)


def test_eval_method_geocell_writes_the_classifiers_positions(
    world: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, q, run = world
    argv = ["eval", "--database", str(db), "--queries", str(q), "--cells", str(run), "--method", "geocell"]
    opts = ["--image-size", "48,64", "--cell-position", "centre", "--cell-k", "2", "--no-report"]
    assert main([*argv, *opts, "--out", str(tmp_path), "--log-level", "warning"]) == 0
    assert "2500km" in capsys.readouterr().out  # world data: the km columns
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["settings"]["method"] == "geocell" and saved["settings"]["cells"]["position"] == "centre"
    header = (tmp_path / "cells.csv").read_text().splitlines()[0]
    assert header == "query,cell1,prob1,cell2,prob2,domain"
    no_run = [
        "eval",
        "--database",
        str(db),
        "--queries",
        str(q),
        "--method",
        "geocell",
        "--log-level",
        "error",
    ]
    assert main(no_run) != 0  # --method geocell needs a run


def test_eval_cells_without_geocell_retrieves_with_the_runs_network(
    world: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    db, q, run = world
    seen: dict[str, Any] = {}

    class StopError(Exception):
        pass

    def fake(dataset: Any, split: str, model: Any, **kwargs: Any) -> None:
        seen.update(kwargs, model=model)
        raise StopError

    monkeypatch.setattr(vgloc.api, "evaluate", fake)
    with pytest.raises(StopError):
        main(["eval", "--database", str(db), "--queries", str(q), "--cells", str(run), "--method", "kde"])
    assert seen["model"] == "tiny+gem" and seen["checkpoint"] == run / "best_model.pt"
    assert seen["method"] == "kde"


def test_locate_method_geocell_lists_top_cells(
    world: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _, run = world
    photos = sorted(str(p) for p in db.parent.glob("q_*.jpg"))[:2]
    argv = ["locate", *photos, "--cells", str(run), "--method", "geocell", "--top-k", "3", "--hierarchical"]
    assert main([*argv, "--image-size", "48,64", "--json", "--log-level", "warning"]) == 0
    out = json.loads(capsys.readouterr().out)
    from vgloc.describers import ExtractionOptions

    clf = GeoCellClassifier.load(run)
    want = clf.predict(photos, k=3, hierarchical=True, options=ExtractionOptions(image_size=(48, 64)))
    assert [len(r["cells"]) for r in out] == [3, 3]
    np.testing.assert_allclose([[r["lat"], r["lon"]] for r in out], want.latlon)
    np.testing.assert_allclose([[c["probability"] for c in r["cells"]] for r in out], want.probabilities)
    assert (
        main(["locate", photos[0], "--cells", str(run), "--log-level", "error"]) != 0
    )  # needs --method geocell
    assert main(["locate", photos[0], "--log-level", "error"]) != 0  # neither an index nor a run


def test_eval_geocell_finds_the_run_from_its_checkpoint(
    world: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import vgloc.evaluation.geocell as geocell

    db, q, run = world
    seen: dict[str, Any] = {}

    def fake(*args: Any, **kwargs: Any) -> None:
        seen.update(kwargs, model=args[2])
        raise StopError

    class StopError(Exception):
        pass

    monkeypatch.setattr(geocell, "evaluate_geocell", fake)
    argv = ["eval", "--database", str(db), "--queries", str(q), "--method", "geocell"]
    with pytest.raises(StopError):
        main([*argv, "--checkpoint", str(run / "best_model.pt"), "--hierarchical", "--cell-partition", "0"])
    assert seen["cells"].run == run and seen["cells"].hierarchical and seen["cells"].partition == 0
    assert seen["model"] == "tiny+gem"  # the run's own network
