"""Evaluating an ensemble on the tiny synthetic city through the Python API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vgloc.describers import ExtractionOptions
from vgloc.ensemble import fuse
from vgloc.evaluation import EvalResult, evaluate
from vgloc.evaluation.ensemble import ensemble_members, evaluate_ensemble

SMALL = ExtractionOptions(image_size=(64, 96), batch_size=16, progress=False, num_workers=0)
MODELS = ["tiny+gem", "tiny+gem+fc32"]


KW = {"options": SMALL, "domains": ["queries"], "report": False}


@pytest.fixture(scope="module")
def alone(tiny_city_root: Path) -> list[EvalResult]:
    """Each model evaluated on its own (same seed, so the same random weights as in the ensemble)."""
    return [evaluate(tiny_city_root, "test", m, **KW) for m in MODELS]


def test_two_models_fuse_exactly_what_each_retrieves_alone(
    tiny_city_root: Path, tmp_path: Path, alone: list[EvalResult]
) -> None:
    out = tmp_path / "out"
    result = evaluate_ensemble(
        tiny_city_root, "test", MODELS, ensemble="nif", options=SMALL, domains=["queries"], out_dir=out
    )
    single = [r.domains["queries"] for r in alone]
    k = single[0].predictions.shape[1]
    sims, ids = fuse("nif", [d.predictions for d in single], [d.similarities for d in single], k)
    fused = result.domains["queries"]
    np.testing.assert_array_equal(fused.predictions, ids)
    np.testing.assert_allclose(fused.similarities, sims)
    # the protocol scored the fused list: R@N from its own predictions, not a member's
    positives = fused.positives
    hit1 = np.mean([ids[q, 0] in set(positives[q].tolist()) for q in range(len(ids))]) * 100
    assert fused.recalls[1] == pytest.approx(hit1)
    assert result.model_spec == "nif(tiny+gem, tiny+gem+fc32)"
    saved = json.loads((out / "results.json").read_text())
    ens = saved["settings"]["ensemble"]
    assert ens["fusion"] == "nif" and [m["model"] for m in ens["models"]] == MODELS
    for member, r in zip(ens["models"], alone, strict=True):
        assert member["recalls"]["queries"] == {f"R@{n}": v for n, v in r.domains["queries"].recalls.items()}
    assert (out / "predictions.csv").is_file() and (out / "report.html").is_file()


@pytest.mark.parametrize("lead", [0, 1])
def test_sif_puts_what_both_retrieved_first_in_the_lead_order(
    tiny_city_root: Path, alone: list[EvalResult], lead: int
) -> None:
    result = evaluate_ensemble(tiny_city_root, "test", MODELS, ensemble="sif", lead=lead, **KW)
    ids = result.domains["queries"].predictions
    mine, other = (alone[m].domains["queries"].predictions for m in (lead, 1 - lead))
    for q in range(len(ids)):
        shared = [c for c in mine[q].tolist() if c in set(other[q].tolist())]
        rest = [c for c in mine[q].tolist() if c not in shared]
        assert ids[q].tolist() == (shared + rest)[: ids.shape[1]]
    assert result.settings["ensemble"]["lead"] == lead + 1


def test_indexes_of_another_database_are_refused_before_any_work(tiny_city_root: Path) -> None:
    from vgloc.data import load_split
    from vgloc.indexing import build_index

    db = load_split(tiny_city_root, "test").database
    half = build_index(db.subset(list(range(len(db) // 2))), "tiny+gem", options=SMALL)
    with pytest.raises(ValueError, match=r"ensemble model 2 of 2: the index holds \d+ images"):
        evaluate_ensemble(tiny_city_root, "test", ["tiny+gem"], indexes=[None, half], options=SMALL)


def test_one_model_is_not_an_ensemble(tiny_city_root: Path) -> None:
    with pytest.raises(ValueError, match="at least 2 models"):
        evaluate_ensemble(tiny_city_root, "test", ["tiny+gem"], ensemble="rrf", options=SMALL)


def test_members_pair_by_position_and_share_what_is_given_once() -> None:
    ckpts = [Path("a.pt"), Path("b.pt")]
    members = ensemble_members("resnet18+gem+fc512", ckpts)
    assert [(m.model, m.checkpoint, m.index) for m in members] == [
        ("resnet18+gem+fc512", Path("a.pt"), None),
        ("resnet18+gem+fc512", Path("b.pt"), None),
    ]
    assert [m.index for m in ensemble_members(indexes=["i1", "i2", "i3"])] == ["i1", "i2", "i3"]
    with pytest.raises(ValueError, match="--checkpoint is given 2 times for 3 models"):
        ensemble_members(["a", "b", "c"], ckpts)
    with pytest.raises(ValueError, match="different architectures"):
        ensemble_members(["a", "b"], "a.pt")
