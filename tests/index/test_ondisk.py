"""Indexes searched through memory maps: the same results as in RAM, chosen by flag, size or environment."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from tests.index.test_store import _descriptors, _images, _queries
from vgloc.index import GeoIndex
from vgloc.index.ondisk import ON_DISK_ENV, should_map

SPEC = "resnet18+gem+fc32"


# Toy data forced onto the approximate index trains its codebooks on a few hundred vectors;
# that warning is tested in test_faiss_index.py and is noise here.
@pytest.mark.filterwarnings("ignore:faiss factory.*below faiss's recommended:UserWarning")
@pytest.mark.parametrize(
    ("factory", "exact_max", "pca"),
    [("Flat", 100_000, None), ("IVF4,Flat", 100_000, None), ("auto", 100, None), ("auto", 100, 16)],
)
def test_on_disk_search_is_identical_to_in_ram(
    tmp_path: Path, factory: str, exact_max: int, pca: int | None
) -> None:
    built = GeoIndex.build(
        _descriptors(),
        _images(),
        model_spec=SPEC,
        image_size=None,
        factory=factory,
        exact_max=exact_max,
        pca=pca,
    )
    built.save(tmp_path / "idx")
    ram = GeoIndex.load(tmp_path / "idx", on_disk=False)
    disk = GeoIndex.load(tmp_path / "idx", on_disk=True)
    assert isinstance(disk.descriptors, np.memmap) and not isinstance(ram.descriptors, np.memmap)
    q = _queries()
    for k in (1, 10):
        s_ram, i_ram = ram.search(q, k)
        s_disk, i_disk = disk.search(q, k)
        np.testing.assert_array_equal(i_disk, i_ram)
        np.testing.assert_array_equal(s_disk, s_ram)
    if factory == "IVF4,Flat":  # the inverted lists are FAISS's on-disk lists over the mapped file
        ivf = faiss.extract_index_ivf(disk.index)
        assert type(faiss.downcast_InvertedLists(ivf.invlists)).__name__ == "OnDiskInvertedLists"


def test_the_choice_follows_size_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    GeoIndex.build(_descriptors(), _images(), model_spec=SPEC, image_size=None).save(tmp_path / "idx")
    meta = GeoIndex.read_metadata(tmp_path / "idx")
    monkeypatch.delenv(ON_DISK_ENV, raising=False)
    assert not should_map(tmp_path / "idx", meta)  # 40 kB: in RAM
    assert should_map(tmp_path / "idx", meta, fraction=1e-12)  # "larger than RAM"
    monkeypatch.setenv(ON_DISK_ENV, "1")
    assert should_map(tmp_path / "idx", meta)
    assert isinstance(GeoIndex.load(tmp_path / "idx").descriptors, np.memmap)
    monkeypatch.setenv(ON_DISK_ENV, "0")
    assert not should_map(tmp_path / "idx", meta, fraction=1e-12)
    monkeypatch.setenv(ON_DISK_ENV, "maybe")
    with pytest.raises(ValueError, match="must be 1 or 0"):
        should_map(tmp_path / "idx", meta)


def test_a_mapped_index_can_be_saved_elsewhere(tmp_path: Path) -> None:
    GeoIndex.build(_descriptors(), _images(), model_spec=SPEC, image_size=None).save(tmp_path / "a")
    disk = GeoIndex.load(tmp_path / "a", on_disk=True)
    disk.save(tmp_path / "b")
    again = GeoIndex.load(tmp_path / "b", on_disk=False)
    assert disk.descriptors is not None and again.descriptors is not None
    np.testing.assert_array_equal(again.descriptors, disk.descriptors)
    np.testing.assert_array_equal(again.search(_queries(), 5)[1], disk.search(_queries(), 5)[1])
