"""Appending images to a GeoIndex: new rows only, ids continue, the original stays usable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.index._synthetic import unit
from vgloc.data.records import GeoImageSet
from vgloc.index import GeoIndex, IndexStoreError
from vgloc.index.append import append_to_geoindex, new_image_rows


def _images(names: list[str]) -> GeoImageSet:
    rng = np.random.default_rng(len(names))
    n = len(names)
    return GeoImageSet.from_latlon(
        [Path(f"/data/db/{s}.jpg") for s in names],
        55.70 + rng.uniform(0, 0.01, n),
        13.19 + rng.uniform(0, 0.01, n),
    )


@pytest.mark.parametrize("factory", ["Flat", "IVF4,Flat"])
def test_append_adds_only_new_rows_after_the_old_ones(factory: str) -> None:
    rng = np.random.default_rng(0)
    old = GeoIndex.build(
        unit(rng.standard_normal((200, 16))),
        _images([f"a{i}" for i in range(200)]),
        model_spec="m",
        image_size=None,
        factory=factory,
        descriptor_dtype="float16",
    )
    names = ["a3", "b0", "b1", "b0", "a7", "b2"]  # two already indexed, one repeated
    incoming = _images(names)
    rows = new_image_rows(old, incoming)
    assert rows.tolist() == [1, 2, 5]
    new_desc = unit(rng.standard_normal((3, 16)))
    merged = append_to_geoindex(old, new_desc, incoming.subset(rows))
    assert len(merged) == 203 and len(old) == 200 and old.index.ntotal == 200
    assert [p.name for p in merged.images.paths[-3:]] == ["b0.jpg", "b1.jpg", "b2.jpg"]
    assert merged.descriptors is not None and merged.descriptors.dtype == np.float16
    _, ids = merged.search(new_desc, 1, params="nprobe=4")
    assert ids[:, 0].tolist() == [200, 201, 202]
    assert merged.metadata.num_images == 203 and merged.metadata.extra["appended"] == [3]
    assert merged.images.frame == old.images.frame


def test_append_refuses_other_columns() -> None:
    rng = np.random.default_rng(1)
    old = GeoIndex.build(
        unit(rng.standard_normal((20, 8))),
        _images([f"a{i}" for i in range(20)]),
        model_spec="m",
        image_size=None,
    )
    other = _images(["c0"])
    other.extra = {"pano_id": np.array(["p"])}
    with pytest.raises(IndexStoreError, match="columns"):
        append_to_geoindex(old, unit(rng.standard_normal((1, 8))), other)
    with pytest.raises(ValueError, match="descriptors must be"):
        append_to_geoindex(old, unit(rng.standard_normal((2, 8))), _images(["c0"]))
