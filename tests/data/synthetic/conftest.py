"""Shared synthetic-city fixtures: one tiny city per test session (a few seconds)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from vgloc.data.synthetic import CityMap, CitySize, generate_city

# One block per split district, 2 headings: ~60 images, about a second to write.
MICRO = CitySize(
    train_cols=1, val_cols=1, test_cols=1, rows=1, db_spacing_m=40.0, db_headings=2,
    queries_per_pano=0.3, aerial_step_m=100.0,
)  # fmt: skip


@pytest.fixture(scope="session")
def tiny_city() -> CityMap:
    return CityMap.generate(0, "tiny")


TINY_SECONDS: list[float] = []  # how long the session's tiny city took (asserted by a test)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    t = time.perf_counter()
    root = generate_city(tmp_path_factory.mktemp("synth") / "tiny", "tiny", 0, progress=False, workers=1)
    TINY_SECONDS.append(time.perf_counter() - t)
    return root
