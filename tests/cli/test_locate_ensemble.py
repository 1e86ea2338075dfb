"""``vgloc locate --index A --index B --ensemble ...``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vgloc.cli import main


def test_locate_with_two_indexes(
    tiny_city_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vgloc.data import load_split
    from vgloc.describers import ExtractionOptions
    from vgloc.indexing import build_index

    split = load_split(tiny_city_root, "test")
    db = split.database.subset(list(range(16)))
    small = ExtractionOptions(image_size=(64, 96), progress=False, num_workers=0)
    for m in ("tiny+gem", "tiny+gem+fc32"):
        build_index(db, m, out=tmp_path / m, options=small)
    photo = str(split.queries["queries"].paths[0])
    args = [
        "locate",
        photo,
        "--index",
        str(tmp_path / "tiny+gem"),
        "--index",
        str(tmp_path / "tiny+gem+fc32"),
    ]
    assert main([*args, "--ensemble", "sif", "--ensemble-lead", "2", "--top-k", "4", "--json"]) == 0
    [pred] = json.loads(capsys.readouterr().out)
    assert len(pred["matches"]) == 4 and {m["path"] for m in pred["matches"]} <= {str(p) for p in db.paths}
    assert main(args) != 0  # two indexes without --ensemble
    assert "add --ensemble" in capsys.readouterr().err
