"""Training runs end to end on the synthetic city: learning, exact resume, checkpoints, errors."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.training._helpers import small_config
from vgloc.config import ConfigError
from vgloc.training import train
from vgloc.training.checkpoint import CheckpointMismatchError, load_training_checkpoint
from vgloc.training.engine import NonFiniteLossError, Trainer, TrainResult


class _KilledError(Exception):
    """Stands in for a crash or a kill signal in the middle of a run."""


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


def _recalls(result: TrainResult) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in row.items() if k.startswith(("val/", "train_loss", "epoch", "step"))}
        for row in result.history
    ]


def _assert_validation_recalls(root: Path, model_file: Path, row: dict[str, Any]) -> None:
    """``vgloc.evaluate`` of ``model_file`` on val day queries gives the recalls logged in ``row``."""
    from vgloc.api import ExtractionOptions, evaluate

    result = evaluate(
        root,
        "val",
        "tiny+gem+fc64",
        checkpoint=model_file,
        recall_values=(1, 5, 10),
        domains=["queries"],
        options=ExtractionOptions(image_size=(48, 64), precision="fp32", progress=False),
    )
    for n in (1, 5, 10):
        assert result.domains["queries"].recalls[n] == pytest.approx(row[f"val/queries/R@{n}"])


# ----------------------------------------------------------------------------- learning


def test_triplet_training_beats_the_untrained_model(same_district: Path, tmp_path: Path) -> None:
    """VG-benchmark triplets for 108 steps of 4 x 12 images raise val R@1 and R@5 clearly.

    Observed on 2 cores: R@1 15.0 -> 25-32.5 over the epochs (best 32.5), R@5 43.8 -> ~60.
    """
    cfg = small_config(
        same_district,
        "triplet",
        "triplet.cache_refresh_rate=72",
        "triplet.queries_per_epoch=72",
        "triplet.neg_samples=300",
        "schedule.epochs=6",
        "schedule.patience=null",
        "validation.before_training=true",
    )
    result = train(cfg, run_dir=tmp_path / "run")
    before, *epochs = result.history
    r1 = [row["val/queries/R@1"] for row in epochs]
    r5 = [row["val/queries/R@5"] for row in epochs]
    assert before["epoch"] == 0 and len(epochs) == 6
    assert max(r1) >= before["val/queries/R@1"] + 10, (before, r1)
    assert sum(r1) / len(r1) >= before["val/queries/R@1"] + 5, (before, r1)  # not a single lucky epoch
    assert max(r5) >= before["val/queries/R@5"] + 10, (before, r5)
    assert result.best_epoch >= 1 and result.best_metric == max(r1)
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]


def test_cosplace_training_beats_the_untrained_model(same_district: Path, tmp_path: Path) -> None:
    """CosPlace for 3 epochs of 60 steps of 16 images (2 groups) raises val R@1 clearly.

    Colour jitter is off: with it, a random-weight model needs many more steps at this size.
    Observed on 2 cores: R@1 15.0 -> 31.2, 28.7, 32.5.
    """
    cfg = small_config(
        same_district,
        "cosplace",
        "data.image_size=64,85",
        "cosplace.batch_size=16",
        "cosplace.iterations_per_epoch=60",
        "schedule.epochs=3",
        "augment.brightness=0",
        "augment.contrast=0",
        "augment.saturation=0",
        "augment.hue=0",
        "validation.before_training=true",
    )
    result = train(cfg, run_dir=tmp_path / "run")
    before, *epochs = result.history
    r1 = [row["val/queries/R@1"] for row in epochs]
    assert max(r1) >= before["val/queries/R@1"] + 10, (before, r1)
    assert sum(r1) / len(r1) >= before["val/queries/R@1"] + 5, (before, r1)
    assert result.best_epoch >= 1 and result.best_metric == max(r1)


# ----------------------------------------------------------------------------- exact resume

_STRAIGHT: dict[str, TrainResult] = {}


def _straight(method: str, root: Path, tmp: Path, extra: list[str]) -> TrainResult:
    if method not in _STRAIGHT:
        _STRAIGHT[method] = train(small_config(root, method, *extra), run_dir=tmp / f"straight-{method}")
    return _STRAIGHT[method]


@pytest.mark.parametrize(
    ("method", "kill_at", "extra"),
    [
        # 4 steps per epoch (2 refreshes x 2 steps); checkpoint at step 3 (inside a refresh): its tuples are restored.
        ("triplet", 3, ["runtime.checkpoint_every_steps=3"]),
        # killed at step 5, last checkpoint = end of epoch 1 (step 4): step 5's row is dropped from steps.csv.
        ("triplet", 5, ["runtime.checkpoint_every_steps=3"]),
        # 3 steps per epoch; checkpoints at steps 2 and 4 (both inside an epoch), killed at 5.
        ("cosplace", 5, ["runtime.checkpoint_every_steps=2"]),
    ],
)
def test_resume_reproduces_the_uninterrupted_run(
    method: str,
    kill_at: int,
    extra: list[str],
    train_city: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tmp = tmp_path_factory.mktemp("resume")
    straight = _straight(method, train_city, tmp_path_factory.getbasetemp(), extra)
    cfg = small_config(train_city, method, *extra)
    run = tmp / "run"
    _kill_after(monkeypatch, kill_at)
    with pytest.raises(_KilledError):
        train(cfg, run_dir=run)
    monkeypatch.undo()
    killed_rows = len(_losses(run))
    resumed = train(cfg, resume=run)  # the run folder is the resumed run's
    assert resumed.run_dir == run
    assert _losses(run) == _losses(straight.run_dir)
    assert len(_losses(run)) == straight.global_step
    assert killed_rows == kill_at
    assert _recalls(resumed) == _recalls(straight)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


# ----------------------------------------------------------------------------- checkpoints and export


@pytest.fixture(scope="module")
def cosplace_run(train_city: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(small_config(train_city, "cosplace"), run_dir=tmp_path_factory.mktemp("cp") / "run")


def test_run_folder_contents(cosplace_run: TrainResult) -> None:
    run = cosplace_run.run_dir
    for name in (
        "config.yaml",
        "info.log",
        "debug.log",
        "steps.csv",
        "metrics.csv",
        "metrics.json",
        "last.pt",
    ):
        assert (run / name).is_file(), name
    assert cosplace_run.best_model == run / "best_model.pt" and cosplace_run.best_model.is_file()
    assert len(_losses(run)) == 6  # 2 epochs x 3 iterations
    assert "epoch 2" in (run / "info.log").read_text()


def test_checkpoints_load_with_weights_only(cosplace_run: TrainResult) -> None:
    for name in ("last.pt", "best.pt"):
        path = cosplace_run.run_dir / name
        if not path.exists():
            continue
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        assert ckpt["format"] == "vgloc-train-checkpoint"
        assert ckpt["config"]["method"] == "cosplace"
        assert {"model", "optimizer", "scheduler", "epoch", "global_step", "rng", "method_state"} <= set(ckpt)
        assert {"python", "numpy", "torch"} <= set(ckpt["rng"][0])
        assert len(ckpt["method_state"]["classifiers"]) == 2  # one per group, with their optimizers
        assert len(ckpt["method_state"]["classifier_optimizers"]) == 2
    last = load_training_checkpoint(cosplace_run.run_dir)
    assert last["epoch"] == 2 and last["global_step"] == 6


def test_exported_model_evaluates_as_in_validation(cosplace_run: TrainResult, train_city: Path) -> None:
    from vgloc.models import load_model

    assert cosplace_run.best_model is not None
    model = load_model(cosplace_run.best_model)
    assert model.spec == "tiny+gem+fc64"
    assert model.checkpoint_extra["image_size"] == [48, 64]
    best = [row for row in cosplace_run.history if row["best"]][-1]
    _assert_validation_recalls(train_city, cosplace_run.best_model, best)


def test_resume_with_another_recipe_is_refused(
    cosplace_run: TrainResult, train_city: Path, tmp_path: Path
) -> None:
    run = tmp_path / "copy"
    shutil.copytree(cosplace_run.run_dir, run)
    other = small_config(train_city, "cosplace", "model.spec=tiny+gem+fc32", "schedule.epochs=3")
    with pytest.raises(
        CheckpointMismatchError, match=r"model\.spec: checkpoint 'tiny\+gem\+fc64', now 'tiny\+gem\+fc32'"
    ):
        train(other, resume=run)
    # The weights themselves are checked too (e.g. a checkpoint edited or from another version).
    ckpt = torch.load(run / "last.pt", weights_only=True)
    del ckpt["model"]["head.fc.weight"]
    torch.save(ckpt, run / "last.pt")
    with pytest.raises(CheckpointMismatchError, match="do not fit model 'tiny\\+gem\\+fc64'"):
        train(small_config(train_city, "cosplace", "schedule.epochs=3"), resume=run)
    with pytest.raises(CheckpointMismatchError, match="'cosplace' run"):
        train(small_config(train_city, "triplet"), resume=run)


def test_a_finished_run_continues_with_more_epochs(
    cosplace_run: TrainResult, train_city: Path, tmp_path: Path
) -> None:
    run = tmp_path / "copy"
    shutil.copytree(cosplace_run.run_dir, run)
    more = train(small_config(train_city, "cosplace", "schedule.epochs=3"), resume=run)
    assert more.global_step == 9 and len(more.history) == 3


def test_a_run_folder_is_never_overwritten(cosplace_run: TrainResult, train_city: Path) -> None:
    with pytest.raises(ConfigError, match="already holds a training run"):
        train(small_config(train_city, "cosplace"), run_dir=cosplace_run.run_dir)


# ----------------------------------------------------------------------------- divergence and bad input


def test_nan_loss_is_a_clear_error(train_city: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vgloc.losses.margin import MarginHead

    original = MarginHead.loss
    monkeypatch.setattr(MarginHead, "loss", lambda self, x, y: original(self, x, y) * float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"training loss is nan at epoch 1, step 1 .*Lower optim.lr"):
        train(small_config(train_city, "cosplace"), run_dir=tmp_path / "run")


def test_diverged_weights_are_a_clear_error(train_city: Path, tmp_path: Path) -> None:
    from vgloc.models import create_model, save_model

    model = create_model("tiny+gem+fc64")
    with torch.no_grad():
        model.head.fc.weight.fill_(float("nan"))
    save_model(model, tmp_path / "nan.pt")
    cfg = small_config(train_city, "triplet", f"model.weights={tmp_path / 'nan.pt'}")
    with pytest.raises(NonFiniteLossError, match="NaN/inf descriptors"):
        train(cfg, run_dir=tmp_path / "run")


@pytest.mark.parametrize(
    ("method", "overrides", "needle"),
    [
        ("cosplace", ["cosplace.min_images_per_class=500"], "smaller min_images_per_class"),
        ("cosplace", ["cosplace.groups_num=40"], "groups_num"),
        ("cosplace", ["cosplace.batch_size=64"], "fewer classes than cosplace.batch_size=64"),
        (
            "triplet",
            ["triplet.cache_refresh_rate=1000", "triplet.queries_per_epoch=1000"],
            "cache_refresh_rate<=",
        ),
        ("triplet", ["data.train_queries=queries_rain"], "no folder ['queries_rain']"),
        ("triplet", ["validation.domains=queries_rain"], "validation.domains"),
        ("triplet", ["data.root=null"], "data.root is not set"),
        ("triplet", ["triplet.loss_params={nonsense: 1}"], "triplet.loss='triplet'"),
    ],
)
def test_untrainable_setups_fail_before_training(
    method: str, overrides: list[str], needle: str, train_city: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as err:
        train(small_config(train_city, method, *overrides), run_dir=tmp_path / "run")
    assert needle in str(err.value)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_cosplace_needs_headings(train_city: Path, tmp_path: Path) -> None:
    # A copy of the train database with gmberton names that stop after the UTM fields.
    root = tmp_path / "noheading"
    for split in ("train", "val"):
        for folder in ("database", "queries"):
            out = root / "images" / split / folder
            out.mkdir(parents=True)
            for i, f in enumerate(sorted((train_city / "images" / split / folder).iterdir())[:40]):
                east, north = f.name.split("@")[1:3]
                shutil.copyfile(f, out / f"@{east}@{north}@{i:03d}.jpg")
    with pytest.raises(ConfigError, match=r"have no heading.*heading_policy"):
        train(small_config(root, "cosplace"), run_dir=tmp_path / "run")


# ----------------------------------------------------------------------------- run-time options


def test_bf16_channels_last_and_a_cosine_schedule(train_city: Path, tmp_path: Path) -> None:
    cfg = small_config(
        train_city,
        "cosplace",
        "runtime.precision=bf16",
        "runtime.channels_last=true",
        "schedule.scheduler=cosine",
        "optim.name=adamw",
    )
    result = train(cfg, run_dir=tmp_path / "run")
    lrs = [row["lr"] for row in result.history]
    assert all(row["train_loss"] > 0 for row in result.history)
    assert lrs == pytest.approx([1e-3, 1e-3 * 0.5])  # the LR each epoch trained with: cos(pi / 2) halves it
    ckpt = load_training_checkpoint(result.run_dir)
    assert ckpt["scheduler"]["T_max"] == 2


def test_fp16_needs_cuda(train_city: Path, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        train(small_config(train_city, "cosplace", "runtime.precision=fp16"), run_dir=tmp_path / "run")


def test_tensorboard_events_are_written(train_city: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    result = train(
        small_config(train_city, "triplet", "runtime.tensorboard=true", "schedule.epochs=1"),
        run_dir=tmp_path / "run",
    )
    events = list((result.run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_missing_tensorboard_is_skipped_with_a_log_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sys

    from vgloc.training.metrics import RunLogger

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    with caplog.at_level("INFO", logger="vgloc"):
        logger = RunLogger(tmp_path, tensorboard=True, log_files=False)
    logger.close()
    assert not logger.tensorboard_enabled
    assert "pip install tensorboard" in caplog.text


def test_netvlad_clusters_are_initialised_from_training_images_once(
    train_city: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = small_config(
        train_city,
        "triplet",
        "model.spec=tiny+netvlad8",
        "model.netvlad_init_images=20",
        "model.netvlad_init_per_image=10",
        "schedule.epochs=1",
    )
    with caplog.at_level("INFO", logger="vgloc"):
        result = train(cfg, run_dir=tmp_path / "run")
    assert "initialising NetVLAD clusters from 20 training images" in caplog.text
    assert result.model.aggregator.initialized
    caplog.clear()
    more = small_config(train_city, "triplet", *cfg_overrides(cfg), "schedule.epochs=2")
    with caplog.at_level("INFO", logger="vgloc"):
        train(more, resume=result.run_dir)
    assert "initialising NetVLAD" not in caplog.text  # a resumed run keeps its trained clusters


def cfg_overrides(cfg: Any) -> list[str]:
    return [
        f"model.spec={cfg.model.spec}",
        f"model.netvlad_init_images={cfg.model.netvlad_init_images}",
        f"model.netvlad_init_per_image={cfg.model.netvlad_init_per_image}",
    ]


def test_max_minutes_stops_at_an_epoch_boundary_and_keeps_the_initial_weights(
    train_city: Path, tmp_path: Path
) -> None:
    """A budget shorter than one epoch: the first epoch finishes, is validated and saved, then the run stops."""
    cfg = small_config(
        train_city,
        "cosplace",
        "schedule.epochs=50",
        "schedule.max_minutes=0.001",
        "validation.before_training=true",
    )
    result = train(cfg, run_dir=tmp_path / "run")
    assert result.stopped_by_time and not result.stopped_early
    assert [row["epoch"] for row in result.history] == [0, 1]
    assert load_training_checkpoint(result.run_dir)["epoch"] == 1
    # initial_model.pt holds the weights the before-training validation measured.
    _assert_validation_recalls(train_city, result.run_dir / "initial_model.pt", result.history[0])


def test_without_max_minutes_every_epoch_runs(cosplace_run: TrainResult) -> None:
    assert not cosplace_run.stopped_by_time and [row["epoch"] for row in cosplace_run.history] == [1, 2]


def test_sphereface_annealing_is_reachable_from_the_config(train_city: Path, tmp_path: Path) -> None:
    """Booleans in cosplace.loss_params reach the margin head: the Caffe lambda schedule counts steps."""
    cfg = small_config(
        train_city,
        "cosplace",
        "cosplace.loss=sphereface",
        "cosplace.loss_params={s: 30, annealing: true}",
        "schedule.epochs=1",
    )
    result = train(cfg, run_dir=tmp_path / "run")
    classifiers = load_training_checkpoint(result.run_dir)["method_state"]["classifiers"]
    # Epoch 1 trains group 0 only, for cosplace.iterations_per_epoch=3 steps.
    assert [int(c["iteration"]) for c in classifiers] == [3, 0]
