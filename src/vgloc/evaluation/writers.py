"""The files an evaluation writes: ``results.json``, ``predictions.csv``, ``report.html``, sweeps."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vgloc.evaluation.results import EvalResult
from vgloc.io import write_json_atomic, write_text_atomic

if TYPE_CHECKING:
    from vgloc.data.records import GeoImageSet
    from vgloc.evaluation.rerank import RerankSettings

__all__ = ["PREDICTION_COLUMNS", "predictions_csv", "write_outputs"]

#: The leading columns of ``predictions.csv``; ``top<r>_path`` / ``top<r>_similarity`` follow,
#: then ``domain`` (the query folder).
PREDICTION_COLUMNS = (
    "query",
    "true_lat",
    "true_lon",
    "pred_lat",
    "pred_lon",
    "error_m",
    "confidence",
)


def _num(value: float, digits: int) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def predictions_csv(result: EvalResult, database: GeoImageSet, queries: Mapping[str, GeoImageSet]) -> str:
    """One row per query of every domain: truth, predicted position, error, confidence, top-K.

    Returns:
        The CSV text (header first). Coordinates are empty where the data has none
        (metric-only file names).
    """
    top = max(result.recall_values)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = list(PREDICTION_COLUMNS)
    for r in range(1, top + 1):
        header += [f"top{r}_path", f"top{r}_similarity"]
    writer.writerow([*header, "domain"])
    for name, d in result.domains.items():
        q_set = queries[name]
        pred = d.predicted_latlon if d.predicted_latlon is not None else np.full((d.num_queries, 2), np.nan)
        lat, lon = pred[:, 0], pred[:, 1]
        err = d.error_m if d.error_m is not None else np.full(d.num_queries, np.nan)
        conf = d.confidence if d.confidence is not None else np.full(d.num_queries, np.nan)
        for q in range(d.num_queries):
            row = [
                str(q_set.paths[q]),
                _num(q_set.latlon[q, 0], 7),
                _num(q_set.latlon[q, 1], 7),
                _num(float(lat[q]), 7),
                _num(float(lon[q]), 7),
                _num(float(err[q]), 2),
                _num(float(conf[q]), 4),
            ]
            for r in range(top):
                i = int(d.predictions[q, r]) if r < d.predictions.shape[1] else -1
                row += [str(database.paths[i]), _num(float(d.similarities[q, r]), 5)] if i >= 0 else ["", ""]
            writer.writerow([*row, name])
    return out.getvalue()


def write_outputs(
    result: EvalResult,
    database: GeoImageSet,
    queries: Mapping[str, GeoImageSet],
    out_dir: Path,
    *,
    rerank: RerankSettings | None = None,
    report: bool = True,
    seed: int = 0,
) -> dict[str, Path]:
    """Write every output of an evaluation into ``out_dir`` (each file atomically).

    Returns:
        name -> path of what was written (``results``, ``predictions``, ``report``...).
    """
    written = {
        "results": write_json_atomic(out_dir / "results.json", result.to_dict(database, dict(queries))),
        "predictions": write_text_atomic(
            out_dir / "predictions.csv", predictions_csv(result, database, queries)
        ),
    }
    if rerank is not None and rerank.sweep_ks:
        from vgloc.rerank import write_sweep

        curves = {n: d.rerank.sweep for n, d in result.domains.items() if d.rerank is not None}
        write_sweep(
            curves,
            out_dir,
            title=f"{result.model_spec} + {rerank.reranker.spec} ({result.split})",
            baseline={n: d.recalls for n, d in result.domains.items()},
        )
    if report:
        from vgloc.evaluation.report import write_eval_report

        written["report"] = write_eval_report(
            result, database, dict(queries), out_dir / "report.html", seed=seed
        )
    return written
