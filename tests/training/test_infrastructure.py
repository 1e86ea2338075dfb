"""Shared training infrastructure: image pipeline, optimizers/schedulers, RNG states, checkpoint files."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vgloc.config import AugmentConfig, OptimConfig, ScheduleConfig, resolve_config
from vgloc.data import build_transform
from vgloc.data.datasets import load_image
from vgloc.training.augment import ImageLoader, TrainAugment, augmentation_enabled
from vgloc.training.checkpoint import (
    CheckpointMismatchError,
    capture_rng_state,
    check_resume_config,
    load_training_checkpoint,
    resolve_resume_path,
    restore_rng_state,
    save_training_checkpoint,
)
from vgloc.training.engine import sample_seeds
from vgloc.training.metrics import RunLogger, truncate_csv
from vgloc.training.optim import build_optimizer, build_scheduler, optimizer_to, step_scheduler


@pytest.fixture()
def image_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "img.jpg"
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(path)
    return path


# ----------------------------------------------------------------------------- images


def test_unaugmented_pipeline_equals_the_evaluation_transform(image_file: Path) -> None:
    loader = ImageLoader([image_file], (24, 32))
    plain = TrainAugment(AugmentConfig(), (24, 32))
    ours = plain(loader(0), None)
    theirs = build_transform((24, 32))(load_image(image_file))
    assert ours.shape == (3, 24, 32)
    assert torch.equal(ours, theirs)


def test_augmentation_is_a_function_of_the_seed_and_leaves_the_global_rng_alone(image_file: Path) -> None:
    cfg = resolve_config("cosplace").augment  # CosPlace's jitter + random resized crop
    aug = TrainAugment(cfg, (24, 32))
    img = ImageLoader([image_file], (24, 32), cache=True)(0)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b, c = aug(img, 7), aug(img, 7), aug(img, 8)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (3, 24, 32)
    assert augmentation_enabled(cfg) and not augmentation_enabled(AugmentConfig())


def test_night_brightness_darkens_by_the_factor(image_file: Path) -> None:
    img = ImageLoader([image_file], (24, 32))(0)
    dark = TrainAugment(AugmentConfig(night_brightness=0.15), (24, 32))(img, 1)
    mean, std = (
        torch.tensor([0.485, 0.456, 0.406])[:, None, None],
        torch.tensor([0.229, 0.224, 0.225])[:, None, None],
    )
    pixels = dark * std + mean
    expected = (img.float() / 255 * 0.15).clamp(0, 1)
    assert torch.allclose(pixels, expected, atol=1e-5)
    never = TrainAugment(AugmentConfig(night_brightness=0.15, night_probability=0.0), (24, 32))(img, 1)
    assert torch.equal(never, TrainAugment(AugmentConfig(), (24, 32))(img, None))


def test_image_cache_returns_the_same_tensor(image_file: Path) -> None:
    loader = ImageLoader([image_file], (12, 16), cache=True)
    assert loader(0) is loader(0)
    assert loader(0).dtype == torch.uint8


def test_sample_seeds_are_counter_based() -> None:
    assert np.array_equal(sample_seeds(0, 1, 2, n=4), sample_seeds(0, 1, 2, n=4))
    assert not np.array_equal(sample_seeds(0, 1, 2, n=4), sample_seeds(0, 1, 3, n=4))


# ----------------------------------------------------------------------------- optimizers


@pytest.mark.parametrize(
    ("name", "cls", "wd"),
    [
        ("adam", torch.optim.Adam, 0.0),
        ("adamw", torch.optim.AdamW, 0.01),
        ("sgd", torch.optim.SGD, 0.001),
        ("asgd", torch.optim.ASGD, 0.0),
    ],
)
def test_optimizers_and_their_default_weight_decay(name: str, cls: type, wd: float) -> None:
    p = torch.nn.Parameter(torch.zeros(3))
    opt = build_optimizer([p], OptimConfig(name=name, lr=0.1))  # type: ignore[arg-type]
    assert isinstance(opt, cls)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["weight_decay"] == wd
    if name == "sgd":
        assert opt.param_groups[0]["momentum"] == 0.9  # VGB train.py:67-68
    opt = build_optimizer([p], OptimConfig(name=name, weight_decay=0.5), lr=0.01)  # type: ignore[arg-type]
    assert opt.param_groups[0]["weight_decay"] == 0.5 and opt.param_groups[0]["lr"] == 0.01


def test_no_trainable_parameter_is_an_error() -> None:
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer([], OptimConfig())


def test_schedulers() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], OptimConfig(lr=1.0))
    assert build_scheduler(opt, ScheduleConfig(scheduler="none")) is None
    p.grad = torch.zeros(1)
    opt.step()  # schedulers expect an optimizer step first
    plateau = build_scheduler(
        opt, ScheduleConfig(scheduler="plateau", plateau_patience=0, plateau_factor=0.5)
    )
    step_scheduler(plateau, 50.0)
    step_scheduler(plateau, 40.0)  # worse (mode max): the LR halves at once with patience 0
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)
    opt2 = build_optimizer([p], OptimConfig(lr=1.0))
    cosine = build_scheduler(opt2, ScheduleConfig(scheduler="cosine", epochs=4))
    for _ in range(4):
        opt2.step()
        step_scheduler(cosine, None)
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_optimizer_state_moves_between_devices() -> None:
    p = torch.nn.Parameter(torch.ones(3))
    opt = build_optimizer([p], OptimConfig(lr=0.1))
    p.grad = torch.ones(3)
    opt.step()
    optimizer_to(opt, "cpu")
    assert opt.state[p]["exp_avg"].device.type == "cpu"


# ----------------------------------------------------------------------------- RNG and checkpoint files


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    path = save_training_checkpoint(tmp_path / "c.pt", {"rng": [state]})
    loaded = torch.load(path, weights_only=True)
    restore_rng_state(loaded["rng"][0])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_resume_paths_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"last\.pt"):
        resolve_resume_path(tmp_path)
    torch.save({"state_dict": {}}, tmp_path / "last.pt")
    with pytest.raises(CheckpointMismatchError, match="not a vgloc training checkpoint"):
        load_training_checkpoint(tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointMismatchError, match="not a readable"):
        load_training_checkpoint(tmp_path / "junk.pt")


def test_resume_config_check_lists_every_difference() -> None:
    cfg = resolve_config("cosplace")
    ckpt = {"config": cfg.to_dict()}
    changed = resolve_config("cosplace", overrides=["runtime.device=cpu", "schedule.epochs=99"])
    allowed = check_resume_config(ckpt, changed)
    assert {k for k, _, _ in allowed} == {"runtime.device", "schedule.epochs"}
    bad = resolve_config("cosplace", overrides=["model.spec=resnet50+gem+fc512", "cosplace.M=20"])
    with pytest.raises(CheckpointMismatchError) as err:
        check_resume_config(ckpt, bad)
    assert "model.spec" in str(err.value) and "cosplace.M" in str(err.value)
    with pytest.raises(CheckpointMismatchError, match="'cosplace' run"):
        check_resume_config(ckpt, resolve_config("triplet"))


def test_run_logger_truncates_rows_of_an_interrupted_run(tmp_path: Path) -> None:
    logger = RunLogger(tmp_path, tensorboard=False, log_files=False)
    for step in range(1, 6):
        logger.log_step(1, step, 1.0 / step, 0.1, 10.0)
    logger.log_epoch({"epoch": 0, "step": 0, "val/R@1": 1.0}, [], {})
    logger.log_epoch({"epoch": 1, "step": 5, "train_loss": 0.5, "val/R@1": 2.0}, [], {})
    logger.close()
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0]
    assert "train_loss" in header  # the column added by the second row is in the header
    assert truncate_csv(tmp_path / "steps.csv", "step", 3) == 2
    assert [r.split(",")[1] for r in (tmp_path / "steps.csv").read_text().splitlines()[1:]] == ["1", "2", "3"]
