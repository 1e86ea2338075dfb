"""Choosing what an evaluation evaluates: domains and recorded settings."""

from __future__ import annotations

import pytest

from vgloc.describers import ExtractionOptions
from vgloc.evaluation.members import run_settings, select_domains


def test_select_domains_defaults_to_all_and_names_what_exists() -> None:
    found = {"queries": 1, "queries_night": 2}
    assert select_domains(found, None, "city") == ["queries", "queries_night"]
    assert select_domains(found, ["queries_night"], "city") == ["queries_night"]
    with pytest.raises(
        ValueError, match=r"\['queries_fog'\] not in city; found: \['queries', 'queries_night'\]"
    ):
        select_domains(found, ["queries_fog", "queries"], "city")


def test_run_settings_records_the_options() -> None:
    options = ExtractionOptions(image_size=(64, 96), precision="fp32", brightness=0.2)
    got = run_settings("root", None, "a.pt", False, options, "Flat", None, 3, "kde")
    assert got["image_size"] == (64, 96) and got["precision"] == "fp32" and got["test_brightness"] == 0.2
    assert (got["dataset"], got["database"], got["checkpoint"], got["seed"], got["method"]) == (
        "root",
        None,
        "a.pt",
        3,
        "kde",
    )
