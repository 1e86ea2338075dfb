"""Training configuration: defaults with their sources, YAML, key=value overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vgloc.config import (
    METHOD_PRESETS,
    ConfigError,
    TrainConfig,
    apply_overrides,
    config_diff,
    load_config_file,
    resolve_config,
    save_config,
)


def test_triplet_defaults_follow_the_vg_benchmark() -> None:
    cfg = resolve_config("triplet")
    t = cfg.triplet
    assert (t.batch_size, t.infer_batch_size, t.margin, t.cache_refresh_rate, t.queries_per_epoch) == (
        4,
        16,
        0.1,
        1000,
        5000,
    )
    assert (t.negs_per_query, t.neg_samples, t.mining, t.pos_radius_m, t.neg_radius_m) == (
        10,
        1000,
        "partial",
        10,
        25,
    )
    assert (cfg.optim.name, cfg.optim.lr) == ("adam", 1e-5)
    assert (cfg.schedule.epochs, cfg.schedule.patience, cfg.schedule.select_metric) == (1000, 3, "R@5")
    assert cfg.model.spec == "resnet18.conv4+netvlad64"
    assert cfg.data.image_size == (480, 640)
    assert cfg.validation.recall_values == [1, 5, 10, 20]
    assert cfg.validation.threshold_m == 25.0
    assert cfg.augment.brightness == 0 and cfg.augment.random_resized_crop is None
    assert cfg.runtime.seed == 0 and cfg.runtime.precision == "auto"


def test_cosplace_defaults_follow_cosplace() -> None:
    cfg = resolve_config("cosplace")
    c = cfg.cosplace
    assert (c.M, c.alpha, c.N, c.L, c.min_images_per_class, c.groups_num) == (10, 30, 5, 2, 10, 8)
    assert (c.batch_size, c.iterations_per_epoch, c.classifiers_lr, c.loss) == (32, 10_000, 0.01, "cosface")
    assert (cfg.optim.name, cfg.optim.lr) == ("adam", 1e-5)
    assert (cfg.schedule.epochs, cfg.schedule.patience, cfg.schedule.select_metric) == (50, None, "R@1")
    a = cfg.augment
    assert (a.brightness, a.contrast, a.saturation, a.hue, a.random_resized_crop) == (
        0.7,
        0.7,
        0.7,
        0.5,
        (0.5, 1.0),
    )
    assert cfg.data.image_size == (512, 512)
    assert cfg.model.spec == "resnet18+gem+fc512"


def test_every_preset_entry_names_its_source() -> None:
    for method, preset in METHOD_PRESETS.items():
        for key, (_value, source) in preset.items():
            assert source.split()[0] in ("VGB", "CP", "GC", "GE"), f"{method} {key}: source {source!r}"
            TrainConfig().get(key)  # the key exists


def test_overrides_are_parsed_by_field_type() -> None:
    cfg = resolve_config(
        "triplet",
        overrides=[
            "optim.lr=1e-4",  # YAML 1.1 would read this as a string
            "data.image_size=96,128",
            "validation.domains=queries,queries_night",
            "schedule.patience=none",
            "runtime.progress=no",
            "triplet.loss_params={alpha: 10}",
            "augment.random_resized_crop=[0.5, 1]",
            "validation.image_size=64x85",
            "triplet.batch_size=8",
        ],
    )
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.data.image_size == (96, 128)
    assert cfg.validation.domains == ["queries", "queries_night"]
    assert cfg.schedule.patience is None
    assert cfg.runtime.progress is False
    assert cfg.triplet.loss_params == {"alpha": 10.0}
    assert cfg.augment.random_resized_crop == (0.5, 1.0)
    assert cfg.validation.image_size == (64, 85)
    assert cfg.triplet.batch_size == 8


def test_yaml_file_then_overrides(tmp_path: Path) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text(
        "method: cosplace\noptim:\n  lr: 1e-4\n  name: sgd\ncosplace:\n  M: 20\ndata:\n  image_size: [96, 128]\n"
    )
    cfg = resolve_config(None, f, ["optim.lr=2e-4"])
    assert cfg.method == "cosplace"
    assert cfg.cosplace.batch_size == 32  # preset kept
    assert cfg.cosplace.M == 20.0 and cfg.optim.name == "sgd"
    assert cfg.optim.lr == 2e-4  # the override wins over the file
    assert cfg.data.image_size == (96, 128)


def test_one_entry_of_a_mapping_is_set_by_a_dotted_key() -> None:
    cfg = resolve_config(
        "cosplace",
        overrides=[
            "cosplace.loss_params={m: 4}",
            "cosplace.loss_params.s=30",
            "cosplace.loss_params.annealing=true",
        ],
    )
    assert cfg.cosplace.loss_params == {"m": 4.0, "s": 30.0, "annealing": True}  # earlier entries kept
    with pytest.raises(ConfigError, match=r"cosplace\.loss_params\.s='abc': expected float \| bool"):
        resolve_config("cosplace", overrides=["cosplace.loss_params.s=abc"])


def test_saved_config_round_trips(tmp_path: Path) -> None:
    cfg = resolve_config("cosplace", overrides=["data.root=/data/x", "cosplace.loss_params={s: 64, m: 0.35}"])
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    loaded = yaml.safe_load(path.read_text())
    assert TrainConfig.from_dict(loaded) == cfg
    again = resolve_config(None, path)
    assert again == cfg
    assert config_diff(cfg, again) == []


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("optim.lrr=1", "did you mean optim.lr"),
        ("lr=1e-3", "did you mean optim.lr"),
        ("schedule.pateince=2", "schedule.patience"),
        ("optim=3", "is a section"),
        ("optim.name=adamm", "did you mean 'adam'"),
        ("data.image_size=1,2,3", "exactly 2 values"),
        ("runtime.seed=abc", "runtime.seed='abc'"),
        ("runtime.progress=maybe", "true or false"),
        ("optim.lr=nan", "not a finite number"),
        ("triplet.queries_per_epoch=4500", "multiple of triplet.cache_refresh_rate"),
        ("schedule.select_metric=R@3", "R@N with N in validation.recall_values"),
        ("augment.hue=0.7", "augment.hue"),
        ("noequals", "key=value"),
        ("method=cosplace", "conflicts"),
    ],
)
def test_bad_overrides_fail_with_a_clear_message(override: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_config("triplet", overrides=[override])
    assert needle in str(err.value)


def test_unknown_yaml_key_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("optim:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"optim.learning_rate.*bad.yaml"):
        resolve_config("triplet", f)
    f.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config_file(f)
    with pytest.raises(FileNotFoundError):
        load_config_file(tmp_path / "missing.yaml")


def test_file_for_another_method_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "cp.yaml"
    f.write_text("method: cosplace\n")
    with pytest.raises(ConfigError, match="cosplace"):
        resolve_config("triplet", f)


def test_apply_overrides_leaves_the_input_unchanged() -> None:
    cfg = resolve_config("triplet")
    new = apply_overrides(cfg, ["optim.lr=0.5"])
    assert cfg.optim.lr == 1e-5 and new.optim.lr == 0.5
    assert config_diff(cfg, new) == [("optim.lr", 1e-5, 0.5)]
