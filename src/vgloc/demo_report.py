"""The demo's comparison: the untrained model next to the trained one, per domain, with the chance level.

Each model keeps its full evaluation report (:func:`vgloc.evaluation.report.write_eval_report`:
maps, per-query errors, example retrievals); this page puts the two side by side: one
Recall@N table with the chance level, the random-weights row and the trained row under
each domain, and each domain's maps of top-1 predictions next to each other, with
links to the full reports.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vgloc.evaluation.chance import chance_recall
from vgloc.evaluation.report import map_figure
from vgloc.io import write_text_atomic

if TYPE_CHECKING:
    from vgloc.data.records import GeoImageSet
    from vgloc.evaluation import EvalResult
    from vgloc.evaluation.results import DomainResult

__all__ = ["comparison_rows", "comparison_table", "write_comparison_report"]

UNTRAINED_LABEL = "untrained (random init)"
TRAINED_LABEL = "trained"


def _median_error(d: DomainResult) -> float:
    if d.error_m is None:
        return float("nan")
    err = np.asarray(d.error_m, dtype=np.float64)
    err = err[np.isfinite(err)]
    return float(np.median(err)) if err.size else float("nan")


def comparison_rows(
    untrained: EvalResult, trained: EvalResult | None
) -> list[tuple[str, str, dict[int, float], float]]:
    """The rows of the comparison, grouped by domain: chance, untrained, then trained.

    Args:
        untrained: the random-initialisation evaluation.
        trained: the trained model's evaluation of the same split, or None.

    Returns:
        ``(domain, label, {N: Recall@N %}, median error m)`` tuples (NaN error for chance).

    Raises:
        ValueError: the two evaluations are not of the same database and domains.
    """
    if trained is not None and (
        trained.num_database != untrained.num_database or list(trained.domains) != list(untrained.domains)
    ):
        raise ValueError("the trained and untrained evaluations must cover the same database and domains")
    rows = []
    for name, d in untrained.domains.items():
        chance = chance_recall(untrained.num_database, d.positives, untrained.recall_values)
        rows.append((name, "chance", chance, float("nan")))
        rows.append((name, UNTRAINED_LABEL, dict(d.recalls), _median_error(d)))
        if trained is not None:
            t = trained.domains[name]
            rows.append((name, TRAINED_LABEL, dict(t.recalls), _median_error(t)))
    return rows


def comparison_table(untrained: EvalResult, trained: EvalResult | None) -> str:
    """A Markdown table for the console: per domain, chance / untrained / trained Recall@N.

    Args:
        untrained: the random-initialisation evaluation.
        trained: the trained model's evaluation of the same split, or None (its row is left out).
    """
    ns = untrained.recall_values
    lines = [
        "| domain | weights | " + " | ".join(f"R@{n}" for n in ns) + " | median error (m) |",
        "|---|---|" + "---:|" * len(ns) + "---:|",
    ]
    for domain, label, recalls, err in comparison_rows(untrained, trained):
        cells = " | ".join(f"{recalls[n]:.1f}" for n in ns)
        lines.append(f"| {domain} | {label} | {cells} | {'-' if not np.isfinite(err) else f'{err:.0f}'} |")
    return "\n".join(lines)


def _top1_map(d: DomainResult, database: GeoImageSet, queries: GeoImageSet, title: str) -> str:
    """Map of ``d``'s top-1 predictions (a ``data:`` URI), as the evaluation report draws it."""
    top1 = d.predictions[:, 0]
    positions = database.utm if np.all(np.isfinite(database.utm)) else database.latlon[:, ::-1]
    pred_xy = np.where((top1 >= 0)[:, None], positions[np.clip(top1, 0, None)], np.nan)
    correct = np.array([bool(t >= 0 and t in p) for t, p in zip(top1, d.positives, strict=True)])
    return map_figure(database, queries, pred_xy, correct, title)


def write_comparison_report(
    untrained: EvalResult,
    trained: EvalResult | None,
    database: GeoImageSet,
    queries: dict[str, GeoImageSet],
    out_path: str | Path,
    *,
    title: str,
    training_line: str,
    links: dict[str, str],
) -> Path:
    """Write the demo's HTML page: both models' Recall@N with the chance level, and their maps.

    Args:
        untrained: the random-initialisation evaluation (test split).
        trained: the trained model's evaluation of the same split, or None (the page then
            says why, from ``training_line``).
        database: the split's database images.
        queries: its query sets by domain.
        out_path: the HTML file to write (atomically).
        title: the page heading.
        training_line: how the trained model was obtained, or why there is none.
        links: ``{label: relative URL}`` of the full per-model reports.

    Returns:
        The written path.
    """
    ns = untrained.recall_values
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>vgloc demo</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "td.name{text-align:left}tr.chance td{color:#777;font-style:italic}tr.trained td{font-weight:bold}"
        "tr.first td{border-top:2px solid #888}.maps{display:flex;gap:12px;flex-wrap:wrap}",
        "</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>test split, {untrained.num_database} database images, positives within "
        f"{untrained.threshold_m:g} m. Both models share the architecture "
        f"<b>{html.escape(untrained.model_spec)}</b>.</p>",
        f"<p class='training'>training: {html.escape(training_line)}</p>",
        "<p>full reports (per-query errors, example retrievals): "
        + ", ".join(f"<a href='{html.escape(url)}'>{html.escape(label)}</a>" for label, url in links.items())
        + "</p>",
        "<h2>Recall@N (%)</h2><p>Chance: what a random ranking of the database would score in "
        "expectation for the same positives.</p><table><tr><th>domain</th><th>weights</th>"
        + "".join(f"<th>R@{n}</th>" for n in ns)
        + "<th>median error (m)</th></tr>",
    ]
    for domain, label, recalls, err in comparison_rows(untrained, trained):
        cls = "chance first" if label == "chance" else ("trained" if label == TRAINED_LABEL else "")
        parts.append(
            f"<tr class='{cls}'><td class='name'>{html.escape(domain)}</td><td class='name'>{html.escape(label)}</td>"
            + "".join(f"<td>{recalls[n]:.1f}</td>" for n in ns)
            + f"<td>{'-' if not np.isfinite(err) else f'{err:.0f}'}</td></tr>"
        )
    parts.append("</table>")
    for name, d in untrained.domains.items():
        parts.append(f"<h2>{html.escape(name)}</h2><div class='maps'>")
        models = [(UNTRAINED_LABEL, d)]
        if trained is not None:
            models.append((TRAINED_LABEL, trained.domains[name]))
        for label, dom in models:
            uri = _top1_map(dom, database, queries[name], f"{name}, {label}: top-1 predictions")
            parts.append(f"<img alt='map of {html.escape(name)}, {html.escape(label)}' src='{uri}'>")
        parts.append("</div>")
    parts.append("</body></html>")
    return write_text_atomic(out_path, "\n".join(parts))
