"""The demo's comparison rows and table: chance, untrained and trained per domain."""

from __future__ import annotations

import numpy as np
import pytest

from vgloc.demo_report import comparison_rows, comparison_table
from vgloc.evaluation.chance import chance_recall
from vgloc.evaluation.results import DomainResult, EvalResult


def _result(recalls_by_domain: dict[str, float], num_database: int = 10) -> EvalResult:
    domains = {}
    for name, r1 in recalls_by_domain.items():
        positives = [np.array([0, 1]), np.array([5])]
        domains[name] = DomainResult(
            domain=name,
            num_queries=2,
            recalls={1: r1, 5: 100.0},
            queries_without_positives=0,
            predictions=np.array([[0, 2], [3, 5]]),
            similarities=np.zeros((2, 2), np.float32),
            positives=positives,
            error_m=np.array([4.0, 40.0]),
        )
    return EvalResult("test", "tiny+gem", 25.0, (1, 5), num_database, domains, {}, 1.0)


def test_rows_group_chance_untrained_and_trained_under_each_domain() -> None:
    untrained = _result({"queries": 0.0, "queries_night": 50.0})
    trained = _result({"queries": 50.0, "queries_night": 100.0})
    rows = comparison_rows(untrained, trained)
    assert [(d, label) for d, label, _, _ in rows] == [
        ("queries", "chance"),
        ("queries", "untrained (random init)"),
        ("queries", "trained"),
        ("queries_night", "chance"),
        ("queries_night", "untrained (random init)"),
        ("queries_night", "trained"),
    ]
    expected_chance = chance_recall(10, untrained.domains["queries"].positives, (1, 5))
    assert rows[0][2] == pytest.approx(expected_chance)
    assert rows[1][2][1] == 0.0 and rows[2][2][1] == 50.0 and rows[5][2][1] == 100.0
    assert rows[1][3] == pytest.approx(22.0)  # median of 4 m and 40 m
    assert np.isnan(rows[0][3])


def test_without_a_trained_model_only_chance_and_untrained_rows() -> None:
    table = comparison_table(_result({"queries": 50.0}), None)
    lines = table.splitlines()
    assert len(lines) == 4 and "| queries | chance |" in lines[2] and "untrained" in lines[3]
    assert "| 50.0 | 100.0 | 22 |" in lines[3]


def test_results_of_different_data_are_refused() -> None:
    with pytest.raises(ValueError, match="same database"):
        comparison_rows(_result({"queries": 0.0}), _result({"queries": 0.0}, num_database=11))
    with pytest.raises(ValueError, match="same database"):
        comparison_rows(_result({"queries": 0.0}), _result({"queries_fog": 0.0}))
