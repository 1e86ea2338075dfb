"""Rebuild the checkpoint fixtures' synthetic state dicts (rules in the fixtures' README)."""

from __future__ import annotations

import zlib
from pathlib import Path

import torch

_DTYPES = {"float32": torch.float32, "int64": torch.int64}


def rule_tensor(key: str, shape: tuple[int, ...], dtype: torch.dtype, rule: str) -> torch.Tensor:
    """The tensor the fixture README's weight rule A or B assigns to ``key``."""
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=dtype)
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    w = torch.randn(shape, generator=g, dtype=torch.float32) * 0.05
    if key.endswith("running_var"):
        w = w.abs() + 1.0
    if key.endswith("running_mean"):
        w = w * 0.1
    if rule == "B":
        if key.endswith(".weight") and len(shape) == 1:
            w = w + 1.0
        if key.endswith(".p") and shape == (1,):
            w = w + 3.0
    return w.to(dtype)


def state_dict_from_tsv(path: Path, rule: str) -> dict[str, torch.Tensor]:
    """The authors' state dict (their key names) for a ``<name>.keys.tsv`` file."""
    sd = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        key, shape, dtype = line.split("\t")
        shp = tuple(int(s) for s in shape.split(",")) if shape else ()
        sd[key] = rule_tensor(key, shp, _DTYPES[dtype], rule)
    return sd


def fixture_input(h: int = 224, w: int = 224) -> torch.Tensor:
    """The fixtures' input rule."""
    return torch.randn((2, 3, h, w), generator=torch.Generator().manual_seed(1234))
