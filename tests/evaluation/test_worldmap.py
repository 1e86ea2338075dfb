"""The report's world map: inline SVG of predictions against truth, only for world-scale data."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import vgloc
from vgloc.describers import ExtractionOptions
from vgloc.evaluation.worldmap import ERROR_COLOURS, world_map_svg

from ._geocell_run import write_world

OPTIONS = ExtractionOptions(image_size=(48, 64), batch_size=8, precision="fp32", progress=False)


def _lines(svg: str) -> list[tuple[float, float, float, float, str]]:
    found = re.findall(
        r"<line class='err' x1='([\d.-]+)' y1='([\d.-]+)' x2='([\d.-]+)' y2='([\d.-]+)' stroke='(#\w+)'", svg
    )
    return [(float(a), float(b), float(c), float(d), col) for a, b, c, d, col in found]


def test_points_are_equirectangular_and_lines_coloured_by_error() -> None:
    true = np.array([[48.85, 2.35], [-33.87, 151.21], [0.0, 0.0]])
    pred = np.array([[48.9, 2.4], [35.68, 139.69], [np.nan, np.nan]])
    svg = world_map_svg(true, pred, np.array([6.0, 7800.0, np.nan]), scale=2.0)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    lines = _lines(svg)
    assert len(lines) == 2  # the query without a prediction has no line
    (x0, y0, _, _, c0), (_, _, x3, y3, c1) = lines
    assert (x0, y0) == pytest.approx(((2.35 + 180) * 2, (90 - 48.85) * 2), abs=0.06)
    assert (x3, y3) == pytest.approx(((139.69 + 180) * 2, (90 - 35.68) * 2), abs=0.06)
    assert c0 == ERROR_COLOURS[0][1] and c1 == ERROR_COLOURS[-1][1]
    assert svg.count("class='true'") == 3


def test_a_line_across_the_antimeridian_goes_the_short_way_in_two_pieces() -> None:
    svg = world_map_svg(np.array([[-17.7, 178.0]]), np.array([[-17.7, -178.0]]), np.array([420.0]), scale=1.0)
    (a, b) = _lines(svg)
    assert abs(a[2] - a[0]) == pytest.approx(4.0, abs=0.2) and abs(b[2] - b[0]) == pytest.approx(4.0, abs=0.2)
    assert {round(a[0]), round(b[0])} == {358, -2}  # from Fiji rightwards, and its copy one width back


def test_the_report_draws_the_world_map_for_world_data(tmp_path: Path) -> None:
    db, q = write_world(tmp_path / "world", per_place=2, queries_per_place=1)
    vgloc.evaluate(database=db, queries=q, model="tiny+gem", options=OPTIONS, out_dir=tmp_path / "w")
    page = (tmp_path / "w" / "report.html").read_text()
    assert page.count("<svg class='worldmap'") == 1 and page.count("class='err'") == 4


def test_the_report_has_no_world_map_for_a_city(tmp_path: Path) -> None:
    city = [(48.85, 2.35), (48.86, 2.36)]  # two places 1 km apart: one UTM zone, planar
    db, q = write_world(tmp_path / "city", per_place=2, queries_per_place=1, places=city, spread_deg=0.001)
    vgloc.evaluate(database=db, queries=q, model="tiny+gem", options=OPTIONS, out_dir=tmp_path / "c")
    page = (tmp_path / "c" / "report.html").read_text()
    assert "<h2>Recall@N" in page and "worldmap" not in page
