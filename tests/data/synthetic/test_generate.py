"""generate_city: layout, file names, positives, domains, determinism, reuse/resume, contact sheet."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vgloc.data.synthetic import (
    FOLDERS,
    QUERY_FOLDERS,
    SPLITS,
    CityMap,
    contact_sheet,
    generate_city,
    render_view,
)
from vgloc.data.synthetic.generate import JPEG_QUALITY, MARKER, plan_city
from vgloc.data.vgnames import parse_vg_name
from vgloc.geo import positives_within

from .conftest import MICRO, TINY_SECONDS


def _files(root: Path, split: str, folder: str) -> list[Path]:
    return sorted((root / "images" / split / folder).glob("*.jpg"))


def _xy(paths: list[Path]) -> np.ndarray:
    return np.array([[parse_vg_name(p).utm_east, parse_vg_name(p).utm_north] for p in paths])


def _load(p: Path) -> np.ndarray:
    return np.asarray(Image.open(p).convert("RGB"), dtype=np.float64)


def test_layout_and_city_json(tiny_root: Path) -> None:
    meta = json.loads((tiny_root / "city.json").read_text())
    assert meta["params"]["seed"] == 0 and meta["params"]["size"] == "tiny"
    assert not (tiny_root / MARKER).exists()
    for split in SPLITS:
        for folder in FOLDERS:
            assert len(_files(tiny_root, split, folder)) == meta["counts"][f"{split}/{folder}"] > 0
    n_db = sum(meta["counts"][f"{s}/database"] for s in SPLITS)
    assert 100 <= n_db <= 300
    with Image.open(_files(tiny_root, "train", "database")[0]) as im:
        assert im.size == (256, 192)


def test_names_parse_back_to_the_rendered_poses(tiny_root: Path, tiny_city: CityMap) -> None:
    for split, folder, recs in plan_city(tiny_city):
        files = {p.name for p in _files(tiny_root, split, folder)}
        assert files == {r["name"] for r in recs}
        for r in recs:
            n = parse_vg_name(r["name"])
            assert (n.utm_east, n.utm_north) == pytest.approx(r["pose"][:2], abs=0.005)
            assert n.zone_number == 33 and n.zone_letter == "U"
            lat, lon = tiny_city.frame.to_latlon(np.array([[n.utm_east, n.utm_north]]))
            assert (n.lat, n.lon) == pytest.approx((lat[0], lon[0]), abs=1e-6)
            if r["kind"] == "view":
                assert (n.heading, n.pitch, n.height) == pytest.approx(r["pose"][2:], abs=0.005)


def test_database_images_rerender_from_their_names(tiny_root: Path, tiny_city: CityMap) -> None:
    for p in _files(tiny_root, "val", "database")[::9]:
        n = parse_vg_name(p)
        img = render_view(
            tiny_city, n.utm_east, n.utm_north, n.heading, n.pitch, domain="database", camera_height=n.height
        )
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=JPEG_QUALITY)  # type: ignore[arg-type]
        assert buf.getvalue() == p.read_bytes()


def test_query_domains_share_poses_and_every_day_query_has_a_positive(tiny_root: Path) -> None:
    for split in SPLITS:
        day = _files(tiny_root, split, "queries")
        ids = [parse_vg_name(p).pano_id for p in day]
        for folder in QUERY_FOLDERS:
            other = {parse_vg_name(p).pano_id: p for p in _files(tiny_root, split, folder)}
            assert sorted(other) == sorted(ids)
            for p in day:
                a, b = parse_vg_name(p), parse_vg_name(other[parse_vg_name(p).pano_id])
                assert (a.utm_east, a.utm_north, a.heading, a.pitch) == (
                    b.utm_east,
                    b.utm_north,
                    b.heading,
                    b.pitch,
                )
        pos = positives_within(_xy(_files(tiny_root, split, "database")), _xy(day), 25.0)
        assert all(len(x) for x in pos)


def test_splits_are_disjoint_on_disk(tiny_root: Path) -> None:
    train, test = _xy(_files(tiny_root, "train", "database")), _xy(_files(tiny_root, "test", "database"))
    assert np.sqrt(((train[:, None] - test[None]) ** 2).sum(-1)).min() > 60.0


def test_domains_on_disk(tiny_root: Path) -> None:
    lum = np.array([0.299, 0.587, 0.114])
    day, night, fog, occ = (
        [_load(p) for p in _files(tiny_root, "train", f)]
        for f in ("queries", "queries_night", "queries_fog", "queries_occluded")
    )
    assert np.mean([n @ lum for n in night]) < 0.5 * np.mean([d @ lum for d in day])
    assert np.mean([(f @ lum).std() for f in fog]) < 0.8 * np.mean([(d @ lum).std() for d in day])
    changed = [float((np.abs(o - d).max(-1) > 40).mean()) for o, d in zip(occ, day, strict=True)]
    assert all(c < 0.7 for c in changed) and 0.02 < np.mean(changed) < 0.5


def test_tiny_city_is_fast(tiny_root: Path) -> None:
    # A few seconds on one laptop core (~350 images); the bound is generous for a busy CI machine.
    assert TINY_SECONDS and TINY_SECONDS[0] < 60.0


def test_same_seed_gives_identical_bytes_whatever_the_workers(tmp_path: Path) -> None:
    a = generate_city(tmp_path / "a", MICRO, 11, progress=False, workers=1)
    b = generate_city(tmp_path / "b", MICRO, 11, progress=False, workers=2)
    fa = sorted(p.relative_to(a) for p in (a / "images").rglob("*.jpg"))
    fb = sorted(p.relative_to(b) for p in (b / "images").rglob("*.jpg"))
    assert fa == fb and len(fa) > 20
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in fa)
    other = {r["name"] for _, _, recs in plan_city(CityMap.generate(12, MICRO)) for r in recs}
    assert other != {f.name for f in fa}


def test_reuse_resume_and_regenerate(tmp_path: Path) -> None:
    root = generate_city(tmp_path / "r", MICRO, 1, progress=False)
    files = sorted((root / "images").rglob("*.jpg"))
    original = {p: p.read_bytes() for p in files}
    stamp = (root / "city.json").stat().st_mtime_ns
    assert generate_city(root, MICRO, 1, progress=False) == root  # reused, untouched
    assert (root / "city.json").stat().st_mtime_ns == stamp
    # An interrupted run: city.json missing, marker present, some images missing.
    meta = json.loads((root / "city.json").read_text())
    (root / "city.json").unlink()
    (root / MARKER).write_text(json.dumps({"params": meta["params"]}))
    for p in files[::3]:
        p.unlink()
    keep_mtime = files[1].stat().st_mtime_ns
    generate_city(root, MICRO, 1, progress=False)
    assert files[1].stat().st_mtime_ns == keep_mtime  # resumed, not redone
    assert all(p.read_bytes() == b for p, b in original.items())
    assert (root / "city.json").exists() and not (root / MARKER).exists()
    # A file lost after completion makes the city incomplete: regenerated.
    files[2].unlink()
    generate_city(root, MICRO, 1, progress=False)
    assert files[2].read_bytes() == original[files[2]]
    # Other parameters: the old city is replaced.
    generate_city(root, MICRO, 2, progress=False)
    assert json.loads((root / "city.json").read_text())["params"]["seed"] == 2
    assert not files[0].exists() or files[0].read_bytes() != original[files[0]]


def test_refuses_a_foreign_directory_and_bad_arguments(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not a vgloc synthetic city"):
        generate_city(tmp_path / "mine", MICRO, 0, progress=False)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"
    with pytest.raises(ValueError, match="workers"):
        generate_city(tmp_path / "x", MICRO, 0, workers=0)
    with pytest.raises(ValueError, match="gigantic"):
        generate_city(tmp_path / "x", "gigantic")
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        generate_city(tmp_path / "x", MICRO, 0, image_size=(4, 4))
    assert not os.path.exists(tmp_path / "x" / "city.json")


def test_contact_sheet(tiny_root: Path, tmp_path: Path) -> None:
    out = contact_sheet(tiny_root, tmp_path / "sheet.png", split="test", rows=3)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 6 * 256 and im.size[1] > 3 * 192
    with pytest.raises(FileNotFoundError):
        contact_sheet(tmp_path, tmp_path / "x.png")
