"""``vgloc soup``: the soup file works in `vgloc eval` and `index build`; bad input fails with one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vgloc.cli import EXIT_ERROR, main
from vgloc.models import create_model, load_model, save_model

SPEC = "tiny+gem+fc64"
SMALL = [
    "--image-size",
    "48,64",
    "--batch-size",
    "64",
    "--precision",
    "fp32",
    "--workers",
    "0",
    "--no-progress",
]


def _models(folder: Path, n: int = 3) -> list[str]:
    paths = []
    for seed in range(n):
        torch.manual_seed(seed)
        paths.append(str(save_model(create_model(SPEC), folder / f"m{seed}.pt")))
    return paths


def test_uniform_soup_then_eval_and_index_build_with_it(
    tmp_path: Path, tiny_city_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models, out = _models(tmp_path), tmp_path / "soup.pt"
    assert main(["soup", *models, "--out", str(out), "--json", "--log-level", "warning"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["method"] == "uniform" and report["spec"] == SPEC and report["score"] is None
    assert [m["kept"] for m in report["models"]] == [True] * 3
    soup = load_model(out)
    expected = sum(torch.load(m, weights_only=True)["state_dict"]["head.fc.weight"] for m in models) / 3
    torch.testing.assert_close(soup.state_dict()["head.fc.weight"], expected)
    run = ["--run-dir", str(tmp_path / "run"), "--log-level", "warning"]
    args = ["--model", SPEC, "--checkpoint", str(out), *SMALL, *run]
    assert main(["eval", "--dataset", str(tiny_city_root), "--split", "val", "--no-report", *args]) == 0
    assert "| queries |" in capsys.readouterr().out
    images = str(tiny_city_root / "images" / "val" / "database")
    assert main(["index", "build", "--images", images, "--out", str(tmp_path / "idx"), *args]) == 0


def test_greedy_soup_prints_its_trace(
    tmp_path: Path, tiny_city_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models, out = _models(tmp_path, 2), tmp_path / "greedy.pt"
    argv = ["soup", *models, "--method", "greedy", "--val", str(tiny_city_root), "--domains", "queries"]
    assert main([*argv, "--out", str(out), *SMALL, "--log-level", "warning"]) == 0
    printed = capsys.readouterr().out
    assert "keep if soup R@1 >= before" in printed and "R@1 alone" in printed
    record = load_model(out).checkpoint_extra
    assert record["val"]["domains"] == ["queries"] and record["val"]["image_size"] == [48, 64]
    assert len(record["soup"]["greedy"]) == 2 and record["soup"]["greedy_rule"] == ">="
    assert record["soup"]["greedy"][0]["kept"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "greedy"], "--method greedy needs --val"),
        (["--method", "greedy", "--val", "{tmp}/nope"], "nope"),
        (["--val", "{city}", "--domains", "queries_mars"], "queries_mars"),
    ],
)
def test_bad_input_fails_with_one_line_and_writes_nothing(
    tmp_path: Path, tiny_city_root: Path, extra: list[str], message: str, caplog: pytest.LogCaptureFixture
) -> None:
    models, out = _models(tmp_path, 2), tmp_path / "soup.pt"
    extra = [e.format(tmp=tmp_path, city=tiny_city_root) for e in extra]
    assert main(["soup", *models, "--out", str(out), *extra]) == EXIT_ERROR
    assert message in caplog.text and not out.exists()


def test_one_model_a_mismatch_and_overwriting_an_input_are_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    models = _models(tmp_path, 2)
    other = str(save_model(create_model("tiny+gem+fc32"), tmp_path / "other.pt"))
    out = str(tmp_path / "soup.pt")
    assert main(["soup", models[0], "--out", out]) == EXIT_ERROR
    assert "at least 2 models, got 1" in caplog.text
    assert main(["soup", *models, other, "--out", out]) == EXIT_ERROR
    assert "other.pt differs from" in caplog.text and "spec 'tiny+gem+fc32'" in caplog.text
    assert main(["soup", *models, "--out", models[1]]) == EXIT_ERROR
    assert "is one of the models" in caplog.text
    assert not Path(out).exists()
