"""City styles: the original city is untouched by default; styles change what they say and are learnable."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vgloc.data.synthetic.citymap import CityMap
from vgloc.data.synthetic.generate import _params
from vgloc.data.synthetic.render import render_view
from vgloc.data.synthetic.style import CityStyle, city_textures
from vgloc.data.synthetic.textures import get_textures
from vgloc.data.synthetic.world import WORLD_STYLES, place_style

PARIS = (48.85, 2.35)


def _views(city: CityMap, n: int, size: tuple[int, int] = (48, 64)) -> list[np.ndarray]:
    poses = city.database_poses("train")
    idx = np.linspace(0, len(poses) - 1, n).astype(int)
    return [
        np.asarray(render_view(city, poses.east[i], poses.north[i], poses.heading[i], size=size, seed=j))
        for j, i in enumerate(idx)
    ]


def test_the_default_style_is_the_original_city_draw_for_draw_and_pixel_for_pixel() -> None:
    plain = CityMap.generate(5, "tiny", PARIS)
    default = CityMap.generate(5, "tiny", PARIS, style=CityStyle())
    for key, arr in plain.bld.items():
        np.testing.assert_array_equal(arr, default.bld[key], err_msg=key)
    np.testing.assert_array_equal(plain.trees, default.trees)
    assert city_textures(default) is get_textures(5)
    for a, b in zip(_views(plain, 3), _views(default, 3), strict=True):
        np.testing.assert_array_equal(a, b)
    # the dataset parameters of an unstyled city do not mention styles (files and reuse unchanged)
    args = ("tiny", 5, PARIS, (48, 64), 80.0, 256, 96.0)
    assert "style" not in _params(*args) and _params(*args) == _params(*args, None)
    assert _params(*args, CityStyle(tree_rate=0.1))["style"]["tree_rate"] == 0.1


def test_a_style_changes_facades_heights_and_trees_but_not_the_street_plan() -> None:
    plain = CityMap.generate(5, "tiny", PARIS)
    style = CityStyle(walls=(1,), windows=(4,), glass_share=0.0, floors_shift=4.0, tree_rate=0.0)
    styled = CityMap.generate(5, "tiny", PARIS, style=style)
    np.testing.assert_array_equal(plain.col_lo, styled.col_lo)  # same draws: same streets
    assert set(styled.bld["win_design"].tolist()) == {4}  # no glass, one window design
    red_brick = np.array([0.62, 0.30, 0.22])
    ratio = styled.bld["wall_rgb"] / red_brick
    assert np.all(np.abs(ratio - ratio.mean(1, keepdims=True)) < 1e-5)  # only shades of red brick
    assert styled.bld["floors"].mean() > plain.bld["floors"].mean() + 2
    assert len(styled.trees) < len(plain.trees)  # park trees only, no tree-lined streets


def test_world_styles_separate_by_a_colour_histogram_classifier() -> None:
    """Same seed (same street plan) for every place: only the style tells the cities apart."""

    def hist(img: np.ndarray) -> np.ndarray:
        q = (img // 64).reshape(-1, 3).astype(np.int64)
        h = np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64).astype(np.float64)
        return h / h.sum()

    feats = {
        name: np.array([hist(v) for v in _views(CityMap.generate(0, "tiny", PARIS, style), 16)])
        for name, style in WORLD_STYLES.items()
    }
    centroids = np.stack([f[0::2].mean(0) for f in feats.values()])  # even views train, odd views test
    hits = [
        int(np.argmin(((centroids - x) ** 2).sum(1))) == c
        for c, f in enumerate(feats.values())
        for x in f[1::2]
    ]
    assert np.mean(hits) >= 0.45  # chance: 1/6 (and exactly that without styles: the cities are equal)


def test_styles_are_checked_and_round_trip() -> None:
    with pytest.raises(ValueError, match="walls"):
        CityStyle(walls=(14,))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        CityStyle(tree_rate=1.5)
    drawn = place_style("atlantis", 0, 3)
    assert drawn == place_style("atlantis", 0, 3) != place_style("atlantis", 1, 3)
    assert (
        CityStyle.from_dict(drawn.to_dict()) == drawn and place_style("tokyo", 0, 0) is WORLD_STYLES["tokyo"]
    )
    assert dataclasses.asdict(CityStyle()) == dataclasses.asdict(CityStyle.from_dict(CityStyle().to_dict()))
