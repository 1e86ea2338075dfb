"""Index shards: a split by position, atomic shards, and a merge equal to one build or a refusal."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from tests.index.test_store import _descriptors, _images
from vgloc.data.records import GeoImageSet
from vgloc.index import GeoIndex
from vgloc.index.shards import ShardError, merge_shards, read_shards, shard_bounds, shard_name, write_shard

IDENTITY = {"model_spec": "tiny+gem", "descriptor_dim": 32, "image_size": [48, 64], "extra": {"seed": 0}}


def _weights(tag: bytes = b"w") -> dict:
    return {"model.pt": lambda p: p.write_bytes(tag * 100)}


def _put(
    shard_dir: Path,
    k: int,
    n_shards: int,
    images: GeoImageSet,
    desc: np.ndarray,
    identity: dict | None = None,
    files: dict | None = None,
    align: int = 8,
) -> Path:
    """Write shard ``k`` of ``n_shards`` of (images, desc), as rank ``k`` would."""
    a, b = shard_bounds(len(images), n_shards, align)[k]
    return write_shard(
        shard_dir,
        shard=k,
        num_shards=n_shards,
        start=a,
        database=images,
        descriptors=desc[a:b],
        identity=IDENTITY if identity is None else identity,
        files=files,
    )


def _write_all(
    shard_dir: Path, n_shards: int, *, n: int = 300, align: int = 16
) -> tuple[np.ndarray, GeoImageSet]:
    images, desc = _images(n), _descriptors(n)
    for k in range(n_shards):
        _put(shard_dir, k, n_shards, images, desc, files=_weights(), align=align)
    return desc, images


@pytest.mark.parametrize(
    ("n", "shards", "align"), [(300, 2, 16), (300, 7, 16), (5, 4, 16), (10, 3, 1), (0, 2, 4)]
)
def test_shard_bounds_tile_the_database_in_whole_batches(n: int, shards: int, align: int) -> None:
    bounds = shard_bounds(n, shards, align)
    assert len(bounds) == shards
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a == b0 for (_, a), (b0, _) in itertools.pairwise(bounds))  # contiguous
    assert all(a % align == 0 for a, _ in bounds)  # every shard starts on a batch boundary
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= align  # balanced to within one batch
    assert shard_bounds(n, shards, align) == bounds  # deterministic


def test_merge_equals_a_single_build(tmp_path: Path) -> None:
    desc, images = _write_all(tmp_path / "shards", 3)
    merged = merge_shards(tmp_path / "shards", tmp_path / "merged.idx", factory="IVF4,Flat")
    single = GeoIndex.build(desc, images, model_spec="tiny+gem", image_size=(48, 64), factory="IVF4,Flat")
    np.testing.assert_array_equal(merged.descriptors, single.descriptors)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged.idx", "shards"]  # no spill file left
    assert merged.images.paths == images.paths
    np.testing.assert_array_equal(merged.images.extra["gravity"], images.extra["gravity"])
    assert bytes(faiss.serialize_index(merged.index)) == bytes(faiss.serialize_index(single.index))
    loaded = GeoIndex.load(tmp_path / "merged.idx", expect_model_spec="tiny+gem")
    assert (tmp_path / "merged.idx" / "model.pt").read_bytes() == b"w" * 100  # the describer's weights
    assert loaded.metadata.image_size == (48, 64)
    assert loaded.metadata.extra["merged_from_shards"] == 3


def test_a_failed_rank_leaves_no_shard_and_the_merge_refuses(tmp_path: Path) -> None:
    images, desc = _images(40), _descriptors(40)
    _put(tmp_path, 0, 2, images, desc)

    def crash(path: Path) -> None:
        path.write_bytes(b"half")
        raise RuntimeError("rank 1 died")

    with pytest.raises(RuntimeError, match="rank 1 died"):
        _put(tmp_path, 1, 2, images, desc, files={"model.pt": crash})
    assert not (tmp_path / shard_name(1, 2)).exists()
    with pytest.raises(ShardError, match=r"shard\(s\) \[1\] of 2 are missing"):
        read_shards(tmp_path)


def test_a_half_written_shard_is_refused(tmp_path: Path) -> None:
    _write_all(tmp_path, 2, n=40)
    victim = tmp_path / shard_name(1, 2) / "descriptors.npy"
    victim.write_bytes(victim.read_bytes()[:-8])  # truncated
    with pytest.raises(ShardError, match="truncated"):
        read_shards(tmp_path)
    (tmp_path / shard_name(0, 2) / "shard.json").unlink()  # killed before its metadata
    with pytest.raises(ShardError, match="not a complete shard"):
        read_shards(tmp_path)


@pytest.mark.parametrize(
    "change",
    [
        {"model_spec": "resnet18+gem"},
        {"image_size": [480, 640]},
        {"extra": {"seed": 1}},
    ],
)
def test_a_shard_of_another_build_is_refused(tmp_path: Path, change: dict) -> None:
    images, desc = _images(40), _descriptors(40)
    _put(tmp_path, 0, 2, images, desc)
    _put(tmp_path, 1, 2, images, desc, identity={**IDENTITY, **change})
    with pytest.raises(ShardError, match="identity differs"):
        read_shards(tmp_path)


def test_other_weights_another_database_or_shard_count_are_refused(tmp_path: Path) -> None:
    images, desc = _images(40), _descriptors(40)
    for k, tag in ((0, b"a"), (1, b"b")):
        _put(tmp_path / "weights", k, 2, images, desc, files=_weights(tag))
    with pytest.raises(ShardError, match="identity differs"):
        read_shards(tmp_path / "weights")

    _put(tmp_path / "db", 0, 2, images, desc)
    _put(tmp_path / "db", 1, 2, _images(41), _descriptors(41))  # a rank that saw one more image
    with pytest.raises(ShardError, match="num_images differs"):
        read_shards(tmp_path / "db")

    _write_all(tmp_path / "mixed", 2, n=40)
    _put(tmp_path / "mixed", 0, 3, images, desc)  # left over from a 3-rank run
    with pytest.raises(ShardError, match="different numbers of shards"):
        read_shards(tmp_path / "mixed")


def test_edited_paths_are_refused(tmp_path: Path) -> None:
    _write_all(tmp_path, 2, n=40)
    meta = tmp_path / shard_name(1, 2) / "shard.json"
    info = json.loads(meta.read_text())
    info["paths"][0] = "/elsewhere.jpg"
    meta.write_text(json.dumps(info))
    with pytest.raises(ShardError, match="not the database"):
        read_shards(tmp_path)


def test_no_shards(tmp_path: Path) -> None:
    with pytest.raises(ShardError, match="holds no shards"):
        read_shards(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_shards(tmp_path / "nope")
