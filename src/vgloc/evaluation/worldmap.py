"""A world map of predicted against true positions, as inline SVG (the report stays one offline file).

Equirectangular (plate carree): x = longitude, y = latitude, 2 px per degree by
default. Each query is a line from its true position (blue dot) to its prediction
(a cross coloured by the error: within 25 km green, within 750 km orange, further
red, the km thresholds of city and country level). A line whose shorter way crosses
the antimeridian is drawn that way, in two pieces clipped at the map's edges. The
database is drawn as grey dots (a seeded sample of at most ``max_database``).

There is no coastline: vgloc ships no geographic data and the report must work
offline; a 30-degree graticule with the equator and the antimeridian gives the frame.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from vgloc.data.records import GeoImageSet

__all__ = ["ERROR_COLOURS", "is_world_scale", "world_map_section", "world_map_svg"]

#: (upper bound in km, colour) of a prediction's cross and line; the last bound is open.
ERROR_COLOURS: tuple[tuple[float, str], ...] = ((25.0, "#1a9850"), (750.0, "#fc8d59"), (np.inf, "#d73027"))


def is_world_scale(utm: np.ndarray, latlon: np.ndarray) -> bool:
    """Whether a set is kept on the sphere (no planar UTM frame) and has coordinates to draw.

    Args:
        utm: (N, 2) UTM metres (NaN for world-wide sets).
        latlon: (N, 2) degrees.
    """
    return bool(len(latlon)) and not np.all(np.isfinite(utm)) and bool(np.all(np.isfinite(latlon)))


def world_map_section(
    name: str,
    predicted_latlon: np.ndarray | None,
    error_m: np.ndarray | None,
    database: GeoImageSet,
    queries: GeoImageSet,
) -> str:
    """The report's world map of one domain, or ``""`` unless the data is world-scale.

    Args:
        name: the domain.
        predicted_latlon: (Q, 2) predicted positions (the predictor's or the classifier's).
        error_m: (Q,) their great-circle errors in metres.
        database, queries: the evaluated sets (world-scale: no planar frame).
    """
    world = is_world_scale(database.utm, database.latlon) or is_world_scale(queries.utm, queries.latlon)
    if not world or predicted_latlon is None or error_m is None:
        return ""
    svg = world_map_svg(
        queries.latlon,
        predicted_latlon,
        np.asarray(error_m, dtype=np.float64) / 1000.0,
        database_latlon=database.latlon,
        title=f"{name}: predicted against true positions",
    )
    return (
        f"<h3>World map: {html.escape(name)}</h3><p>Each query's true position (blue) joined to its "
        "predicted position, coloured by the great-circle error; grey: database images. Equirectangular, "
        f"no coastlines.</p><div class='worldmap'>{svg}</div>"
    )


def _xy(latlon: np.ndarray, scale: float) -> np.ndarray:
    return np.stack([(latlon[:, 1] + 180.0) * scale, (90.0 - latlon[:, 0]) * scale], 1)


def world_map_svg(
    true_latlon: np.ndarray,
    pred_latlon: np.ndarray,
    error_km: np.ndarray,
    *,
    database_latlon: np.ndarray | None = None,
    title: str = "",
    scale: float = 2.0,
    max_database: int = 3000,
    seed: int = 0,
) -> str:
    """The SVG element (a string) of a world map of predictions against truth.

    Args:
        true_latlon: (Q, 2) true positions, degrees.
        pred_latlon: (Q, 2) predicted positions (NaN rows: no prediction, drawn as the truth alone).
        error_km: (Q,) great-circle error of each prediction (NaN: none).
        database_latlon: (M, 2) database positions drawn in grey, or None.
        title: the map's accessible title.
        scale: pixels per degree (the map is 360 * scale by 180 * scale).
        max_database: at most this many database dots (a seeded sample).
        seed: the sample's seed.

    Returns:
        ``<svg ...>...</svg>``.
    """
    true_latlon = np.asarray(true_latlon, dtype=np.float64).reshape(-1, 2)
    pred_latlon = np.asarray(pred_latlon, dtype=np.float64).reshape(-1, 2)
    error_km = np.asarray(error_km, dtype=np.float64).reshape(-1)
    if not len(true_latlon) == len(pred_latlon) == len(error_km):
        raise ValueError(
            f"{len(true_latlon)} true, {len(pred_latlon)} predicted positions, {len(error_km)} errors"
        )
    w, h = 360.0 * scale, 180.0 * scale
    out = [
        f"<svg class='worldmap' xmlns='http://www.w3.org/2000/svg' width='{w:.0f}' height='{h + 22:.0f}' "
        f"viewBox='0 0 {w:.0f} {h + 22:.0f}' role='img'><title>{html.escape(title)}</title>",
        f"<defs><clipPath id='wm-clip'><rect width='{w:.0f}' height='{h:.0f}'/></clipPath></defs>",
        f"<rect width='{w:.0f}' height='{h:.0f}' fill='#f4f8fb' stroke='#888'/>",
    ]
    for lon in range(-150, 180, 30):
        x = (lon + 180) * scale
        out.append(
            f"<line x1='{x:.1f}' y1='0' x2='{x:.1f}' y2='{h:.0f}' stroke='#d0d8e0' stroke-width='0.6'/>"
        )
    for lat in range(-60, 90, 30):
        y = (90 - lat) * scale
        stroke = "#9aa8b5" if lat == 0 else "#d0d8e0"
        out.append(
            f"<line x1='0' y1='{y:.1f}' x2='{w:.0f}' y2='{y:.1f}' stroke='{stroke}' stroke-width='0.6'/>"
        )
    out.append("<g clip-path='url(#wm-clip)'>")
    if database_latlon is not None and len(database_latlon):
        db = np.asarray(database_latlon, dtype=np.float64).reshape(-1, 2)
        if len(db) > max_database:
            db = db[np.sort(np.random.default_rng(seed).choice(len(db), max_database, replace=False))]
        out += [
            f"<circle class='db' cx='{x:.1f}' cy='{y:.1f}' r='1' fill='#aaa'/>" for x, y in _xy(db, scale)
        ]
    t = _xy(true_latlon, scale)
    has = np.all(np.isfinite(pred_latlon), axis=1)
    # The shorter way round: the prediction's longitude within 180 degrees of the truth's.
    plon = pred_latlon[:, 1] + 360.0 * np.round((true_latlon[:, 1] - pred_latlon[:, 1]) / 360.0)
    p = _xy(np.stack([pred_latlon[:, 0], plon], 1), scale)
    # A line moved across the edge is drawn again one map width back (the clip keeps what shows).
    wrap = -360.0 * scale * np.sign(plon - pred_latlon[:, 1])
    for q in np.flatnonzero(has):
        colour = next(c for bound, c in ERROR_COLOURS if not error_km[q] > bound)
        for shift in (0.0, wrap[q]) if wrap[q] else (0.0,):
            (x0, y0), (x1, y1) = t[q] + (shift, 0), p[q] + (shift, 0)
            out.append(
                f"<line class='err' x1='{x0:.1f}' y1='{y0:.1f}' x2='{x1:.1f}' y2='{y1:.1f}' stroke='{colour}' "
                f"stroke-width='0.8' opacity='0.7'/>"
                f"<path class='pred' d='M{x1 - 2.5:.1f},{y1 - 2.5:.1f}l5,5m0,-5l-5,5' stroke='{colour}' "
                "stroke-width='1.2'/>"
            )
    out += [f"<circle class='true' cx='{x:.1f}' cy='{y:.1f}' r='2.2' fill='#2c7bb6'/>" for x, y in t]
    out.append("</g>")
    legend = [("#2c7bb6", "true position")] + [
        (c, f"predicted, error {'<= ' + f'{b:g} km' if np.isfinite(b) else '> 750 km'}")
        for b, c in ERROR_COLOURS
    ]
    x = 4.0
    for colour, label in legend:
        out.append(
            f"<circle cx='{x + 4:.0f}' cy='{h + 12:.0f}' r='4' fill='{colour}'/>"
            f"<text x='{x + 11:.0f}' y='{h + 16:.0f}' font-size='11'>{html.escape(label)}</text>"
        )
        x += 22 + 6.2 * len(label)
    out.append("</svg>")
    return "".join(out)
