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
