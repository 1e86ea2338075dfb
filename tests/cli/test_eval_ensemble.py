"""``vgloc eval --ensemble``: two trained checkpoints of one architecture, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vgloc.cli import main

SMALL = ["--image-size", "64,96", "--batch-size", "16", "--log-level", "warning", "--no-progress"]
SPEC = "tiny+gem+fc32"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two differently initialised models of one architecture, as two trainings would give."""
    import torch

    from vgloc.models import create_model, save_model

    folder = tmp_path_factory.mktemp("ckpts")
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        paths.append(save_model(create_model(SPEC), folder / f"seed{seed}.pt"))
    return paths


def test_two_checkpoints_fused_with_rrf(
    tiny_city_root: Path, tmp_path: Path, checkpoints: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["eval", "--dataset", str(tiny_city_root), "--domains", "queries", "--model", SPEC]
    args += ["--checkpoint", str(checkpoints[0]), "--checkpoint", str(checkpoints[1])]
    args += [
        "--ensemble",
        "rrf",
        "--no-report",
        "--out",
        str(out),
        "--run-dir",
        str(tmp_path / "run"),
        *SMALL,
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"rrf({SPEC}, {SPEC}) on" in printed and "| queries |" in printed
    assert f"model 1: {SPEC} {checkpoints[0]}" in printed and f"model 2: {SPEC} {checkpoints[1]}" in printed
    ens = json.loads((out / "results.json").read_text())["settings"]["ensemble"]
    assert ens["fusion"] == "rrf" and ens["rrf_k"] == 60
    assert [m["checkpoint"] for m in ens["models"]] == [str(c) for c in checkpoints]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "tiny+gem", "--model", SPEC], "add --ensemble nif, sif or rrf"),
        (["--model", "tiny+gem", "--ensemble", "nif"], "at least 2 models"),
        (["--model", "tiny+gem", "--model", SPEC, "--ensemble", "nyf"], "did you mean: nif"),
        (["--model", "tiny+gem", "--model", SPEC, "--ensemble", "sif", "--ensemble-lead", "3"], "1..2"),
        (
            ["--model", "tiny+gem", "--model", SPEC, "--ensemble", "nif", "--rerank", "orb+mnn+ransac"],
            "re-rank",
        ),
        (
            ["--model", "a", "--model", "b", "--model", "c", "--checkpoint", "x", "--checkpoint", "y"],
            "ensemble",
        ),
    ],
)
def test_refusals(
    tiny_city_root: Path, tmp_path: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["eval", "--dataset", str(tiny_city_root), "--run-dir", str(tmp_path / "run"), *extra]
    assert main(args) != 0
    assert message in capsys.readouterr().err


def test_every_command_of_the_ensembles_doc_parses_into_an_ensemble() -> None:
    """docs/ensembles.md is what the study scripts copy: its command lines must keep working."""
    import shlex

    from tests.test_readme import readme_command_lines
    from vgloc.cli import build_parser
    from vgloc.cli.ensemble import num_members

    lines = readme_command_lines(Path(__file__).parents[2] / "docs" / "ensembles.md")
    ensembles = [ln for ln in lines if "--ensemble " in ln]
    assert len(ensembles) >= 5 and any(ln.startswith("vgloc locate ") for ln in ensembles)
    parser = build_parser()
    for line in lines:
        try:
            args = parser.parse_args(shlex.split(line)[1:])
        except SystemExit as exc:  # argparse reports a bad line by exiting
            raise AssertionError(f"docs/ensembles.md command does not parse: {line}") from exc
        if line in ensembles:
            assert args.ensemble in ("nif", "sif", "rrf") and num_members(args) == 2, line
