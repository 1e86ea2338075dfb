"""vgloc.models.onnx_cache: which exports stay on disk, and what leaves with them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from vgloc.models.onnx_cache import CACHE_KEEP, _prune


def _write(path: Path, age: int, content: bytes = b"x") -> None:
    path.write_bytes(content)
    os.utime(path, (1000 + age, 1000 + age))


def test_the_cache_keeps_only_the_most_recent_exports(tmp_path: Path) -> None:
    for i in range(CACHE_KEEP + 3):
        _write(tmp_path / f"{i:02d}.onnx", i)
    _prune(tmp_path, keep=CACHE_KEEP)
    left = sorted(f.name for f in tmp_path.glob("*.onnx"))
    assert left == [f"{i:02d}.onnx" for i in range(3, CACHE_KEEP + 3)]


def test_derived_graphs_leave_with_their_export(tmp_path: Path) -> None:
    for i in range(CACHE_KEEP + 1):
        for name in (f"{i:02d}.onnx", f"{i:02d}.int8-abc.onnx", f"{i:02d}.int8-abc.cpu.optimized.onnx"):
            _write(tmp_path / name, i)
    # A derived graph newer than every export does not keep its (oldest) export alive.
    os.utime(tmp_path / "00.int8-abc.onnx", (5000, 5000))
    _prune(tmp_path, keep=CACHE_KEEP)
    left = {p.name for p in tmp_path.iterdir()}
    assert not any(n.startswith("00.") for n in left)  # the oldest export and its int8 forms
    assert {"01.onnx", "01.int8-abc.onnx", "01.int8-abc.cpu.optimized.onnx"} <= left
    assert len(left) == 3 * CACHE_KEEP


def test_checkpoint_records_of_evicted_or_unreadable_exports_are_dropped(tmp_path: Path) -> None:
    for i in range(CACHE_KEEP + 1):
        _write(tmp_path / f"{i:02d}.onnx", i)
    records = {
        "checkpoint-kept.json": json.dumps({"export": f"{CACHE_KEEP:02d}.onnx"}),
        "checkpoint-evicted.json": json.dumps({"export": "00.onnx"}),
        "checkpoint-damaged.json": "{not json",
        "checkpoint-nokey.json": json.dumps({"other": 1}),
    }
    for name, text in records.items():
        (tmp_path / name).write_text(text)
    _prune(tmp_path, keep=CACHE_KEEP)
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*.json")) == ["checkpoint-kept.json"]
