"""Worker of the 2-process DDP test (importable, so that ``torch.multiprocessing.spawn`` can pickle it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def run(rank: int, world_size: int, port: int, configs: list[dict[str, Any]], out_dir: str) -> None:
    """Join a gloo job on loopback, train each config, save this rank's final weights."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
    )
    from vgloc.config import TrainConfig
    from vgloc.training import train

    for i, data in enumerate(configs):
        cfg = TrainConfig.from_dict(data)
        result = train(cfg, run_dir=Path(out_dir) / f"run{i}")
        state = {k: v.detach().cpu().clone() for k, v in result.model.state_dict().items()}
        torch.save({"state": state, "history": result.history}, Path(out_dir) / f"run{i}-rank{rank}.pt")
