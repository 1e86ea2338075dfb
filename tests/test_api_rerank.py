"""Re-ranking through the public API and the CLI: eval with/without, K sweeps, locate inliers, pair figures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vgloc.api import EvalResult, ExtractionOptions, build_index, evaluate, locate
from vgloc.cli import main
from vgloc.data import load_split
from vgloc.registry import UnknownNameError

NATIVE = ExtractionOptions(image_size=None, progress=False)
SPEC = "rootsift+mnn+ransac"


@pytest.fixture(scope="module")
def day_eval(tiny_city_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[EvalResult, Path]:
    """A tiny random-init CNN (tiny+gem) on the tiny city's day queries, re-ranked at the default K=100."""
    out = tmp_path_factory.mktemp("eval-rerank")
    result = evaluate(
        tiny_city_root,
        "test",
        "tiny+gem",
        recall_values=(1, 5),
        domains=["queries"],
        options=NATIVE,
        out_dir=out,
        rerank=SPEC,
        rerank_cache=out / "features.h5",
        rerank_sweep=[1, 5, 20, 200],
    )
    return result, out


def test_rerank_recall_at_1_is_not_worse_than_retrieval(day_eval: tuple[EvalResult, Path]) -> None:
    result, _ = day_eval
    day = result.domains["queries"]
    assert day.rerank is not None
    print(f"tiny city day: R@1 {day.recalls[1]:.1f} retrieval -> {day.rerank.recalls[1]:.1f} re-ranked")
    # At seed 0: 25.0 -> 75.0 (8 queries). Verification must not lose what retrieval found.
    assert day.rerank.recalls[1] >= day.recalls[1]
    assert day.rerank.recalls[1] >= 50.0


def test_rerank_k_is_clipped_and_retrieval_fetches_enough(day_eval: tuple[EvalResult, Path]) -> None:
    result, _ = day_eval
    day = result.domains["queries"]
    assert day.rerank is not None
    assert result.num_database == 64
    # K=100 > 64 database images: everything is retrieved and re-ranked, not just max(N)=5.
    assert day.predictions.shape == (8, 64) and day.rerank.k == 64
    assert result.settings["rerank"] == {
        "spec": SPEC,
        "k": 64,
        "retrieved": 64,
        "fusion": None,
        "fusion_weight": None,
        "cache": str(Path(result.settings["rerank"]["cache"])),
        "sweep": [1, 5, 20, 64],
    }
    for q in range(8):
        assert sorted(day.rerank.predictions[q]) == sorted(day.predictions[q])
        inl = day.rerank.inliers[q]
        assert np.all(inl >= 0) and np.all(np.diff(inl) <= 0)  # sorted by inliers, best first
    assert day.rerank.ms_per_query > 0 and day.rerank.database_ms_per_image > 0
    # The sweep's last K is the main re-ranking; K=1 is retrieval alone.
    assert [p.k for p in day.rerank.sweep] == [1, 5, 20, 64]
    assert day.rerank.sweep[-1].recalls == day.rerank.recalls
    assert day.rerank.sweep[0].recalls == day.recalls
    assert day.rerank.sweep[-1].ms_per_query == pytest.approx(day.rerank.ms_per_query)


def test_results_json_and_table_hold_both_recalls(day_eval: tuple[EvalResult, Path]) -> None:
    result, out = day_eval
    data = json.loads((out / "results.json").read_text())
    day = data["domains"]["queries"]
    assert day["recalls"] == {
        "1": result.domains["queries"].recalls[1],
        "5": result.domains["queries"].recalls[5],
    }
    rr = day["rerank"]
    assert rr["spec"] == SPEC and rr["k"] == 64 and rr["ms_per_query"] > 0
    assert rr["recalls"]["1"] >= day["recalls"]["1"]
    assert [p["k"] for p in rr["sweep"]] == [1, 5, 20, 64]
    first = day["queries"][0]
    assert len(first["rerank"]["predictions"]) == 64 and len(first["rerank"]["inliers"]) == 64
    assert first["rerank"]["inliers"] == sorted(first["rerank"]["inliers"], reverse=True)
    lines = result.table().splitlines()
    assert lines[0].endswith("| re-rank ms/query |")
    assert lines[2].startswith("| queries | 8 |")
    assert lines[3].startswith(f"| queries + {SPEC}@64 | 8 |")
    for ext in ("csv", "md", "png"):
        assert (out / f"rerank_sweep.{ext}").is_file()


def test_rerank_beyond_k_keeps_the_retrieval_order(tiny_city_root: Path) -> None:
    result = evaluate(
        tiny_city_root,
        "test",
        "tiny+gem",
        recall_values=(1, 10),
        domains=["queries"],
        options=NATIVE,
        rerank="orb+mnn+ransac",
        rerank_k=3,
    )
    day = result.domains["queries"]
    assert day.rerank is not None
    # Retrieval fetches max(K, max N) = 10; only the first 3 move.
    assert day.predictions.shape[1] == 10 and day.rerank.k == 3
    np.testing.assert_array_equal(day.rerank.predictions[:, 3:], day.predictions[:, 3:])
    assert np.all(day.rerank.inliers[:, 3:] == -1) and np.all(day.rerank.inliers[:, :3] >= 0)
    assert result.domains["queries"].recalls[10] == day.rerank.recalls[10]


def test_bad_rerank_settings_fail_before_any_work(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dataset"  # never reached: the settings are checked first
    with pytest.raises(UnknownNameError, match=r"unknown matcher 'mnm'.*did you mean: mnn.*known: .*ratio"):
        evaluate(missing, rerank="rootsift+mnm+ransac")
    with pytest.raises(ValueError, match="rerank_k must be a positive integer, got 0"):
        evaluate(missing, rerank=SPEC, rerank_k=0)
    with pytest.raises(ValueError, match="rerank_sweep given without a re-ranker"):
        evaluate(missing, rerank_sweep=[1, 5])
    with pytest.raises(ValueError, match="sweep K values must be positive integers, got 0"):
        evaluate(missing, rerank=SPEC, rerank_sweep=[0, 5])
    with pytest.raises(ValueError, match="rerank_fusion must be None, 'zscore' or 'linear', got 'mean'"):
        evaluate(missing, rerank=SPEC, rerank_fusion="mean")


def test_cli_eval_rerank_writes_both_recalls_and_the_sweep(
    tiny_city_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    argv = [
        "eval",
        "--dataset",
        str(tiny_city_root),
        "--model",
        "tiny+gem",
        "--domains",
        "queries,queries_night",
        "--recall",
        "1,5",
        "--resize",
        "native",
        "--no-progress",
        "--out",
        str(out),
        "--run-dir",
        str(tmp_path / "run"),
        "--rerank",
        "sift+ratio+fundamental",
        "--rerank-k",
        "10",
        "--rerank-sweep",
        "1,5,10",
        "--rerank-fusion",
        "linear",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| queries + sift+ratio+fundamental@10 (linear) | 8 |" in printed
    assert "| queries_night + sift+ratio+fundamental@10 (linear) | 8 |" in printed
    assert "rerank_sweep.png" in printed
    data = json.loads((out / "results.json").read_text())
    for name in ("queries", "queries_night"):
        d = data["domains"][name]
        assert set(d["recalls"]) == set(d["rerank"]["recalls"]) == {"1", "5"}
        assert d["rerank"]["k"] == 10 and d["rerank"]["fusion"] == "linear"
        assert len(d["queries"][0]["predictions"]) == 10  # max(K, max N) retrieved
    with open(out / "rerank_sweep.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["domain"], int(r["k"])) for r in rows] == [
        (d, k) for d in ("queries", "queries_night") for k in (0, 1, 5, 10)
    ]
    assert "| queries_night | 10 |" in (out / "rerank_sweep.md").read_text()
    with Image.open(out / "rerank_sweep.png") as im:
        assert im.format == "PNG"


def test_cli_bad_spec_is_one_clear_line(
    tiny_city_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "eval",
            "--dataset",
            str(tiny_city_root),
            "--model",
            "tiny+gem",
            "--rerank",
            "rootsfit+mnn+ransac",
            "--run-dir",
            str(tmp_path / "run"),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "unknown local feature extractor 'rootsfit'" in err and "did you mean: rootsift" in err
    assert "known:" in err and "orb" in err and "Traceback" not in err


def test_locate_rerank_lists_inliers(
    tiny_city_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    split = load_split(tiny_city_root, "test", progress=False)
    build_index(split.database, "tiny+gem", tmp_path / "idx", options=NATIVE, validate=False)
    photos = split.queries["queries"].paths[:2]

    plain = locate(photos, tmp_path / "idx", top_k=3)
    verified = locate(photos, tmp_path / "idx", top_k=3, rerank=SPEC, rerank_k=10)
    for p, v in zip(plain, verified, strict=True):
        assert all(m.inliers is None for m in p.matches)
        inliers = [m.inliers for m in v.matches]
        assert all(isinstance(i, int) for i in inliers) and inliers == sorted(inliers, reverse=True)  # type: ignore[type-var]
        # the predicted position is the re-ranked top-1's (nearest mode)
        assert (v.utm_east, v.utm_north) == (v.matches[0].utm_east, v.matches[0].utm_north)

    assert [m["inliers"] for m in verified[0].to_dict()["matches"]] == [
        m.inliers for m in verified[0].matches
    ]
    assert [m["inliers"] for m in plain[0].to_dict()["matches"]] == [None] * 3

    capsys.readouterr()
    argv = ["locate", *map(str, photos), "--index", str(tmp_path / "idx"), "--top-k", "2"]
    assert main([*argv, "--rerank", SPEC, "--rerank-k", "10"]) == 0
    text = capsys.readouterr().out
    assert text.count(" inliers  ") == 4
    assert f"{verified[0].matches[0].inliers:>4} inliers  " in text


def test_rerank_show_draws_a_real_pair(
    lund_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pair.png"
    argv = ["rerank-show", str(lund_dir / "02.jpg"), str(lund_dir / "03.jpg"), "--out", str(out)]
    assert main([*argv, "--height", "240"]) == 0
    inliers = int(capsys.readouterr().out.split(": ")[1].split(" inliers")[0])
    assert inliers >= 30  # consecutive frames of one walk: 118 at these settings
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[1] == 240
        rgb = np.asarray(im.convert("RGB")).reshape(-1, 3).astype(int)
    green = (rgb[:, 1] > 150) & (rgb[:, 0] < 60) & (rgb[:, 2] < 60)
    assert green.sum() > 200  # inlier lines are drawn
    assert main(["rerank-show", str(lund_dir / "02.jpg"), str(tmp_path / "nope.jpg"), "--out", str(out)]) == 1
