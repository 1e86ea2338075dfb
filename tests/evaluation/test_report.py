"""The HTML report: weights, chance level beside recall, every query's error in metres."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from vgloc.data import load_image_set
from vgloc.evaluation.chance import chance_recall
from vgloc.evaluation.report import write_eval_report
from vgloc.evaluation.results import DomainResult, EvalResult


def _result(lund_dir: Path, checkpoint: str | None):  # type: ignore[no-untyped-def]
    images = load_image_set(lund_dir, progress=False)
    database, queries = images.subset(list(range(0, 12))), images.subset(list(range(12, 17)))
    rng = np.random.default_rng(0)
    predictions = np.stack([rng.permutation(len(database))[:5] for _ in range(len(queries))])
    positives = [np.array([0, 1]), np.array([2]), np.array([], dtype=int), np.arange(6), np.array([11])]
    error_m = np.array([12.0, np.nan, 300.5, 4.0, 41.0])
    domain = DomainResult(
        domain="queries",
        num_queries=len(queries),
        recalls={1: 20.0, 5: 40.0},
        queries_without_positives=1,
        predictions=predictions,
        similarities=np.sort(rng.random((len(queries), 5)))[:, ::-1],
        positives=positives,
        error_m=error_m,
        confidence=np.array([0.9, 0.1, 0.2, 0.8, 0.5]),
    )
    settings = {"checkpoint": checkpoint, "pretrained": False}
    result = EvalResult("custom", "tiny+gem", 25.0, (1, 5), len(database), {"queries": domain}, settings, 1.0)
    return result, database, {"queries": queries}


def test_report_shows_chance_weights_and_per_query_errors(lund_dir: Path, tmp_path: Path) -> None:
    result, database, queries = _result(lund_dir, None)
    page = write_eval_report(
        result, database, queries, tmp_path / "r.html", examples_per_domain=2
    ).read_text()
    assert "random initialisation" in page
    chance = chance_recall(len(database), result.domains["queries"].positives, (1, 5))
    row = re.search(r"<tr class='chance'>(.*?)</tr>", page)
    assert row is not None
    cells = re.findall(r"<td>([\d.]+)</td>", row.group(1))
    assert [float(c) for c in cells] == pytest.approx([chance[1], chance[5]], abs=0.05)
    # Median of the known errors (12, 300.5, 4, 41) is 26.5 -> "26" or "27" m in the table.
    assert re.search(r"<td>2[67]</td></tr><tr class='chance'>", page)
    table = re.search(r"<table class='per-query'>(.*?)</table>", page)
    assert table is not None
    errors = re.findall(r"<tr><td>(\d+)</td><td class='name'>[^<]+</td><td>([^<]+)</td>", table.group(1))
    # Worst first; the query without a prediction (NaN) is listed first as "-".
    assert [q for q, _ in errors] == ["1", "2", "4", "0", "3"]
    assert [e for _, e in errors] == ["-", "300", "41", "12", "4"]
    assert "50 % within 25 m" in page  # 12 and 4 of the four known errors


def test_report_names_the_checkpoint_of_a_trained_model(lund_dir: Path, tmp_path: Path) -> None:
    result, database, queries = _result(lund_dir, "runs/best_model.pt")
    page = write_eval_report(
        result, database, queries, tmp_path / "r.html", examples_per_domain=0
    ).read_text()
    assert "trained weights from runs/best_model.pt" in page and "random initialisation" not in page
