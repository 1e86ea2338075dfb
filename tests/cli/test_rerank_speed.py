"""--rerank-workers / --rerank-exact-top on vgloc eval and vgloc locate (vgloc.cli.rerank_speed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli._helpers import subparsers
from vgloc.cli import build_parser
from vgloc.cli.rerank_speed import check_rerank_speed_args, rerank_from_args
from vgloc.rerank import LocalFeatureReranker

BASE = {"eval": ["eval", "--model", "resnet18+gem"], "locate": ["locate", "q.jpg", "--index", "idx"]}


def _parse(command: str, *extra: str) -> object:
    return build_parser().parse_args([*BASE[command], *extra])


@pytest.mark.parametrize("command", ["eval", "locate"])
def test_speed_options_build_the_re_ranker(command: str, tmp_path: Path) -> None:
    assert {"--rerank-workers", "--rerank-exact-top"} <= set(
        subparsers(build_parser())[command]._option_string_actions
    )
    plain = _parse(command, "--rerank", "rootsift+mnn+ransac", "--rerank-cache", str(tmp_path / "f.h5"))
    # Without a speed option nothing is built: the spec and cache go through unchanged.
    assert rerank_from_args(plain) == ("rootsift+mnn+ransac", tmp_path / "f.h5")  # type: ignore[arg-type]
    args = _parse(
        command, "--rerank", "rootsift+mnn+ransac", "--rerank-cache", str(tmp_path / "f.h5"),
        "--rerank-workers", "3", "--rerank-exact-top", "5",
    )  # fmt: skip
    rr, cache = rerank_from_args(args)  # type: ignore[arg-type]
    try:
        assert isinstance(rr, LocalFeatureReranker) and cache is None
        assert rr.fast.workers == 3 and rr.fast.exact_top == 5 and rr.exact_top == 5
        assert rr.cache is not None and Path(rr.cache.path) == tmp_path / "f.h5"  # the cache went in with it
    finally:
        rr.close()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rerank-workers", "2"], "give --rerank SPEC"),
        (
            ["--rerank", "rootsift+mnn+ransac", "--rerank-exact-top", "1", "--rerank-fusion", "zscore"],
            "--rerank-fusion",
        ),
        (
            ["--rerank", "rootsift+mnn+ransac", "--rerank-exact-top", "1", "--rerank-sweep", "1,5"],
            "--rerank-sweep",
        ),
    ],
)
def test_contradicting_speed_options_are_refused(extra: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_rerank_speed_args(_parse("eval", *extra))  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_speed_options_take_positive_integers(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse("locate", "--rerank", "rootsift+mnn+ransac", "--rerank-workers", bad)
    assert "--rerank-workers" in capsys.readouterr().err
