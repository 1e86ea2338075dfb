"""Distributed data parallel: 2 CPU processes (gloo on loopback) end with identical, trained weights."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.training._ddp_worker import run
from tests.training._helpers import small_config

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_processes_train_identical_weights(train_city: Path, tmp_path: Path) -> None:
    configs = [
        # CosPlace: global batch 8 = 4 images per process; classifier gradients averaged by hand.
        small_config(train_city, "cosplace", "schedule.epochs=1").to_dict(),
        # Triplets: the mining cache is computed half by each process and gathered.
        small_config(train_city, "triplet", "schedule.epochs=1", "triplet.queries_per_epoch=8").to_dict(),
        # CosPlace with 2 micro-batches of 2 per process: gradients synchronised once per step.
        small_config(train_city, "cosplace", "schedule.epochs=1", "runtime.accumulation_steps=2").to_dict(),
    ]
    mp.spawn(run, args=(2, _free_port(), configs, str(tmp_path)), nprocs=2, join=True)
    initial = {"cosplace": None, "triplet": None, "cosplace-accumulated": None}
    from vgloc.models import create_model

    torch.manual_seed(0)  # the trainer seeds the model's initialisation with runtime.seed=0
    initial_state = create_model("tiny+gem+fc64").state_dict()
    for i, method in enumerate(initial):
        r0 = torch.load(tmp_path / f"run{i}-rank0.pt", weights_only=True)
        r1 = torch.load(tmp_path / f"run{i}-rank1.pt", weights_only=True)
        for key, value in r0["state"].items():
            assert torch.equal(value, r1["state"][key]), f"{method}: {key} differs between ranks"
        trained = [
            k
            for k, v in r0["state"].items()
            if v.is_floating_point() and not torch.equal(v, initial_state[k])
        ]
        assert "head.fc.weight" in trained, f"{method}: the weights did not change"
        # Both ranks agree on the validation metrics (computed on rank 0 and broadcast).
        assert r0["history"] == r1["history"] or _same_metrics(r0["history"], r1["history"])
        # Only rank 0 writes the run folder.
        assert (tmp_path / f"run{i}" / "last.pt").is_file()
        steps = (tmp_path / f"run{i}" / "steps.csv").read_text().splitlines()
        assert len(steps) == 1 + (2 if method == "triplet" else 3)


def _same_metrics(a: list[dict], b: list[dict]) -> bool:
    keep = lambda row: {k: v for k, v in row.items() if k.startswith(("val/", "epoch", "step", "train_loss"))}  # noqa: E731
    return [keep(r) for r in a] == [keep(r) for r in b]
