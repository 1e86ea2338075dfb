"""Distributed ``vgloc index build --shard-dir`` and ``vgloc index merge``: the same index as one process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vgloc.cli import main
from vgloc.describers import ExtractionOptions, describer_for_index
from vgloc.index import GeoIndex

# Native size, 4 images a batch: 12 images make 3 batches, split 2 + 1 between two ranks.
COMMON = [
    "--model",
    "tiny+gem",
    "--resize",
    "native",
    "--batch-size",
    "4",
    "--no-progress",
    "--factory",
    "Flat",
]


def _db(tiny_city_root: Path, dest: Path, n: int = 12) -> Path:
    """A folder of links to the first ``n`` database images."""
    dest.mkdir()
    for f in sorted((tiny_city_root / "images" / "test" / "database").glob("*.jpg"))[:n]:
        (dest / f.name).symlink_to(f)
    return dest


def _assert_same_index(a: Path, b: Path) -> None:
    """Bit-identical descriptors and FAISS index, same images and model."""
    assert (a / "descriptors.npy").read_bytes() == (b / "descriptors.npy").read_bytes()
    assert (a / "index.faiss").read_bytes() == (b / "index.faiss").read_bytes()
    ia, ib = GeoIndex.load(a), GeoIndex.load(b)
    assert ia.images.paths == ib.images.paths
    assert ia.metadata.model_spec == ib.metadata.model_spec
    assert ia.metadata.image_size == ib.metadata.image_size
    # The merged index carries the describer's weights: queries get the same network.
    describer = describer_for_index(ib)
    again = describer.describe(
        ib.images.paths[:4], ExtractionOptions(image_size=None, batch_size=4, progress=False)
    )
    assert ib.descriptors is not None
    np.testing.assert_allclose(again, ib.descriptors[:4], atol=1e-5)


def test_shards_then_merge_equal_a_single_build(tiny_city_root: Path, tmp_path: Path) -> None:
    db = _db(tiny_city_root, tmp_path / "db")
    run = ["--run-dir", str(tmp_path / "run")]
    assert (
        main(["index", "build", "--images", str(db), "--out", str(tmp_path / "single.idx"), *COMMON, *run])
        == 0
    )
    shards = tmp_path / "shards"
    for k in (1, 0):  # any order
        args = ["index", "build", "--images", str(db), "--shard-dir", str(shards), "--shard", f"{k}/2"]
        assert main([*args, *COMMON, *run]) == 0
    merge = ["index", "merge", "--shard-dir", str(shards), "--factory", "Flat"]
    assert main([*merge, "--out", str(tmp_path / "merged.idx"), *run]) == 0
    _assert_same_index(tmp_path / "single.idx", tmp_path / "merged.idx")


def test_merge_refuses_a_missing_shard(
    tiny_city_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _db(tiny_city_root, tmp_path / "db", n=8)
    run = ["--run-dir", str(tmp_path / "run")]
    args = ["index", "build", "--images", str(db), "--shard-dir", str(tmp_path / "s"), "--shard", "0/2"]
    assert main([*args, *COMMON, *run]) == 0
    code = main(
        ["index", "merge", "--shard-dir", str(tmp_path / "s"), "--out", str(tmp_path / "m.idx"), *run]
    )
    assert code != 0
    assert "shard(s) [1] of 2 are missing" in capsys.readouterr().err
    assert not (tmp_path / "m.idx").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_torchrun_two_cpu_processes_build_the_single_process_index(
    tiny_city_root: Path, tmp_path: Path
) -> None:
    """Two real processes under torchrun (gloo barrier), rank 0 merges: the same index as one process."""
    db = _db(tiny_city_root, tmp_path / "db")
    run = ["--run-dir", str(tmp_path / "run")]
    assert (
        main(["index", "build", "--images", str(db), "--out", str(tmp_path / "single.idx"), *COMMON, *run])
        == 0
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "-m",
        "vgloc.cli",
        "index",
        "build",
        "--images",
        str(db),
        "--shard-dir",
        str(tmp_path / "shards"),
        "--out",
        str(tmp_path / "merged.idx"),
        *COMMON,
        *run,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == [
        "shard-00000-of-00002",
        "shard-00001-of-00002",
    ]
    _assert_same_index(tmp_path / "single.idx", tmp_path / "merged.idx")
    # Each rank logged to its own file in the shared run folder.
    assert {"log.txt", "log.rank1.txt"} <= {p.name for p in (tmp_path / "run").iterdir()}
