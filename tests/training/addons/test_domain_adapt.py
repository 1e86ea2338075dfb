"""The ``da`` add-on: a domain classifier behind a gradient reversal layer, in triplet and CosPlace training."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.training._helpers import small_config
from tests.training.test_addons import _kill_after, _KilledError, _losses
from vgloc.config import ConfigError, resolve_config
from vgloc.models.grl import dann_lambda
from vgloc.training import train
from vgloc.training.addons import StepBatch, StepOutputs, build_addons
from vgloc.training.addons.domain_adapt import (
    DomainAdaptAddon,
    DomainAdaptConfig,
    _domain_classifier,
    find_target_images,
)
from vgloc.training.checkpoint import load_training_checkpoint
from vgloc.training.distributed import DistInfo

# ----------------------------------------------------------------------------- configuration


def test_a_target_folder_alone_turns_it_on(tmp_path: Path) -> None:
    assert [a.name for a in build_addons(resolve_config("cosplace"))] == []
    on = resolve_config("cosplace", overrides=[f"da.target={tmp_path}"])
    assert [a.name for a in build_addons(on)] == ["da"]
    off = resolve_config("cosplace", overrides=[f"da.target={tmp_path}", "da.enabled=false"])
    assert [a.name for a in build_addons(off)] == []


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("da.enabled=true", "da.enabled=true needs da.target"),
        ("da.weight=-1", "da.weight"),
        ("da.grl_lambda=-0.5", "da.grl_lambda"),
        ("da.hidden=0", "da.hidden"),
        ("da.batch_size=0", "da.batch_size"),
        ("da.lr=0", "da.lr"),
    ],
)
def test_bad_values_are_refused(override: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        resolve_config("triplet", overrides=[override])


def test_a_missing_absolute_target_is_refused_with_the_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such folder"):
        resolve_config("cosplace", overrides=[f"da.target={tmp_path / 'missing'}"])


def test_schedule_is_constant_or_dann() -> None:
    with pytest.raises(ConfigError, match=r"da\.schedule"):
        resolve_config("triplet", overrides=["da.schedule=linear"])


# ----------------------------------------------------------------------------- target images


def _touch_image(path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (40, 40, 90)).save(path)


def test_target_images_are_found_recursively(tmp_path: Path) -> None:
    _touch_image(tmp_path / "night" / "a.jpg")
    _touch_image(tmp_path / "night" / "street" / "b.png")
    (tmp_path / "night" / "notes.txt").write_text("not an image")
    found = find_target_images(tmp_path / "night")
    assert [p.name for p in found] == ["a.jpg", "b.png"]


def test_a_folder_name_is_looked_up_in_the_training_split(tmp_path: Path) -> None:
    split = tmp_path / "images" / "train"
    _touch_image(split / "queries_night" / "q.jpg")
    assert [p.name for p in find_target_images("queries_night", split)] == ["q.jpg"]


def test_missing_or_empty_target_folders_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such folder"):
        find_target_images(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(ConfigError, match="holds no images"):
        find_target_images(tmp_path / "empty")


def _setup_without_a_run(target: Path, *overrides: str) -> DomainAdaptAddon:
    """The add-on set up on a stand-in trainer (what setup and extra_inputs read of it)."""
    cfg = resolve_config("cosplace", overrides=[f"da.target={target}", "data.image_size=16,20", *overrides])
    trainer = SimpleNamespace(
        cfg=cfg,
        train_split=None,
        model=SimpleNamespace(descriptor_dim=8),
        device=torch.device("cpu"),
        dist=DistInfo(),
        global_step=0,
        step_images=3,
        steps_per_epoch=lambda: 10,
        augment_on_device=lambda augment, images, seeds: augment(images, seeds),
    )
    addon = DomainAdaptAddon(cfg.da)
    addon.setup(trainer)  # type: ignore[arg-type]
    return addon


def test_target_images_are_preprocessed_like_evaluation_images_and_drawn_per_step(tmp_path: Path) -> None:
    from PIL import Image

    from vgloc.data import build_transform

    colours = [(200, 20, 20), (20, 200, 20), (20, 20, 200), (90, 90, 90)]
    (tmp_path / "t").mkdir()
    for i, colour in enumerate(colours):
        Image.new("RGB", (32, 24), colour).save(tmp_path / "t" / f"{i}.png")
    # No augmentation: each target image is exactly the evaluation transform of one file.
    plain = _setup_without_a_run(
        tmp_path / "t",
        "augment.brightness=0",
        "augment.contrast=0",
        "augment.saturation=0",
        "augment.hue=0",
        "augment.random_resized_crop=null",
    )
    refs = [build_transform((16, 20))(Image.open(tmp_path / "t" / f"{i}.png")) for i in range(4)]
    x = plain.extra_inputs(0, 5)
    assert x.shape == (3, 3, 16, 20)  # as many as the method's batch (step_images)
    for row in x:
        assert min(float((row - r).abs().max()) for r in refs) < 1e-5
    # With the CosPlace preset's jitter: a function of (epoch, step) only.
    jitter = _setup_without_a_run(tmp_path / "t", "da.batch_size=5")
    a, b = jitter.extra_inputs(1, 7), jitter.extra_inputs(1, 7)
    assert a.shape == (5, 3, 16, 20) and torch.equal(a, b)
    assert not torch.equal(a, jitter.extra_inputs(1, 8))
    assert min(float((a[0] - r).abs().max()) for r in refs) > 1e-3  # augmented


# ----------------------------------------------------------------------------- the classifier


def _bare_addon(dim: int, **options: object) -> DomainAdaptAddon:
    """The add-on with its classifier but no trainer run (enough for loss_terms / log_metrics)."""
    addon = DomainAdaptAddon(DomainAdaptConfig(target="unused", **options))  # type: ignore[arg-type]
    torch.manual_seed(0)
    addon.classifier = _domain_classifier(dim, addon.config.hidden)
    addon.trainer = SimpleNamespace(dist=DistInfo(), device=torch.device("cpu"))  # type: ignore[assignment]
    addon.total_steps = 100
    return addon


def test_the_domain_classifier_learns_to_tell_separable_domains_apart() -> None:
    addon = _bare_addon(8, weight=1.0, hidden=16)
    assert addon.classifier is not None
    opt = torch.optim.Adam(addon.classifier.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    shift = torch.zeros(8)
    shift[0] = 1.0
    accuracies = []
    for epoch in range(4):
        for step in range(10):
            source = torch.randn(16, 8, generator=g) * 0.3 + shift
            target = torch.randn(16, 8, generator=g) * 0.3 - shift
            out = StepOutputs(source, {"da": target})
            batch = StepBatch(torch.zeros(16, 3, 4, 4), epoch, epoch * 10 + step)
            loss = addon.loss_terms(batch, out)["domain"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        accuracies.append(addon.log_metrics()["accuracy"])
    assert accuracies[0] < 90.0  # an untrained classifier starts near chance
    assert accuracies[-1] > 98.0
    assert accuracies[-1] > accuracies[0]


@pytest.mark.parametrize(("schedule", "step", "lam"), [("constant", 50, 0.5), ("dann", 50, 0.5 * 0.9866143)])
def test_the_descriptors_get_the_reversed_scaled_gradient(schedule: str, step: int, lam: float) -> None:
    addon = _bare_addon(4, weight=0.1, grl_lambda=0.5, schedule=schedule)
    assert addon.classifier is not None
    source = torch.randn(3, 4, requires_grad=True)
    target = torch.randn(2, 4, requires_grad=True)
    loss = addon.loss_terms(StepBatch(torch.zeros(3, 3, 4, 4), 0, step), StepOutputs(source, {"da": target}))
    loss["domain"].backward()
    assert addon.lambda_ == pytest.approx(lam, rel=1e-6)
    # The same loss without the reversal layer: the gradient the descriptors would get.
    x = torch.cat([source, target]).detach().requires_grad_(True)
    labels = torch.tensor([0, 0, 0, 1, 1])
    (0.1 * torch.nn.functional.cross_entropy(addon.classifier(x), labels)).backward()
    assert x.grad is not None and source.grad is not None and target.grad is not None
    torch.testing.assert_close(torch.cat([source.grad, target.grad]), -lam * x.grad)


# ----------------------------------------------------------------------------- training runs


@pytest.mark.parametrize("method", ["triplet", "cosplace"])
def test_training_with_the_addon_logs_accuracy_and_its_loss(
    method: str, train_city: Path, tmp_path: Path
) -> None:
    cfg = small_config(train_city, method, "da.target=queries_night", "schedule.epochs=1")
    result = train(cfg, run_dir=tmp_path / "run")
    row = result.history[-1]
    assert 0.0 <= row["da/accuracy"] <= 100.0
    assert row["loss/da/domain"] > 0
    assert row["da/lambda"] == 1.0  # constant by default
    state = load_training_checkpoint(result.run_dir)["addons"]["da"]
    assert set(state["classifier"]) >= {"0.weight", "4.bias"}
    # Balanced batches: every step classified as many target images as the method's batch had.
    per_step, rest = divmod(state["seen"], 2 * result.global_step)
    assert rest == 0
    assert per_step == (8 if method == "cosplace" else 4 * 12)  # cosplace.batch_size; 4 tuples of 1+1+10
    plain = train(small_config(train_city, method, "schedule.epochs=1"), run_dir=tmp_path / "plain")
    # The adversarial gradient reaches the network: the same recipe trains to other weights.
    differs = [
        k
        for k, v in plain.model.state_dict().items()
        if v.is_floating_point() and not torch.equal(v, result.model.state_dict()[k])
    ]
    assert differs


def test_resume_restores_the_classifier_and_draws_the_same_target_images(
    train_city: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "night"
    shutil.copytree(train_city / "images" / "train" / "queries_night", target)
    cfg = small_config(
        train_city,
        "cosplace",
        f"da.target={target}",
        "da.batch_size=4",
        "da.schedule=dann",
        "runtime.checkpoint_every_steps=2",
    )
    straight = train(cfg, run_dir=tmp_path / "straight")
    # 2 epochs of 3 steps: lambda after step 3 of 6 and after step 6 (p = 5/6 at the last step).
    lambdas = [r["da/lambda"] for r in straight.history]
    assert lambdas == pytest.approx([dann_lambda(2 / 6), dann_lambda(5 / 6)])
    run = tmp_path / "run"
    _kill_after(monkeypatch, 5)
    with pytest.raises(_KilledError):
        train(cfg, run_dir=run)
    monkeypatch.undo()
    assert load_training_checkpoint(run)["addons"]["da"]["epoch"] == 1  # mid-epoch 2, counters saved
    resumed = train(cfg, resume=run)
    assert _losses(run) == _losses(straight.run_dir)
    assert resumed.history[-1]["da/accuracy"] == straight.history[-1]["da/accuracy"]
    a = load_training_checkpoint(run)["addons"]["da"]["classifier"]
    b = load_training_checkpoint(straight.run_dir)["addons"]["da"]["classifier"]
    for key, value in b.items():
        assert torch.equal(value, a[key]), key


def test_a_bad_target_folder_stops_before_any_training_step(train_city: Path, tmp_path: Path) -> None:
    # A relative name is only resolved once the training split is known (the add-on's setup).
    cfg = small_config(train_city, "triplet", "da.target=queries_at_dusk")
    with pytest.raises(ConfigError, match="no such folder"):
        train(cfg, run_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "last.pt").exists()
    steps = tmp_path / "run" / "steps.csv"
    assert not steps.exists() or _losses(tmp_path / "run") == []  # the log's header at most
