"""Training fixtures: one synthetic city per session (~15 s), small configs that train in seconds."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.training._helpers import TRAIN_CITY
from vgloc.data.synthetic import generate_city


@pytest.fixture(scope="session")
def train_city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The training-test city (train, val and test districts)."""
    return generate_city(
        tmp_path_factory.mktemp("train-city") / "city",
        TRAIN_CITY,
        0,
        image_size=(72, 96),
        progress=False,
        workers=1,
    )


@pytest.fixture(scope="session")
def tiny_city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in ``tiny`` city (``vgloc synth --size tiny``), rendered small (72x96) for speed."""
    return generate_city(
        tmp_path_factory.mktemp("tiny-city") / "city",
        "tiny",
        0,
        image_size=(72, 96),
        progress=False,
        workers=1,
    )


@pytest.fixture(scope="session")
def same_district(train_city: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A benchmark whose val split is unseen query photos of the *training* district.

    ``train`` = the city's train database + every other day query; ``val`` = the same
    database + the remaining day queries. A model trained for a CI budget from random
    weights learns the training district's places; the city's own val district (other
    buildings) needs far longer training (see the ``slow`` tests).
    """
    root = tmp_path_factory.mktemp("same-district") / "city"
    src = train_city / "images" / "train"
    queries = sorted((src / "queries").iterdir())
    for split, picked in (("train", queries[0::2]), ("val", queries[1::2])):
        for folder, files in (("database", sorted((src / "database").iterdir())), ("queries", picked)):
            out = root / "images" / split / folder
            out.mkdir(parents=True)
            for f in files:
                try:
                    os.link(f, out / f.name)
                except OSError:
                    shutil.copyfile(f, out / f.name)
    return root
