"""The city map: determinism, split districts, query placement, sizes, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from vgloc.data.synthetic import SIZES, SPLITS, CityMap
from vgloc.data.synthetic.citymap import MIN_PARK_WIDTH_M
from vgloc.geo import GeoError, positives_within


def _db_xy(city: CityMap, split: str) -> np.ndarray:
    p = city.database_poses(split)
    return np.stack([p.east, p.north], 1)


def test_same_seed_same_city_other_seed_other_city() -> None:
    a, b, c = CityMap.generate(3, "tiny"), CityMap.generate(3, "tiny"), CityMap.generate(4, "tiny")
    for k in a.bld:
        np.testing.assert_array_equal(a.bld[k], b.bld[k])
    np.testing.assert_array_equal(a.origin_utm, b.origin_utm)
    assert len(a.bld["x0"]) != len(c.bld["x0"]) or not np.array_equal(a.bld["x0"], c.bld["x0"])


def test_buildings_vary_and_repeat(tiny_city: CityMap) -> None:
    b = tiny_city.bld
    assert len(b["x0"]) > 50
    assert np.ptp(b["height"]) > 10.0  # varied heights
    assert len(np.unique(b["sign"])) == len(b["sign"])  # every shop sign differs
    templates, counts = np.unique(b["template"], return_counts=True)
    assert len(templates) > 10 and counts.max() >= 3  # varied looks, but styles recur
    # Footprints never overlap (the ray caster relies on it).
    x0, x1, y0, y1 = b["x0"], b["x1"], b["y0"], b["y1"]
    ov = (np.minimum(x1[:, None], x1[None]) - np.maximum(x0[:, None], x0[None]) > 1e-6) & (
        np.minimum(y1[:, None], y1[None]) - np.maximum(y0[:, None], y0[None]) > 1e-6
    )
    np.fill_diagonal(ov, False)
    assert not ov.any()


def test_city_is_anchored_in_one_utm_zone(tiny_city: CityMap) -> None:
    lat, lon = tiny_city.frame.to_latlon(tiny_city.origin_utm[None] + np.array(tiny_city.extent)[None] / 2)
    assert abs(lat[0] - 55.7047) < 1e-3 and abs(lon[0] - 13.1910) < 1e-3
    assert tiny_city.frame.zone_number == 33 and tiny_city.zone_letter == "U"


def test_splits_are_geographically_disjoint(tiny_city: CityMap) -> None:
    xy = {s: _db_xy(tiny_city, s) for s in SPLITS}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            d = np.sqrt(((xy[a][:, None] - xy[b][None]) ** 2).sum(-1))
            assert d.min() > MIN_PARK_WIDTH_M, (a, b, d.min())


def test_every_query_has_a_positive_and_is_off_the_database_path(tiny_city: CityMap) -> None:
    for split in SPLITS:
        q = tiny_city.query_poses(split)
        qxy = np.stack([q.east, q.north], 1)
        pos = positives_within(_db_xy(tiny_city, split), qxy, 25.0)
        assert all(len(p) > 0 for p in pos)
        d = np.sqrt(((qxy[:, None] - _db_xy(tiny_city, split)[None]) ** 2).sum(-1)).min(1)
        assert d.min() >= 2.0
        local = tiny_city.utm_to_local(q.east, q.north)
        assert not tiny_city.inside_building(local[:, 0], local[:, 1]).any()
        assert ((q.heading >= 0) & (q.heading < 360)).all() and (np.abs(q.pitch) <= 8).all()


def test_database_views_are_panoramas_of_evenly_spaced_headings(tiny_city: CityMap) -> None:
    p = tiny_city.database_poses("train")
    k = tiny_city.size.db_headings
    assert len(p) % k == 0
    h = p.heading.reshape(-1, k)
    np.testing.assert_allclose(np.diff(np.sort(h, 1), axis=1), 360.0 / k, atol=0.02)
    assert (p.east.reshape(-1, k) == p.east.reshape(-1, k)[:, :1]).all()


@pytest.mark.parametrize(("size", "lo", "hi"), [("tiny", 100, 300), ("small", 1200, 3000)])
def test_database_counts_of_sizes(size: str, lo: int, hi: int) -> None:
    city = CityMap.generate(0, size)
    n = sum(len(city.database_poses(s)) for s in SPLITS)
    assert lo <= n <= hi


@pytest.mark.slow
def test_large_has_at_least_20k_database_images() -> None:
    for seed in (0, 1):
        city = CityMap.generate(seed, "large")
        assert sum(len(city.database_poses(s)) for s in SPLITS) >= 20_000
    medium = CityMap.generate(0, "medium")
    assert 8_000 <= sum(len(medium.database_poses(s)) for s in SPLITS) <= 13_000


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="huge"):
        CityMap.generate(0, "huge")
    with pytest.raises(ValueError, match="-1"):
        CityMap.generate(-1, "tiny")
    with pytest.raises(GeoError, match="95"):
        CityMap.generate(0, "tiny", anchor=(95.0, 0.0))
    with pytest.raises(ValueError, match="mars"):
        CityMap.generate(0, "tiny").streets("mars")
    assert set(SIZES) == {"tiny", "small", "medium", "large"}
