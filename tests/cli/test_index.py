"""``vgloc index add``: only new images are described, appended atomically, same describer only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vgloc.cli import main
from vgloc.index import GeoIndex, IndexMismatchError
from vgloc.localizer import add_to_index

COMMON = ["--resize", "native", "--no-progress"]


def _first_half(db_dir: Path, dest: Path) -> list[Path]:
    """A folder of links to the first half of the database images (same resolved paths)."""
    dest.mkdir()
    files = sorted(db_dir.glob("*.jpg"))
    for f in files[: len(files) // 2]:
        (dest / f.name).symlink_to(f)
    return files


def _index_of_first_half(tiny_city_root: Path, tmp_path: Path) -> tuple[Path, list[Path], Path, list[str]]:
    """``vgloc index build`` over the first half of the tiny city's test database.

    Returns ``(database folder, all its files, index dir, --run-dir args)``.
    """
    db_dir = tiny_city_root / "images" / "test" / "database"
    files = _first_half(db_dir, tmp_path / "half")
    idx = tmp_path / "city.idx"
    run = ["--run-dir", str(tmp_path / "run")]
    build = ["index", "build", "--images", str(tmp_path / "half"), "--model", "tiny+gem", "--out", str(idx)]
    assert main([*build, *COMMON, *run]) == 0
    return db_dir, files, idx, run


def test_index_add_describes_only_new_images(
    tiny_city_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db_dir, files, idx, run = _index_of_first_half(tiny_city_root, tmp_path)
    before = GeoIndex.load(idx)
    assert len(before.images) == len(files) // 2
    assert before.metadata.faiss_factory == "Flat"  # "auto" on a small set
    assert before.metadata.extra["index_choice"]["requested"] == "auto"

    capsys.readouterr()
    assert main(["index", "add", "--index", str(idx), "--images", str(db_dir), *COMMON, *run]) == 0
    assert f"added {len(files) - len(files) // 2} images" in capsys.readouterr().out
    after = GeoIndex.load(idx)
    assert len(after.images) == len(files)
    assert {p.resolve() for p in after.images.paths} == {f.resolve() for f in files}
    assert sorted(p.name for p in idx.parent.iterdir()) == ["city.idx", "half", "run"]  # no staging left
    # The old rows are untouched; each new row is found first by its own descriptor.
    n_old = len(before.images)
    assert before.descriptors is not None and after.descriptors is not None
    np.testing.assert_array_equal(after.descriptors[:n_old], before.descriptors)
    _, ids = after.search(after.descriptors[n_old:], 1)
    assert ids[:, 0].tolist() == list(range(n_old, len(files)))
    # The index's stored model (weights) is carried over: the same describer reloads.
    assert after.metadata.files.keys() == before.metadata.files.keys()

    # A second add finds nothing new.
    assert main(["index", "add", "--index", str(idx), "--images", str(db_dir), *COMMON, *run]) == 0
    assert "added 0 images" in capsys.readouterr().out
    assert len(GeoIndex.load(idx).images) == len(files)


def test_index_add_refuses_another_describer(tiny_city_root: Path, tmp_path: Path) -> None:
    db_dir, _files, idx, _run = _index_of_first_half(tiny_city_root, tmp_path)
    with pytest.raises(IndexMismatchError):
        add_to_index(idx, db_dir, model="tiny+netvlad8")
    ckpt = tmp_path / "other.pt"
    ckpt.write_bytes(b"not the index's weights")
    with pytest.raises(IndexMismatchError, match="checkpoint"):
        add_to_index(idx, db_dir, checkpoint=ckpt)
    assert len(GeoIndex.load(idx).images) == 32
