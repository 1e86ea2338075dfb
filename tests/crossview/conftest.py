"""One tiny synthetic city (street views + aerial tiles) for the cross-view tests (~4 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vgloc.data.synthetic import generate_city


@pytest.fixture(scope="session")
def xv_city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in ``tiny`` city at 48x64 with 32-pixel aerial tiles (15 train, 9 test tiles)."""
    return generate_city(
        tmp_path_factory.mktemp("xv-city") / "city",
        "tiny",
        0,
        image_size=(48, 64),
        aerial_size=32,
        progress=False,
        workers=1,
    )
