"""Image validation: truncated, corrupt and fake images are all found and reported together."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.helpers import vg_file_name, write_image
from vgloc.data import DataError, load_image_set, validate_images
from vgloc.data.validation import check_image, format_problems


def _truncated(path: Path, source: Path) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


@pytest.fixture
def noisy_jpeg(tmp_path: Path) -> Path:
    # A noise image so that the entropy-coded data is long enough to cut in the middle.
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    path = tmp_path / "noise.jpg"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path, quality=95)
    return path


def test_good_images_pass(tmp_path: Path) -> None:
    paths = [write_image(tmp_path / f"{i}{ext}") for i, ext in enumerate([".jpg", ".png", ".bmp", ".tif"])]
    validate_images(paths, progress=False)
    assert all(check_image(p) is None for p in paths)


def test_truncated_jpeg_is_caught(tmp_path: Path, noisy_jpeg: Path) -> None:
    bad = _truncated(tmp_path / "cut.jpg", noisy_jpeg)
    reason = check_image(bad)
    assert reason is not None and "truncated" in reason


def test_all_bad_files_in_one_error(tmp_path: Path, noisy_jpeg: Path) -> None:
    good = write_image(tmp_path / "good.jpg")
    cut = _truncated(tmp_path / "cut.jpg", noisy_jpeg)
    fake = tmp_path / "fake.png"
    fake.write_text("hello")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.jpg"
    with pytest.raises(DataError) as info:
        validate_images([good, cut, fake, empty, missing], workers=2, progress=False)
    err = info.value
    assert str(err).startswith("image validation: 4 bad images:")
    assert [p.split(":")[0] for p in err.problems] == [str(cut), str(fake), str(empty), str(missing)]
    assert "file not found" in err.problems[3]


def test_workers_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="workers"):
        validate_images([write_image(tmp_path / "a.jpg")], workers=0, progress=False)


def test_load_image_set_validates_and_reports_with_name_errors(tmp_path: Path, noisy_jpeg: Path) -> None:
    root = tmp_path / "db"
    good = vg_file_name(40.44, -80.0)
    write_image(root / good)
    cut = vg_file_name(40.45, -80.0)
    _truncated(root / cut, noisy_jpeg)
    (root / "@bad@1@.jpg").write_bytes(b"junk")
    with pytest.raises(DataError) as info:
        load_image_set(root, progress=False)
    msg = str(info.value)
    # One error: the bad name, its unreadable content, and the truncated image.
    assert "@bad@1@.jpg: field UTM_east='bad' is not a number" in msg
    assert "@bad@1@.jpg: not an image" in msg
    assert f"{cut}: corrupt or truncated" in msg
    (root / "@bad@1@.jpg").unlink()
    # validate=False does not decode images: the truncated one loads.
    assert len(load_image_set(root, validate=False, progress=False)) == 2


def test_format_problems_limits_the_list() -> None:
    msg = format_problems("header", [f"p{i}" for i in range(23)], limit=20)
    lines = msg.splitlines()
    assert lines[0] == "header:" and lines[20] == "  - p19"
    assert lines[-1] == "  ... and 3 more (23 in total)"
    assert format_problems("h", ["a"]) == "h:\n  - a"
