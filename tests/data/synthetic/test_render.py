"""The renderer: geometry (depth), domains (night, fog, occlusion), aerial tiles, bad input."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from vgloc.data.synthetic import CityMap, Conditions, render_aerial, render_view
from vgloc.data.synthetic.render import _face_light


def _lum(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _views(city: CityMap, domain: str, n: int = 6, **kw: object) -> list[np.ndarray]:
    q = city.query_poses("train")
    out = []
    for i in range(n):
        img = render_view(
            city,
            q.east[i],
            q.north[i],
            q.heading[i],
            q.pitch[i],
            domain=domain,
            seed=[0, i],
            camera_height=q.height[i],
            **kw,
        )  # type: ignore[arg-type]
        out.append(img)  # type: ignore[arg-type]
    return out


def test_shape_dtype_and_determinism(tiny_city: CityMap) -> None:
    q = tiny_city.query_poses("val")
    a = render_view(tiny_city, q.east[0], q.north[0], q.heading[0], size=(48, 64), domain="night", seed=5)
    b = render_view(tiny_city, q.east[0], q.north[0], q.heading[0], size=(48, 64), domain="night", seed=5)
    assert isinstance(a, np.ndarray) and a.shape == (48, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)


def test_depth_matches_the_wall_the_centre_ray_hits(tiny_city: CityMap) -> None:
    p = tiny_city.database_poses("train")
    checked = 0
    for i in range(0, len(p), 7):
        _img, depth = render_view(
            tiny_city,
            p.east[i],
            p.north[i],
            p.heading[i],
            size=(96, 128),
            domain="database",
            return_depth=True,
        )
        x, y = tiny_city.utm_to_local(p.east[i], p.north[i])
        wall = tiny_city.wall_distance(float(x), float(y), float(p.heading[i]))
        # Horizon row, just above the centre; a tree or lamp in front may make it nearer.
        d = float(depth[47, 63:65].max())
        assert d <= wall * 1.01 + 0.05
        if np.isfinite(wall) and wall < 300:
            checked += abs(d - wall) < 0.01 * wall + 0.05
    assert checked >= 3


def test_sky_is_above_and_ground_below_the_horizon(tiny_city: CityMap) -> None:
    p = tiny_city.database_poses("test")
    _, depth = render_view(
        tiny_city,
        p.east[0],
        p.north[0],
        p.heading[0],
        0.0,
        size=(96, 128),
        domain="database",
        return_depth=True,
    )
    assert np.isfinite(depth[48:]).all()  # below the horizon: ground or walls
    # Looking 20 degrees up moves the horizon down: more rows see the ground's far end.
    _, d_up = render_view(
        tiny_city,
        p.east[0],
        p.north[0],
        p.heading[0],
        20.0,
        size=(96, 128),
        domain="database",
        return_depth=True,
    )
    assert np.isinf(d_up).sum() >= np.isinf(depth).sum()


def test_night_is_darker_than_day(tiny_city: CityMap) -> None:
    day = np.mean([_lum(v).mean() for v in _views(tiny_city, "day")])
    night = np.mean([_lum(v).mean() for v in _views(tiny_city, "night")])
    assert night < 0.5 * day


def test_fog_reduces_contrast_more_with_distance(tiny_city: CityMap) -> None:
    q = tiny_city.query_poses("train")
    cond = Conditions.sample("day", 1)
    ratios = []
    for i in range(6):
        args = (tiny_city, q.east[i], q.north[i], q.heading[i], q.pitch[i])
        day, depth = render_view(*args, conditions=cond, return_depth=True)
        fog = render_view(*args, conditions=replace(cond, fog_visibility_m=40.0))
        ratios.append(_lum(fog).std() / _lum(day).std())
        fog_rgb = np.array(cond.fog_rgb) * 255 * cond.exposure
        near, far = depth < 8, (depth > 80)
        if near.sum() > 50 and far.sum() > 50:
            dist = np.abs(fog.astype(float) - fog_rgb).mean(-1)
            assert dist[far].mean() < dist[near].mean()
    # Every view loses contrast; a view of a near wall only a little, a street view a lot.
    assert max(ratios) < 1.0 and np.mean(ratios) < 0.75, ratios


def test_occluders_cover_a_bounded_part_and_leave_the_rest(tiny_city: CityMap) -> None:
    q = tiny_city.query_poses("test")
    fracs = []
    for i in range(len(q)):
        occ = Conditions.sample("occluded", [7, i])
        day = Conditions.sample("day", [7, i])
        assert occ.occluders and {**occ.__dict__, "occluders": ()} == day.__dict__  # same lighting
        args = (tiny_city, q.east[i], q.north[i], q.heading[i], q.pitch[i])
        a = render_view(*args, conditions=day)
        b = render_view(*args, conditions=occ)
        fracs.append(float((a != b).any(-1).mean()))
    assert all(0.0 < f < 0.7 for f in fracs), fracs
    assert 0.03 < float(np.mean(fracs)) < 0.5


def test_conditions_of_domains(tiny_city: CityMap) -> None:
    assert Conditions.sample("database", 1) == Conditions.sample("database", 2) == Conditions()
    assert Conditions.sample("day", 1) != Conditions.sample("day", 2)
    assert Conditions.sample("night", 3).night and np.isfinite(Conditions.sample("fog", 3).fog_visibility_m)
    light = _face_light(Conditions(sun_azimuth=180.0, sun_elevation=30.0, cloud_cover=0.0))
    assert light[0] > light[1]  # the sun in the south lights south faces


def test_aerial_tiles_show_roofs_and_parks(tiny_city: CityMap) -> None:
    b = tiny_city.bld
    i = int(np.argmax((b["x1"] - b["x0"]) * (b["y1"] - b["y0"])))
    cx, cy = tiny_city.local_to_utm(
        np.array([[(b["x0"][i] + b["x1"][i]) / 2, (b["y0"][i] + b["y1"][i]) / 2]])
    )[0]
    tile = render_aerial(tiny_city, cx, cy, extent_m=16.0, size=32)
    assert tile.shape == (32, 32, 3)
    centre = tile[12:20, 12:20].reshape(-1, 3).astype(float)
    expect = b["roof_rgb"][i] * _face_light(Conditions())[4] * 255
    assert np.median(np.abs(centre - expect).max(-1)) < 40  # the roof's colour (furniture aside)
    park_c = int(np.nonzero(tiny_city.block_type[:, 1] == 1)[0][0])
    px = (tiny_city.col_lo[park_c] + tiny_city.col_hi[park_c]) / 2 + 10
    py = (tiny_city.row_lo[1] + tiny_city.row_hi[1]) / 2 + 10
    park = render_aerial(tiny_city, *tiny_city.local_to_utm(np.array([[px, py]]))[0], extent_m=8.0, size=16)
    g = park.reshape(-1, 3).mean(0)
    assert g[1] > g[0] and g[1] > g[2]  # grass


def test_bad_input_is_named(tiny_city: CityMap) -> None:
    e, n = tiny_city.origin_utm + 50
    with pytest.raises(ValueError, match="rain"):
        render_view(tiny_city, e, n, 0.0, domain="rain")
    with pytest.raises(ValueError, match="200"):
        render_view(tiny_city, e, n, 0.0, fov_deg=200)
    with pytest.raises(ValueError, match="60"):
        render_view(tiny_city, e, n, 0.0, pitch_deg=60)
    with pytest.raises(ValueError, match=r"\(0, 10\)"):
        render_view(tiny_city, e, n, 0.0, size=(0, 10))
    with pytest.raises(ValueError, match="nan"):
        render_view(tiny_city, e, n, float("nan"))
    with pytest.raises(ValueError, match="-5"):
        render_aerial(tiny_city, e, n, extent_m=-5)
