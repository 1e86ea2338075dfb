"""Visual evaluation reports: a self-contained HTML page a person can look at.

The page shows which weights were evaluated (trained, pretrained or random), the
Recall@N table next to the chance level (what a random ranking would score,
:func:`vgloc.evaluation.chance.chance_recall`), a map of predicted against true
query positions for each domain, every query's error in metres, and a handful of
queries with their top-5 retrievals, each marked correct (green) or wrong (red). Images are embedded as
small JPEG thumbnails, so the single file can be mailed or opened anywhere.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from vgloc.evaluation.chance import chance_recall, weights_label
from vgloc.evaluation.worldmap import world_map_section
from vgloc.geo import distances_m
from vgloc.io import write_text_atomic

if TYPE_CHECKING:
    from vgloc.api import EvalResult
    from vgloc.data.records import GeoImageSet

THUMB_HEIGHT = 96


def thumbnail_data_uri(path: str | Path, height: int = THUMB_HEIGHT) -> str:
    """A small JPEG of ``path`` as a ``data:`` URI (for embedding in HTML)."""
    with Image.open(path) as opened:
        rgb = opened.convert("RGB")
    width = max(1, round(rgb.width * height / rgb.height))
    small = rgb.resize((width, height), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _png_data_uri(fig: object) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def map_figure(
    database: GeoImageSet,
    queries: GeoImageSet,
    predicted_xy: np.ndarray,
    correct: np.ndarray,
    title: str,
) -> str:
    """A map of the database (grey), true query positions and top-1 predictions.

    Args:
        database: the database images (their UTM positions are drawn).
        queries: the query images.
        predicted_xy: (Q, 2) predicted UTM positions.
        correct: (Q,) bool, whether the top-1 is a positive.
        title: the plot title.

    Returns:
        The PNG as a ``data:`` URI.
    """
    # A bare Figure (no pyplot) renders with Agg and touches no global backend state.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 6.5))
    ax = fig.subplots()
    planar = bool(np.all(np.isfinite(database.utm)))
    if planar:
        origin = database.utm.min(0)
        db = database.utm - origin
        q = queries.utm - origin
        pred = predicted_xy - origin
    else:
        # World-wide data has no planar frame: draw longitude/latitude (predicted_xy holds them).
        db, q, pred = database.latlon[:, ::-1], queries.latlon[:, ::-1], predicted_xy
    ax.scatter(db[:, 0], db[:, 1], s=3, c="#bbbbbb", label="database", zorder=1)
    for ok, colour in ((True, "#1a9850"), (False, "#d73027")):
        sel = correct == ok
        if not sel.any():
            continue
        segs = np.stack([q[sel], pred[sel]], 1)
        for s in segs:
            ax.plot(s[:, 0], s[:, 1], c=colour, lw=0.6, alpha=0.6, zorder=2)
        ax.scatter(
            pred[sel, 0],
            pred[sel, 1],
            s=14,
            marker="x",
            c=colour,
            zorder=3,
            label=f"predicted ({'correct' if ok else 'wrong'})",
        )
    ax.scatter(q[:, 0], q[:, 1], s=10, c="#2c7bb6", label="true query position", zorder=4)
    ax.set_aspect("equal")
    ax.set_xlabel("east (m)" if planar else "longitude (deg)")
    ax.set_ylabel("north (m)" if planar else "latitude (deg)")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    return _png_data_uri(fig)


def write_eval_report(
    result: EvalResult,
    database: GeoImageSet,
    queries: dict[str, GeoImageSet],
    out_path: str | Path,
    *,
    examples_per_domain: int = 4,
    top_n: int = 5,
    seed: int = 0,
) -> Path:
    """Write the HTML report of an evaluation.

    Args:
        result: the evaluation (its per-domain predictions are used).
        database: the database image set of the evaluated split.
        queries: the query sets by domain name.
        out_path: the HTML file to write (atomically).
        examples_per_domain: queries shown with their top-``top_n`` per domain
            (half taken among failures when there are any, so errors are visible).
        top_n: retrievals shown per example.
        seed: which examples are drawn.

    Returns:
        The written path.
    """
    rng = np.random.default_rng(seed)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>vgloc evaluation</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        ".ex{display:flex;gap:6px;align-items:flex-start;margin:6px 0}"
        ".ex figure{margin:0;text-align:center;font-size:11px}"
        ".ok img{border:4px solid #1a9850}.bad img{border:4px solid #d73027}.q img{border:4px solid #2c7bb6}"
        "tr.chance td{color:#777;font-style:italic}td.name{text-align:left}",
        "</style></head><body>",
        f"<h1>vgloc evaluation: {html.escape(result.model_spec)}</h1>",
        f"<p>split <b>{html.escape(result.split)}</b>, {result.num_database} database images, positives within "
        f"{result.threshold_m:g} m; {result.seconds:.0f} s.</p>",
        f"<p class='weights'>weights: <b>{html.escape(weights_label(result.model_spec, result.settings))}</b></p>",
        "<h2>Recall@N (%)</h2><p>Under each domain, in grey: the chance level, the Recall@N a random "
        "ranking of the database would score in expectation for the same positives.</p>"
        "<table><tr><th>domain</th><th>queries</th>"
        + "".join(f"<th>R@{n}</th>" for n in result.recall_values)
        + "<th>no positive</th><th>median error (m)</th></tr>",
    ]
    for d in result.domains.values():
        chance = chance_recall(result.num_database, d.positives, result.recall_values)
        parts.append(
            f"<tr><td class='name'>{html.escape(d.domain)}</td><td>{d.num_queries}</td>"
            + "".join(f"<td>{d.recalls[n]:.1f}</td>" for n in result.recall_values)
            + f"<td>{d.queries_without_positives}</td><td>{_metres(_median_error(d.error_m))}</td></tr>"
            + "<tr class='chance'><td class='name'>chance</td><td></td>"
            + "".join(f"<td>{chance[n]:.1f}</td>" for n in result.recall_values)
            + "<td></td><td></td></tr>"
        )
    parts.append("</table>")
    parts += _km_table(result)
    for name, d in result.domains.items():
        qset = queries[name]
        top1 = d.predictions[:, 0]
        valid = top1 >= 0
        positions = database.utm if np.all(np.isfinite(database.utm)) else database.latlon[:, ::-1]
        pred_xy = np.where(valid[:, None], positions[np.clip(top1, 0, None)], np.nan)
        correct = np.array(
            [bool(t >= 0 and t in set(p.tolist())) for t, p in zip(top1, d.positives, strict=True)]
        )
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(
            f"<img alt='map of {html.escape(name)}' src='{map_figure(database, qset, pred_xy, correct, name + ': top-1 predictions')}'>"
        )
        parts.append(
            world_map_section(name, d.predicted_latlon, d.error_m, database, qset)
        )  # world data only
        if d.error_m is not None:
            parts.append(_error_table(d.error_m, d.confidence, correct, qset, result.threshold_m))
        wrong = np.flatnonzero(~correct)
        right = np.flatnonzero(correct)
        n_wrong = min(len(wrong), examples_per_domain // 2 if len(right) else examples_per_domain)
        chosen = list(rng.choice(wrong, n_wrong, replace=False)) if n_wrong else []
        n_right = min(len(right), examples_per_domain - len(chosen))
        chosen += list(rng.choice(right, n_right, replace=False)) if n_right else []
        for qi in sorted(int(c) for c in chosen):
            positives = set(d.positives[qi].tolist())
            cells = [
                f"<figure class='q'><img src='{thumbnail_data_uri(qset.paths[qi])}'><figcaption>query {qi}</figcaption></figure>"
            ]
            for rank, dbi in enumerate(d.predictions[qi][:top_n]):
                if dbi < 0:
                    continue
                dist = float(distances_m(*database.latlon[dbi], *qset.latlon[qi]))
                if not np.isfinite(dist):  # metric-only names: no lat/lon, UTM metres
                    dist = float(np.linalg.norm(database.utm[dbi] - qset.utm[qi]))
                cls = "ok" if int(dbi) in positives else "bad"
                cells.append(
                    f"<figure class='{cls}'><img src='{thumbnail_data_uri(database.paths[dbi])}'>"
                    f"<figcaption>#{rank + 1} sim {d.similarities[qi, rank]:.3f}, {dist:.0f} m</figcaption></figure>"
                )
            parts.append("<div class='ex'>" + "".join(cells) + "</div>")
    parts.append("</body></html>")
    return write_text_atomic(out_path, "\n".join(parts))


def _km_table(result: EvalResult) -> list[str]:
    """World-scale data: the share of queries within each km threshold per domain (none otherwise)."""
    keys = list(
        dict.fromkeys(
            k for d in result.domains.values() for k in d.metrics if k.startswith("acc@") and k.endswith("km")
        )
    )
    if not keys:
        return []
    rows = [
        "<h2>Accuracy within 1 / 25 / 200 / 750 / 2500 km (%)</h2><p>Share of queries whose predicted position "
        "lies within each great-circle distance of the truth (street, city, region, country, continent).</p>"
        "<table><tr><th>domain</th>" + "".join(f"<th>{html.escape(k[4:])}</th>" for k in keys) + "</tr>"
    ]
    for d in result.domains.values():
        cells = "".join(f"<td>{d.metrics.get(k, float('nan')):.1f}</td>" for k in keys)
        rows.append(f"<tr><td class='name'>{html.escape(d.domain)}</td>{cells}</tr>")
    return [*rows, "</table>"]


def _metres(x: float) -> str:
    return f"{x:.0f}" if np.isfinite(x) else "-"


def _median_error(error_m: np.ndarray | None) -> float:
    if error_m is None:
        return float("nan")
    err = np.asarray(error_m, dtype=np.float64)
    err = err[np.isfinite(err)]
    return float(np.median(err)) if err.size else float("nan")


def _error_table(
    error_m: np.ndarray,
    confidence: np.ndarray | None,
    correct: np.ndarray,
    queries: GeoImageSet,
    threshold_m: float,
) -> str:
    """Every query's position error (m), worst first, in a collapsible table.

    Args:
        error_m: (Q,) metres from the predicted to the true position (NaN: no prediction).
        confidence: (Q,) confidence of each prediction, or None.
        correct: (Q,) whether the top-1 retrieval is a positive.
        queries: the query set (for file names).
        threshold_m: the positive threshold, for the summary line.
    """
    err = np.asarray(error_m, dtype=np.float64)
    known = err[np.isfinite(err)]
    summary = (
        f"median {_metres(float(np.median(known)))} m, 90th percentile "
        f"{_metres(float(np.percentile(known, 90)))} m, {100.0 * np.mean(known <= threshold_m):.0f} % "
        f"within {threshold_m:g} m"
        if known.size
        else "no position predicted"
    )
    # Worst first (NaN, no prediction, counts as worst): what a reader wants to look at.
    order = np.argsort(np.where(np.isfinite(err), -err, -np.inf), kind="stable")
    rows = "".join(
        f"<tr><td>{q}</td><td class='name'>{html.escape(Path(queries.paths[q]).name)}</td>"
        f"<td>{_metres(float(err[q]))}</td>"
        f"<td>{'-' if confidence is None else f'{float(confidence[q]):.2f}'}</td>"
        f"<td>{'yes' if correct[q] else 'no'}</td></tr>"
        for q in order
    )
    return (
        f"<p class='errors'>Position error per query: {summary}.</p>"
        f"<details><summary>every query's error ({len(err)}), worst first</summary>"
        "<table class='per-query'><tr><th>query</th><th>file</th><th>error (m)</th><th>confidence</th>"
        f"<th>top-1 correct</th></tr>{rows}</table></details>"
    )
