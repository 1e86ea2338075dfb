"""Every command takes a published model's name: ``models``, ``index build``, ``locate``, ``eval``, ``train``.

A test-local entry (``tiny+gem+fc16`` under a fake name, with its own key names and
preprocessing, :mod:`tests.models._fake_published`) stands for megaloc & co; its file
is given with ``--checkpoint`` (nothing is downloaded).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.models import _fake_published as fake
from vgloc.cli import main
from vgloc.index import GeoIndex
from vgloc.models.published import PublishedModel

QUIET = ["--no-progress", "--precision", "fp32"]


@pytest.fixture
def entry() -> Iterator[PublishedModel]:
    yield from fake.registered(fake.make_entry())


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return fake.write_release(fake.reference_model(), tmp_path / "fakepub_release.pth")


def test_models_lists_published_weights_with_size_and_source(
    entry: PublishedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert "architecture parts" in text and "published weights" in text
    line = next(row for row in text.splitlines() if row.startswith(fake.NAME))
    assert "56x70" in line and fake.SPEC in line and str(entry.url) in line
    assert any(
        row.startswith("cosplace:resnet50+gem+fc2048") and "native" in row for row in text.splitlines()
    )
    assert main(["models", "--json", "fakepub*"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["name"], row["dim"], row["eval_size"]) == (fake.NAME, "16", "56x70")


def test_index_build_and_locate_from_a_published_name(
    entry: PublishedModel,
    release: Path,
    tiny_city_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db_dir = tiny_city_root / "images" / "test" / "database"
    idx = tmp_path / "city.idx"
    run = ["--run-dir", str(tmp_path / "run")]
    args = ["--images", str(db_dir), "--out", str(idx), "--model", fake.NAME, "--checkpoint", str(release)]
    assert main(["index", "build", *args, *QUIET, *run]) == 0
    meta = GeoIndex.read_metadata(idx)
    assert meta.model_spec == fake.NAME
    assert meta.image_size == fake.SIZE  # no --image-size: the published evaluation size
    state = meta.extra["describer"]
    assert state["published"] == fake.NAME and state["preprocessing"]["mean"] == list(fake.MEAN)
    capsys.readouterr()
    photo = sorted(db_dir.glob("*.jpg"))[3]
    assert main(["locate", str(photo), "--index", str(idx), "--json", "--top-k", "1"]) == 0
    (pred,) = json.loads(capsys.readouterr().out)
    # The query is described exactly as the database (same size and normalisation): it finds itself.
    assert Path(pred["matches"][0]["path"]).name == photo.name
    assert pred["matches"][0]["similarity"] > 0.9999


def test_index_build_explicit_size_wins(
    entry: PublishedModel, release: Path, tiny_city_root: Path, tmp_path: Path
) -> None:
    db_dir = tiny_city_root / "images" / "test" / "database"
    idx = tmp_path / "city.idx"
    args = ["--images", str(db_dir), "--out", str(idx), "--model", fake.NAME, "--checkpoint", str(release)]
    assert (
        main(["index", "build", *args, "--image-size", "42,56", *QUIET, "--run-dir", str(tmp_path / "r")])
        == 0
    )
    assert GeoIndex.read_metadata(idx).image_size == (42, 56)


def _eval_from_name(release: Path, root: Path, tmp_path: Path) -> tuple[dict, list[str]]:
    out = tmp_path / "out"
    common = ["--dataset", str(root), "--recall", "1", *QUIET, "--run-dir", str(tmp_path / "run")]
    assert main(["eval", "--model", fake.NAME, "--checkpoint", str(release), "--out", str(out), *common]) == 0
    return json.loads((out / "results.json").read_text()), common


def test_eval_from_a_published_name(
    entry: PublishedModel, release: Path, tiny_city_root: Path, tmp_path: Path
) -> None:
    result, _ = _eval_from_name(release, tiny_city_root, tmp_path)
    assert result["model_spec"] == fake.NAME
    assert result["settings"]["image_size"] == list(fake.SIZE)


@pytest.mark.slow
def test_eval_with_an_index_of_a_published_model_matches(
    entry: PublishedModel, release: Path, tiny_city_root: Path, tmp_path: Path
) -> None:
    first, common = _eval_from_name(release, tiny_city_root, tmp_path)
    # The same model through an index of it: the index's size and normalisation, the same recalls.
    idx = tmp_path / "city.idx"
    db_dir = tiny_city_root / "images" / "test" / "database"
    build = ["--images", str(db_dir), "--out", str(idx), "--model", fake.NAME, "--checkpoint", str(release)]
    assert main(["index", "build", *build, *QUIET, "--run-dir", str(tmp_path / "r2")]) == 0
    out2 = tmp_path / "out2"
    assert main(["eval", "--index", str(idx), "--out", str(out2), *common]) == 0
    second = json.loads((out2 / "results.json").read_text())
    assert second["settings"]["image_size"] == list(fake.SIZE)
    recalls = [{d: v["recalls"] for d, v in r["domains"].items()} for r in (first, second)]
    assert recalls[0] == recalls[1]


def test_train_starts_from_the_published_weights(
    entry: PublishedModel, release: Path, tiny_city_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vgloc.cli import build_parser
    from vgloc.cli.train import build_train_config
    from vgloc.training.setup import build_training_model

    argv = [
        "train",
        "cosplace",
        "--dataset",
        str(tiny_city_root),
        "--model",
        fake.NAME,
        "--checkpoint",
        str(release),
    ]
    assert main([*argv, "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert f"spec: {fake.NAME}" in printed and str(release) in printed
    cfg = build_train_config(build_parser().parse_args(argv))
    model = build_training_model(cfg, torch.device("cpu"))
    ref = fake.reference_model().state_dict()
    assert model.spec == fake.SPEC
    assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())
