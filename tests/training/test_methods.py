"""Training methods are registered; a third method is a new module plus its registration."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from vgloc.cli.train import add_train_parser
from vgloc.config import METHOD_PRESETS, ConfigError, TrainConfig, resolve_config
from vgloc.registry import TRAINING_METHODS
from vgloc.training import train
from vgloc.training.augment import ImageLoader, TrainAugment
from vgloc.training.data import EvalImageDataset
from vgloc.training.engine import Trainer
from vgloc.training.methods import TrainingMethod, get_method, register_method


def test_the_builtin_methods_are_registered_with_everything_the_cli_and_config_need() -> None:
    from vgloc.config import CosPlaceConfig, TripletConfig

    for name, section in (("triplet", TripletConfig), ("cosplace", CosPlaceConfig)):
        method = get_method(name)
        assert TRAINING_METHODS.get(name) is method
        assert method.config_class is section and isinstance(resolve_config(name).section(name), section)
        assert method.trainer_class().method == name
        assert method.help and method.description and method.preset()
        assert METHOD_PRESETS[name] == method.preset()
        assert TRAINING_METHODS.metadata(name)["description"] == method.help


def test_an_unknown_method_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown method 'cosplac'; did you mean cosplace\?"):
        resolve_config("cosplac")


# ----------------------------------------------------------------------------- a third method


@dataclass
class MeanConfig:
    """A toy method: pull every training image's descriptor towards the batch mean."""

    batch_size: int = 8
    steps: int = 2


class MeanTrainer(Trainer):
    """The smallest trainer: one loss on the database images, through the shared engine."""

    method = "mean"

    def prepare_data(self) -> None:
        size = self.cfg.data.image_size
        db = self.train_split.database
        self.dataset = EvalImageDataset(
            ImageLoader(db.paths, size), range(len(db)), TrainAugment(self.cfg.augment, size)
        )

    def steps_per_epoch(self) -> int:
        return int(self.cfg.mean.steps)

    def train_epoch(self, epoch: int, start_step: int) -> None:
        m = self.cfg.mean
        loader = DataLoader(
            self.dataset, batch_size=m.batch_size, shuffle=True, generator=self.loader_generator(epoch)
        )
        for i, (images, _) in enumerate(loader):
            if i < start_step:
                continue
            if i >= m.steps:
                break
            x = self.to_device(images)

            def compute_loss(x: Tensor = x) -> Tensor:
                d = self.forward(x).float()
                return (d - d.mean(0)).pow(2).sum(1).mean() + 1.0

            self.after_step(epoch, self.optimizer_step(compute_loss, optimizers=[self.optimizer]), len(x))


def check_mean(section: MeanConfig, cfg: TrainConfig) -> list[str]:
    return [] if section.steps >= 1 else [f"mean.steps={section.steps} must be >= 1"]


@pytest.fixture()
def mean_method() -> Iterator[TrainingMethod]:
    method = register_method(
        TrainingMethod(
            name="mean",
            config_class=MeanConfig,
            trainer="tests.training.test_methods:MeanTrainer",
            presets={"toy": {"schedule.epochs": (1, "test")}},
            help="a toy method registered by a test",
            description="It exists to show that a method needs no edit elsewhere.",
            check=check_mean,
        )
    )
    try:
        yield method
    finally:
        TRAINING_METHODS.unregister("mean")


def test_a_registered_method_gets_a_config_section_a_cli_command_and_trains(
    mean_method: TrainingMethod, train_city: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = resolve_config("mean", overrides=["mean.steps=3"])
    assert cfg.mean.steps == 3 and cfg.schedule.epochs == 1  # the section and the preset
    assert resolve_config("cosplace").mean.steps == 2  # every config has every method's section
    with pytest.raises(ConfigError, match=r"mean.steps=0 must be >= 1"):
        resolve_config("mean", overrides=["mean.steps=0"])

    parser = argparse.ArgumentParser(prog="vgloc")
    add_train_parser(parser.add_subparsers(dest="command", required=True))
    run = tmp_path / "run"
    argv = ["train", "mean", "--dataset", str(train_city), "--model", "tiny+gem", "--run-dir", str(run)]
    argv += ["--image-size", "48,64", "--batch-size", "4", "--no-progress", "--device", "cpu"]
    argv += ["--set", "runtime.num_workers=0", "--set", "runtime.tensorboard=false"]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    assert "best R@5" in capsys.readouterr().out
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["method"] == "mean" and ckpt["global_step"] == 2 and ckpt["config"]["mean"]["batch_size"] == 4
    # And through the Python API, resuming for one more epoch.
    more = resolve_config("mean", overrides=[*_common(train_city), "mean.batch_size=4", "schedule.epochs=2"])
    result = train(more, resume=run)
    assert result.global_step == 4


def _common(root: Path) -> list[Any]:
    return [
        f"data.root={root}",
        "model.spec=tiny+gem",
        "data.image_size=48,64",
        "runtime.device=cpu",
        "runtime.num_workers=0",
        "runtime.tensorboard=false",
        "runtime.progress=false",
    ]
