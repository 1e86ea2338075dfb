"""Shared options: value parsers, and one name per setting with old names as aliases."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from tests.cli._helpers import all_commands
from vgloc.cli import build_parser, parse_image_size, parse_int_list
from vgloc.cli.options import OPTION_ALIASES


def test_value_parsers() -> None:
    assert parse_int_list("1,5,10") == [1, 5, 10]
    assert parse_image_size("480,640") == (480, 640)
    assert parse_image_size("192x256") == (192, 256)
    assert parse_image_size("native") is None
    for bad in ("0,5", "a,b", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_int_list(bad)
    for bad in ("480", "4,4", "big"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_image_size(bad)


# (command line without the option, canonical option, alias, value, attribute, parsed value)
ALIAS_CASES = [
    (["index", "build", "--images", "d", "--out", "o", "--model", "m"], "--image-size", "--resize",
     "96,128", "image_size", (96, 128)),
    (["eval", "--dataset", "d", "--model", "m"], "--image-size", "--resize", "native", "image_size", None),
    (["demo"], "--image-size", "--resize", "64x80", "image_size", (64, 80)),
    (["locate", "q.jpg", "--index", "i"], "--image-size", "--resize", "96,128", "image_size", (96, 128)),
    (["train", "cosplace"], "--image-size", "--resize", "96,128", "image_size", "96,128"),
    (["rerank-show", "q.jpg", "c.jpg", "--out", "o.png"], "--rerank", "--spec", "sift+ratio+fundamental",
     "rerank", "sift+ratio+fundamental"),
    (["locate", "q.jpg", "--index", "i"], "--rerank", "--spec", "orb+mnn+ransac", "rerank", "orb+mnn+ransac"),
    (["eval", "--dataset", "d", "--model", "m"], "--rerank", "--spec", "orb+mnn+ransac", "rerank",
     "orb+mnn+ransac"),
    (["demo"], "--dataset", "--dataset-dir", "city", "dataset", Path("city")),
    (["eval", "--model", "m"], "--dataset", "--dataset-dir", "d", "dataset", Path("d")),
    (["train", "triplet"], "--dataset", "--dataset-dir", "d", "dataset", Path("d")),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "canonical", "alias", "value", "dest", "parsed"), ALIAS_CASES)
def test_alias_parses_to_the_same_value_as_the_canonical_name(
    argv: list[str], canonical: str, alias: str, value: str, dest: str, parsed: object
) -> None:
    assert alias in OPTION_ALIASES[canonical]
    by_name = build_parser().parse_args([*argv, canonical, value])
    by_alias = build_parser().parse_args([*argv, alias, value])
    assert getattr(by_name, dest) == getattr(by_alias, dest) == parsed
    assert vars(by_name) == vars(by_alias)


def test_rerank_show_keeps_its_default_spec() -> None:
    args = build_parser().parse_args(["rerank-show", "q.jpg", "c.jpg", "--out", "o.png"])
    assert args.rerank == "rootsift+mnn+ransac"


@pytest.mark.parametrize(("name", "parser"), all_commands())
def test_every_setting_has_one_name_and_help_shows_the_aliases(
    name: str, parser: argparse.ArgumentParser
) -> None:
    aliases = {a: c for c, names in OPTION_ALIASES.items() for a in names}
    for action in parser._actions:
        strings = action.option_strings
        # An old name never stands alone: it always rides on the canonical option.
        for s in strings:
            if s in aliases:
                assert aliases[s] in strings, f"`vgloc {name}` has {s} without {aliases[s]}"
        if strings and strings[0] in OPTION_ALIASES:
            assert strings[1:] == list(OPTION_ALIASES[strings[0]]), f"`vgloc {name}` {strings}"
            for old in strings[1:]:
                assert f"alias: {old}" in (action.help or "")
    text = parser.format_help()
    for canonical, old_names in OPTION_ALIASES.items():
        if any(canonical in a.option_strings for a in parser._actions):
            assert f"{canonical}, {', '.join(old_names)}" in text
            assert f"(alias: {', '.join(old_names)})" in " ".join(text.split())


# -- multi-scale testing: --scales / --scale-fusion -----------------------------------------

SCALE_COMMANDS = [
    ["eval", "--dataset", "d", "--model", "m"],
    ["index", "build", "--images", "d", "--out", "o", "--model", "m"],
    ["index", "add", "--index", "i", "--images", "d"],
    ["locate", "q.jpg", "--index", "i"],
]


@pytest.mark.parametrize("argv", SCALE_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_scales_and_fusion_parse_on_every_describing_command(argv: list[str]) -> None:
    args = build_parser().parse_args([*argv, "--scales", "0.5,1", "--scale-fusion", "max"])
    assert (args.scales, args.scale_fusion) == ((0.5, 1.0), "max")
    default = build_parser().parse_args(argv)
    assert (default.scales, default.scale_fusion) == (None, None)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0,1", "positive"),
        ("-0.5", "positive"),
        ("1,1", "more than once"),
        ("a,b", "0.5,1,1.5"),
        (",", "at least"),
    ],
)
def test_bad_scales_are_refused_by_the_parser(
    value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*SCALE_COMMANDS[0], f"--scales={value}"])
    assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args([*SCALE_COMMANDS[0], "--scale-fusion", "mean"])
    assert "invalid choice: 'mean'" in capsys.readouterr().err


@pytest.mark.slow  # ~15 s: builds an index and evaluates the tiny city through the CLI
def test_an_index_built_at_scales_is_searched_at_them(
    tiny_city_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from vgloc.cli import main
    from vgloc.data import load_split

    small = [
        "--image-size",
        "32,48",
        "--batch-size",
        "8",
        "--log-level",
        "warning",
        "--run-dir",
        str(tmp_path / "r"),
    ]
    db = load_split(tiny_city_root, "test").database
    scales = ["--scales", "0.5,1", "--scale-fusion", "max"]
    build = ["index", "build", "--images", str(db.paths[0].parent), "--model", "tiny+gem", "--out"]
    assert main([*build, str(tmp_path / "idx"), *scales, *small]) == 0
    assert main(["eval", "--dataset", str(tiny_city_root), "--index", str(tmp_path / "idx"), "--no-report",
                 "--out", str(tmp_path / "out"), *small]) == 0  # fmt: skip
    settings = json.loads((tmp_path / "out" / "results.json").read_text())["settings"]
    assert (settings["scales"], settings["scale_fusion"]) == ([0.5, 1.0], "max")
    capsys.readouterr()
    # Scales given explicitly that differ from the index's are one clear error, in eval and locate.
    assert main(["eval", "--dataset", str(tiny_city_root), "--index", str(tmp_path / "idx"), "--scales", "1",
                 "--out", str(tmp_path / "out2"), *small]) != 0  # fmt: skip
    assert "the index was described at scales 0.5,1 fused by max" in capsys.readouterr().err
    assert main(["locate", str(db.paths[0]), "--index", str(tmp_path / "idx"), "--scale-fusion", "avg",
                 "--log-level", "warning"]) != 0  # fmt: skip
    assert "but scales 0.5,1 fused by avg were asked for" in capsys.readouterr().err
    assert main(["locate", str(db.paths[0]), "--index", str(tmp_path / "idx"), "--json", "--top-k", "1",
                 *scales, "--log-level", "warning"]) == 0  # fmt: skip
    [pred] = json.loads(capsys.readouterr().out)
    assert pred["matches"][0]["similarity"] == pytest.approx(1.0, abs=1e-4)


def test_launcher_rank_reads_torchrun_variables() -> None:
    from vgloc.cli.options import launcher_rank

    assert launcher_rank({}) == 0
    assert launcher_rank({"RANK": "3", "WORLD_SIZE": "4"}) == 3
    assert launcher_rank({"RANK": "0", "WORLD_SIZE": "1"}) == 0
    assert launcher_rank({"RANK": "x", "WORLD_SIZE": "2"}) == 0


@pytest.mark.parametrize("rank", [0, 1])
def test_under_torchrun_only_rank_0_makes_a_default_run_folder(
    rank: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vgloc.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", "2")
    merge = ["index", "merge", "--shard-dir", str(tmp_path / "none"), "--out", str(tmp_path / "m.idx")]
    assert main(merge) != 0  # (no shards: fails at once, after logging is set up)
    folders = list((tmp_path / "runs").glob("*-index")) if (tmp_path / "runs").exists() else []
    assert len(folders) == (1 if rank == 0 else 0)
    # With --run-dir every rank logs there, each to its own file.
    assert main([*merge, "--run-dir", str(tmp_path / "run")]) != 0
    expected = "log.txt" if rank == 0 else "log.rank1.txt"
    assert [p.name for p in (tmp_path / "run").iterdir()] == [expected]
    assert "ERROR vgloc: no shard directory at" in (tmp_path / "run" / expected).read_text()


@pytest.mark.parametrize("argv", [*SCALE_COMMANDS[:3], ["demo"]], ids=lambda a: " ".join(a[:2]))
def test_jpeg_draft_reaches_the_extraction_options(argv: list[str]) -> None:
    from vgloc.cli.options import extraction_options

    full = build_parser().parse_args([*argv, "--no-jpeg-draft"])
    assert extraction_options(full).jpeg_draft is False
    assert extraction_options(build_parser().parse_args(argv)).jpeg_draft is True  # the default
    assert extraction_options(build_parser().parse_args([*argv, "--jpeg-draft"])).jpeg_draft is True
