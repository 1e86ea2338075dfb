"""A Localizer on a world-wide index uses the world-scale kernel for ``kde`` unless told otherwise."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import vgloc
from vgloc.describers import ExtractionOptions
from vgloc.predict import DEFAULT_KDE, WORLD_KDE, KDEParams

OPTIONS = ExtractionOptions(image_size=(48, 64), batch_size=8, precision="fp32", progress=False)


def _index(photos: list[Path], places: list[tuple[float, float]], tmp_path: Path) -> Path:
    tmp_path.mkdir()
    with (tmp_path / "db.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "lat", "lon"])
        w.writerows([str(p), lat, lon] for p, (lat, lon) in zip(photos, places, strict=True))
    vgloc.build_index(tmp_path / "db.csv", "tiny+gem", tmp_path / "idx", options=OPTIONS)
    return tmp_path / "idx"


@pytest.mark.slow  # ~10 s: builds two small indexes
def test_kde_defaults_follow_the_index_geometry(lund_dir: Path, tmp_path: Path) -> None:
    photos = sorted(lund_dir.glob("*.jpg"))[:3]
    world = _index(photos, [(55.7, 13.2), (-33.9, 151.2), (40.7, -74.0)], tmp_path / "w")
    city = _index(photos, [(55.7, 13.2), (55.7001, 13.2), (55.7002, 13.2)], tmp_path / "c")
    with vgloc.Localizer.load(world, method="kde") as loc:
        assert loc.kde == WORLD_KDE
    mine = KDEParams(k=5, sigma_m=1_000.0)
    with vgloc.Localizer.load(world, method="kde", kde=mine) as loc:
        assert loc.kde is mine
    with vgloc.Localizer.load(city, method="kde") as loc:
        assert loc.kde == DEFAULT_KDE
