"""Settings that follow the data: published recipes kept when they work, adapted (never explicit keys) when not."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vgloc.config import resolve_config
from vgloc.data.records import GeoImageSet
from vgloc.training.adapt import AdaptationPlan, apply_adaptations, image_size_adaptation
from vgloc.training.methods.cosplace.adapt import group_layout, plan_cosplace
from vgloc.training.methods.cosplace.groups import build_cosplace_groups
from vgloc.training.methods.triplet.adapt import plan_triplet


def _images(utm: np.ndarray, heading: np.ndarray) -> GeoImageSet:
    n = len(utm)
    return GeoImageSet(
        paths=[Path(f"/x/{i}.jpg") for i in range(n)],
        utm=utm,
        latlon=np.full((n, 2), np.nan),
        heading=heading,
        frame=None,
        name="train/database",
    )


def _street_city(spacing_m: float, length_m: float = 600.0, streets: int = 4) -> GeoImageSet:
    """Panoramas every ``spacing_m`` along east-west streets 40 m apart, 4 headings each (like the synthetic city)."""
    xs = np.arange(0.0, length_m, spacing_m) + 0.5
    pts = [(x, 40.0 * s + 0.5) for s in range(streets) for x in xs]
    utm = np.repeat(np.array(pts), 4, axis=0)
    heading = np.tile([45.0, 135.0, 225.0, 315.0], len(pts))
    return _images(utm, heading)


def _dense_city() -> GeoImageSet:
    """Large enough for CosPlace's recipe: 10 images in every (10 m cell, 30 degree sector) of 200 x 200 m."""
    rng = np.random.default_rng(0)
    cells = np.array([(x, y) for x in range(0, 200, 10) for y in range(0, 200, 10)], dtype=float)
    sectors = np.arange(0.0, 360.0, 30.0)
    utm = np.repeat(np.repeat(cells, len(sectors), axis=0), 10, axis=0) + rng.uniform(
        0.5, 9.5, (len(cells) * 12 * 10, 2)
    )
    heading = np.tile(np.repeat(sectors, 10), len(cells)) + rng.uniform(1, 29, len(utm))
    return _images(utm, heading)


def test_the_published_cosplace_recipe_is_kept_when_the_data_is_large_enough() -> None:
    cfg = resolve_config("cosplace")
    plan = plan_cosplace(cfg, _dense_city())
    assert plan.changes == []
    assert "8 group(s)" in plan.summary and "as configured" in plan.summary


@pytest.mark.parametrize("spacing", [24.0, 12.0, 7.5])  # the tiny, small and medium city's panorama spacing
def test_cosplace_adapts_to_a_sparse_city_and_the_result_trains(spacing: float) -> None:
    images = _street_city(spacing)
    cfg = resolve_config("cosplace")
    plan = plan_cosplace(cfg, images)
    keys = {c.key for c in plan.changes}
    assert {"cosplace.M", "cosplace.min_images_per_class", "cosplace.iterations_per_epoch"} <= keys
    apply_adaptations(cfg, plan, what="cosplace")
    c = cfg.cosplace
    assert c.M >= 10 and c.min_images_per_class >= 2 and cfg.source("cosplace.M") == "adapted"
    # The groups the trainer builds with the adapted values can each fill a batch.
    groups = build_cosplace_groups(
        images, c.M, c.alpha, c.N, c.L, c.min_images_per_class, c.groups_num, "error", order=c.group_order
    )
    assert len(groups) == c.groups_num and all(g.num_classes >= c.batch_size for g in groups)
    assert c.iterations_per_epoch < 10_000
    cfg.validate()


def test_group_layout_counts_what_build_cosplace_groups_builds() -> None:
    images = _street_city(12.0)
    for M, k, N, L, order in [(25, 2, 2, 2, "cosplace"), (30, 3, 3, 1, "sorted"), (10, 2, 5, 2, "cosplace")]:
        lay = group_layout(images, M, 30, N, L, k, True, order)
        try:
            groups = build_cosplace_groups(
                images, M, 30, N, L, k, 0, "error", order=order, min_classes_per_group=1
            )
        except ValueError:
            groups = []
        assert lay.group_sizes == tuple(g.num_classes for g in groups)


def test_explicit_keys_are_never_adapted() -> None:
    images = _street_city(12.0)
    cfg = resolve_config("cosplace", overrides=["cosplace.M=30", "cosplace.batch_size=16"])
    plan = plan_cosplace(cfg, images)
    keys = {c.key for c in plan.changes}
    assert "cosplace.M" not in keys and "cosplace.batch_size" not in keys
    assert "cosplace.min_images_per_class" in keys
    # A config from a file or a checkpoint (a dict) counts as explicit everywhere.
    from vgloc.config import TrainConfig

    given = TrainConfig.from_dict(resolve_config("cosplace").to_dict())
    assert plan_cosplace(given, images).changes == []


def test_adaptation_that_cannot_help_leaves_the_error_to_the_trainer() -> None:
    cfg = resolve_config("cosplace", overrides=["cosplace.min_images_per_class=500", "cosplace.M=10"])
    assert plan_cosplace(cfg, _street_city(24.0)).changes == []


@pytest.mark.parametrize(
    ("trainable", "rate", "qpe"),
    [(9, 4, 8), (104, 20, 100), (342, 68, 340)],  # the tiny, small and medium city's queries with a positive
)
def test_triplet_refresh_and_epoch_fit_the_trainable_queries(trainable: int, rate: int, qpe: int) -> None:
    cfg = resolve_config("triplet")
    plan = plan_triplet(cfg, trainable, trainable + 5)
    apply_adaptations(cfg, plan, what="triplet")
    assert (cfg.triplet.cache_refresh_rate, cfg.triplet.queries_per_epoch) == (rate, qpe)
    assert cfg.triplet.cache_refresh_rate <= trainable and cfg.triplet.queries_per_epoch <= trainable
    cfg.validate()


def test_triplet_keeps_the_vg_benchmark_values_when_a_refresh_fits() -> None:
    cfg = resolve_config("triplet")
    plan = plan_triplet(cfg, 7416, 7416)  # pitts30k's training queries
    assert plan.changes == [] and "5 refresh(es) of 1000 queries" in plan.summary


def test_triplet_with_a_fixed_epoch_gets_a_refresh_that_divides_it() -> None:
    cfg = resolve_config(
        "triplet", overrides=["triplet.queries_per_epoch=600", "triplet.cache_refresh_rate=600"]
    )
    assert plan_triplet(cfg, 342, 348).changes == []  # both explicit: the trainer's error explains
    cfg = resolve_config("triplet", overrides=["triplet.queries_per_epoch=6000"])
    apply_adaptations(cfg, plan_triplet(cfg, 342, 348), what="triplet")
    assert cfg.triplet.queries_per_epoch == 6000 and 6000 % cfg.triplet.cache_refresh_rate == 0
    assert cfg.triplet.cache_refresh_rate == 300


def test_image_size_follows_smaller_images(tmp_path: Path) -> None:
    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.jpg"
        Image.new("RGB", (256, 192)).save(p)
        paths.append(p)
    cfg = resolve_config("cosplace")
    [change] = image_size_adaptation(cfg, paths)
    assert change.key == "data.image_size" and change.value == (192, 256)
    assert (
        image_size_adaptation(resolve_config("cosplace", overrides=["data.image_size=512,512"]), paths) == []
    )
    big = tmp_path / "big.jpg"
    Image.new("RGB", (1024, 768)).save(big)
    assert image_size_adaptation(cfg, [big]) == []  # larger images: the recipe's size is kept


def test_image_size_is_rounded_to_what_a_dinov2_backbone_takes(tmp_path: Path) -> None:
    from vgloc.training.adapt import size_multiple

    assert size_multiple("dinov2_vits14+salad") == 14 and size_multiple("salad") == 14
    assert size_multiple("resnet18+gem+fc512") == 1
    p = tmp_path / "0.jpg"
    Image.new("RGB", (256, 192)).save(p)
    cfg = resolve_config("cosplace", overrides=["model.spec=dinov2_vits14+salad"])
    [change] = image_size_adaptation(cfg, [p])
    assert change.value == (182, 252) and "multiples of 14" in change.reason
    big = tmp_path / "big.jpg"
    Image.new("RGB", (1024, 1024)).save(big)
    [change] = image_size_adaptation(cfg, [big])  # the recipe's 512x512, rounded down
    assert change.value == (504, 504)
    explicit = resolve_config(
        "cosplace", overrides=["model.spec=dinov2_vits14+salad", "data.image_size=200,200"]
    )
    with pytest.raises(ValueError, match="multiples of 14"):
        image_size_adaptation(explicit, [p])


def test_the_log_line_says_what_changed_and_why(caplog: pytest.LogCaptureFixture) -> None:
    cfg = resolve_config("cosplace")
    with caplog.at_level(logging.INFO, logger="vgloc"):
        applied = apply_adaptations(cfg, plan_cosplace(cfg, _street_city(24.0)), what="cosplace")
    assert applied and "cosplace settings adapted to the data" in caplog.text
    assert "cosplace.M 10 -> " in caplog.text and "no class is kept" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="vgloc"):
        assert apply_adaptations(cfg, AdaptationPlan(summary="all good"), what="cosplace") == []
    assert "cosplace settings fit the data as configured: all good" in caplog.text
