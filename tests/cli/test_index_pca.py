"""``vgloc index build --pca``: compact descriptors stored in the index and applied to located photos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vgloc.cli import main
from vgloc.index import GeoIndex

COMMON = ["--model", "tiny+gem", "--resize", "native", "--workers", "0", "--no-progress"]


def test_pca_index_locates_database_photos_at_themselves(
    tiny_city_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db"
    db.mkdir()
    files = sorted((tiny_city_root / "images" / "test" / "database").glob("*.jpg"))[:12]
    for f in files:
        (db / f.name).symlink_to(f)
    run = ["--run-dir", str(tmp_path / "run")]
    idx = tmp_path / "pca.idx"
    assert main(["index", "build", "--images", str(db), "--out", str(idx), "--pca", "8", *COMMON, *run]) == 0
    gi = GeoIndex.load(idx)
    assert gi.pca_dim == 8 and gi.dim == 32  # tiny+gem gives 32-d descriptors; 8 are stored
    assert gi.descriptors is not None and gi.descriptors.shape == (12, 8)

    capsys.readouterr()
    photos = [str(db / files[i].name) for i in (0, 5)]
    assert main(["locate", *photos, "--index", str(idx), "--top-k", "1", "--json", *run]) == 0
    preds = json.loads(capsys.readouterr().out)
    assert [Path(p["matches"][0]["path"]).name for p in preds] == [files[0].name, files[5].name]


def test_pca_not_below_the_dimension_is_refused_before_describing(
    tiny_city_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tiny_city_root / "images" / "test" / "database"
    out = tmp_path / "x.idx"
    run = ["--run-dir", str(tmp_path / "run")]
    assert main(["index", "build", "--images", str(db), "--out", str(out), "--pca", "32", *COMMON, *run]) != 0
    assert "--pca 32 must be smaller than the model's descriptor dimension 32" in capsys.readouterr().err
    assert not out.exists()
