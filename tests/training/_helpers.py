"""Small training configurations and the training-test city (shared by the test modules)."""

from __future__ import annotations

from pathlib import Path

from vgloc.config import TrainConfig, resolve_config
from vgloc.data.synthetic import CitySize

# The tiny city's layout with 8 m database spacing and 2 queries per panorama: enough
# query photos (160 per folder in train, 84 in val) for recall to move in steps of
# about 1 %, still rendered at 72x96 in ~15 s on 2 cores.
TRAIN_CITY = CitySize(
    train_cols=2, val_cols=1, test_cols=1, rows=1, db_spacing_m=8.0, db_headings=4,
    queries_per_pano=2.0, aerial_step_m=1000.0,
)  # fmt: skip

# CosPlace classes that exist in that city: 16 m cells, one heading per 90 degree sector
# (the city's 4 headings), 2 images per class, groups 32 m apart.
COSPLACE_SMALL = [
    "cosplace.M=16",
    "cosplace.alpha=90",
    "cosplace.N=2",
    "cosplace.L=1",
    "cosplace.min_images_per_class=2",
    "cosplace.groups_num=2",
    "cosplace.batch_size=8",
    "cosplace.iterations_per_epoch=3",
]
TRIPLET_SMALL = [
    "triplet.cache_refresh_rate=8",
    "triplet.queries_per_epoch=16",
    "triplet.neg_samples=100",
]


def small_overrides(root: Path, method: str) -> list[str]:
    """``key=value`` overrides that train ``tiny+gem+fc64`` at 48x64 for 2 short epochs on ``root``."""
    base = [
        f"data.root={root}",
        "model.spec=tiny+gem+fc64",
        "data.image_size=48,64",
        "data.cache_images=true",
        "data.validate_images=false",
        "optim.lr=1e-3",
        "schedule.epochs=2",
        "validation.recall_values=1,5,10",
        "schedule.select_metric=R@1",
        "runtime.device=cpu",
        "runtime.num_workers=0",
        # Small models on a shared 2-core machine run ~30x faster on one thread.
        "runtime.num_threads=1",
        "runtime.progress=false",
        "runtime.tensorboard=false",
    ]
    return base + (TRIPLET_SMALL if method == "triplet" else COSPLACE_SMALL)


def small_config(root: Path, method: str, *overrides: str) -> TrainConfig:
    """:func:`small_overrides` plus ``overrides``, resolved."""
    return resolve_config(method, overrides=[*small_overrides(root, method), *overrides])
