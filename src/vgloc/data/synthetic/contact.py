"""A contact sheet of a generated city: one row per query, one column per domain."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from vgloc.data.synthetic.generate import QUERY_FOLDERS
from vgloc.data.vgnames import parse_vg_name
from vgloc.io import atomic_path

COLUMNS: tuple[tuple[str, str], ...] = (
    ("database", "database (nearest)"),
    ("queries", "query: day"),
    ("queries_night", "night"),
    ("queries_fog", "fog"),
    ("queries_occluded", "occluded"),
    ("aerial", "aerial tile"),
)


def contact_sheet(
    root: str | os.PathLike[str], out_png: str | os.PathLike[str], split: str = "test", rows: int = 4
) -> Path:
    """Save a labelled grid: database view, day/night/fog/occluded query, aerial tile.

    Each row is one query position (evenly spread over the split's queries); the database
    column shows the database image nearest to it (position and heading), the aerial
    column the tile nearest to it, with the query position (red dot) and heading marked.

    Args:
        root: a dataset written by :func:`vgloc.data.synthetic.generate_city`.
        out_png: the PNG to write (atomically).
        split: ``"train"``, ``"val"`` or ``"test"``.
        rows: number of query rows (>= 1).

    Returns:
        The path of the PNG.
    """
    root = Path(root)
    if not (root / "city.json").is_file():
        raise FileNotFoundError(f"{root}: no city.json; not a complete synthetic city")
    if not isinstance(rows, int) or rows < 1:
        raise ValueError(f"rows must be a positive integer, got {rows!r}")
    meta = json.loads((root / "city.json").read_text())
    base = root / "images" / split
    if not base.is_dir():
        raise FileNotFoundError(f"{base}: split {split!r} not found")
    H, W = meta["params"]["image_size"]
    extent = float(meta["params"]["aerial_extent_m"])
    by_pano = {
        folder: {parse_vg_name(p).pano_id: p for p in sorted((base / folder).glob("*.jpg"))}
        for folder in QUERY_FOLDERS
    }
    db = sorted((base / "database").glob("*.jpg"))
    db_n = [parse_vg_name(p) for p in db]
    db_xy = np.array([[n.utm_east, n.utm_north] for n in db_n])
    db_h = np.array([n.heading for n in db_n])
    ae = sorted((base / "aerial").glob("*.jpg"))
    ae_xy = np.array([[parse_vg_name(p).utm_east, parse_vg_name(p).utm_north] for p in ae])
    q_ids = sorted(by_pano["queries"])
    pick = [q_ids[int(i)] for i in np.linspace(0, len(q_ids) - 1, min(rows, len(q_ids))).round()]
    label_h, pad = 16, 4
    sheet = Image.new(
        "RGB", (len(COLUMNS) * (W + pad) + pad, label_h + len(pick) * (H + pad) + pad), (255, 255, 255)
    )
    draw = ImageDraw.Draw(sheet)
    for c, (_, label) in enumerate(COLUMNS):
        draw.text((pad + c * (W + pad) + 2, 2), label, fill=(0, 0, 0))
    for r, qid in enumerate(pick):
        q = parse_vg_name(by_pano["queries"][qid])
        d = np.hypot(db_xy[:, 0] - q.utm_east, db_xy[:, 1] - q.utm_north)
        dh = np.abs((db_h - q.heading + 180) % 360 - 180)
        best = int(np.argmin(d + 0.3 * dh))
        cells: list[Image.Image] = [Image.open(db[best]).convert("RGB")]
        cells += [Image.open(by_pano[f][qid]).convert("RGB") for f in QUERY_FOLDERS]
        a = int(np.argmin(np.hypot(ae_xy[:, 0] - q.utm_east, ae_xy[:, 1] - q.utm_north)))
        tile = Image.open(ae[a]).convert("RGB")
        an = parse_vg_name(ae[a])
        s = tile.size[0] / extent
        px = tile.size[0] / 2 + (q.utm_east - an.utm_east) * s
        py = tile.size[1] / 2 - (q.utm_north - an.utm_north) * s
        td = ImageDraw.Draw(tile)
        hx, hy = np.sin(np.radians(q.heading)), np.cos(np.radians(q.heading))
        td.line([(px, py), (px + 18 * hx, py - 18 * hy)], fill=(255, 0, 0), width=2)
        td.ellipse([px - 3, py - 3, px + 3, py + 3], fill=(255, 0, 0))
        side = min(H, W)
        tile = tile.resize((side, side), Image.Resampling.BILINEAR)
        canvas = Image.new("RGB", (W, H), (255, 255, 255))
        canvas.paste(tile, ((W - side) // 2, (H - side) // 2))
        cells.append(canvas)
        for c, im in enumerate(cells):
            sheet.paste(im.resize((W, H)), (pad + c * (W + pad), label_h + pad + r * (H + pad)))
        draw.text(
            (pad + 3, label_h + pad + r * (H + pad) + 2),
            f"{d[best]:.0f} m",
            fill=(255, 255, 0),
        )
    out = Path(out_png)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    return out
