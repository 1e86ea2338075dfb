"""Add-ons plug into every trainer through the engine: snapshots, and a toy add-on using every hook."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from tests.training._helpers import small_config
from vgloc.training import train
from vgloc.training.addons import ADDONS, StepBatch, StepOutputs, TrainerAddon, TrainingAddon, register_addon
from vgloc.training.checkpoint import load_training_checkpoint
from vgloc.training.engine import Trainer


class _KilledError(Exception):
    """Stands in for a crash in the middle of a run."""


def _kill_after(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    original = Trainer.after_step

    def after_step(self: Trainer, epoch: int, loss: float, images: int) -> None:
        original(self, epoch, loss, images)
        if self.global_step == step:
            raise _KilledError(f"killed after step {step}")

    monkeypatch.setattr(Trainer, "after_step", after_step)


def _losses(run_dir: Path) -> list[tuple[str, str]]:
    with (run_dir / "steps.csv").open() as fh:
        return [(row["step"], row["loss"]) for row in csv.DictReader(fh)]


# ----------------------------------------------------------------------------- snapshots


@pytest.mark.parametrize("method", ["triplet", "cosplace"])
def test_snapshots_are_saved_after_every_epoch(method: str, train_city: Path, tmp_path: Path) -> None:
    from vgloc.models import load_model

    result = train(small_config(train_city, method, "snapshots.enabled=true"), run_dir=tmp_path / "run")
    files = sorted((result.run_dir / "snapshots").iterdir())
    assert [f.name for f in files] == ["epoch_001.pt", "epoch_002.pt"]
    last = load_model(files[-1])
    assert last.spec == "tiny+gem+fc64" and last.checkpoint_extra["epoch"] == 2
    assert last.checkpoint_extra["image_size"] == [48, 64]
    for key, value in result.model.state_dict().items():  # the last snapshot is the final model
        assert torch.equal(value.cpu(), last.state_dict()[key]), key
    ckpt = load_training_checkpoint(result.run_dir)
    assert ckpt["addons"]["snapshots"] == {"saved": [1, 2]}
    assert result.history[-1]["snapshots/count"] == 2


def test_snapshot_state_round_trips_through_resume(
    train_city: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``snapshots.keep=1`` deletes the previous snapshot: only a resumed run that restored the
    add-on's list knows that epoch 1's file is there to delete."""
    cfg = small_config(
        train_city,
        "cosplace",
        "snapshots.enabled=true",
        "snapshots.keep=1",
        "runtime.checkpoint_every_steps=2",
    )
    straight = train(cfg, run_dir=tmp_path / "straight")
    run = tmp_path / "run"
    _kill_after(monkeypatch, 5)  # checkpoint at step 4: epoch 2, with epoch 1's snapshot recorded
    with pytest.raises(_KilledError):
        train(cfg, run_dir=run)
    monkeypatch.undo()
    assert load_training_checkpoint(run)["addons"]["snapshots"] == {"saved": [1]}
    resumed = train(cfg, resume=run)
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == ["epoch_002.pt"]
    assert load_training_checkpoint(run)["addons"]["snapshots"] == {"saved": [2]}
    assert _losses(run) == _losses(straight.run_dir)
    assert resumed.history[-1]["snapshots/count"] == 1


def test_snapshots_may_be_turned_on_when_resuming(train_city: Path, tmp_path: Path) -> None:
    first = train(small_config(train_city, "cosplace", "schedule.epochs=1"), run_dir=tmp_path / "run")
    more = small_config(train_city, "cosplace", "schedule.epochs=2", "snapshots.enabled=true")
    train(more, resume=first.run_dir)
    assert sorted(p.name for p in (first.run_dir / "snapshots").iterdir()) == ["epoch_002.pt"]


# ----------------------------------------------------------------------------- every hook


@dataclass
class ToyConfig:
    """A learnable scale, two extra images per step, a loss term between their descriptors."""

    enabled: bool = False
    weight: float = 0.5


class ToyAddon(TrainerAddon):
    """Uses every hook of the contract, as a domain classifier would (see vgloc.training.addons.base)."""

    name = "toy"

    def setup(self, trainer: Trainer) -> None:
        super().setup(trainer)
        self.scale = nn.Parameter(torch.ones(1, device=trainer.device))
        self.calls = 0
        self.image_size = trainer.cfg.data.image_size

    def parameters(self) -> list[nn.Parameter]:
        return [self.scale]

    def optimizer_options(self) -> dict[str, Any]:
        return {"lr": 0.05}

    def extra_inputs(self, epoch: int, step: int) -> Tensor:
        g = torch.Generator().manual_seed(1000 * epoch + step)  # a function of the step: exact resume
        return torch.rand(2, 3, *self.image_size, generator=g)

    def loss_terms(self, batch: StepBatch, outputs: StepOutputs) -> dict[str, Tensor]:
        self.calls += 1
        target = outputs.extra_descriptors["toy"]
        assert target.shape[0] == 2 and outputs.descriptors.shape[0] == batch.images.shape[0]
        assert outputs.loss is not None and outputs.loss.ndim == 0
        gap = outputs.descriptors.float().mean(0) - target.float().mean(0)
        return {"pull": self.config.weight * (self.scale * gap).pow(2).sum()}

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale.detach().cpu().clone(), "calls": self.calls}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state:
            with torch.no_grad():
                self.scale.copy_(state["scale"])
            self.calls = int(state["calls"])

    def log_metrics(self) -> dict[str, float]:
        return {"calls": float(self.calls), "scale": float(self.scale.detach())}


@pytest.fixture()
def toy_addon() -> Iterator[None]:
    register_addon(TrainingAddon("toy", ToyConfig, "tests.training.test_addons:ToyAddon", help="test add-on"))
    try:
        yield
    finally:
        ADDONS.unregister("toy")


@pytest.mark.parametrize("method", ["triplet", "cosplace"])
def test_an_addon_with_parameters_inputs_and_a_loss_term_needs_no_trainer_edit(
    method: str, toy_addon: None, train_city: Path, tmp_path: Path
) -> None:
    result = train(small_config(train_city, method, "toy.enabled=true"), run_dir=tmp_path / "run")
    row = result.history[-1]
    steps = result.global_step
    assert row["toy/calls"] == steps  # one loss term per step
    assert row["loss/toy/pull"] > 0
    assert row["toy/scale"] != 1.0  # its parameter was optimised
    plain = train(small_config(train_city, method), run_dir=tmp_path / "plain")
    assert [r["train_loss"] for r in plain.history] != [r["train_loss"] for r in result.history]


def test_an_addon_resumes_exactly(
    toy_addon: None, train_city: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = small_config(train_city, "cosplace", "toy.enabled=true", "runtime.checkpoint_every_steps=2")
    straight = train(cfg, run_dir=tmp_path / "straight")
    run = tmp_path / "run"
    _kill_after(monkeypatch, 5)
    with pytest.raises(_KilledError):
        train(cfg, run_dir=run)
    monkeypatch.undo()
    resumed = train(cfg, resume=run)
    assert _losses(run) == _losses(straight.run_dir)
    assert resumed.history[-1]["toy/scale"] == straight.history[-1]["toy/scale"]
    assert resumed.history[-1]["toy/calls"] == 6
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
