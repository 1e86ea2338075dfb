"""The ``geocell`` config section: geo-cell classification training (PlaNet / GeoEstimation).

Cheap to import (no torch): :mod:`vgloc.config` builds its ``geocell`` section from
:class:`GeoCellConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from vgloc.config import TrainConfig

__all__ = ["GEOCELL_PRESET", "GeoCellConfig", "check_geocell"]


@dataclass
class GeoCellConfig:
    """Geo-cell classification (PlaNet, Weyand et al. 2016; GeoEstimation, Müller-Budack et al. 2018).

    Attributes:
        t_img: One partition per value (coarse to fine); a cell holding at least this
            many training images is split (:mod:`vgloc.geo.cells`). Default: GeoEstimation's
            img_max 5000 / 2000 / 1000 (PROTOCOLS.md section 8); one value = one partition.
        min_images: Cells with fewer training images are dropped, 50 (GeoEstimation's img_min).
        t_area_km2: Cells smaller than this are not split (vgloc's choice, 1 km^2).
        split: ``even`` (cut at the middle) or ``random`` (seeded, in the middle half).
        cells: ``rect`` (latitude/longitude rectangles) or ``h3`` (adaptive H3 hexagons,
            :mod:`vgloc.geo.h3cells`, needs ``pip install 'vgloc[h3]'``; t_area_km2 and split
            do not apply, ``h3_max_resolution`` bounds the finest cells).
        h3_max_resolution: Finest H3 resolution, 8 (~0.74 km^2, near the rectangles' 1 km^2).
        batch_size: Images per step (global), 32.
        iterations_per_epoch: Steps per epoch, 1000.
        classifiers_lr: Adam learning rate of the linear classifiers, 0.01 (as CosPlace's).
        label_smoothing: Cross-entropy label smoothing, 0.
    """

    t_img: list[int] = field(default_factory=lambda: [5000, 2000, 1000])
    min_images: int = 50
    t_area_km2: float = 1.0
    split: Literal["even", "random"] = "even"
    cells: Literal["rect", "h3"] = "rect"
    h3_max_resolution: int = 8
    batch_size: int = 32
    iterations_per_epoch: int = 1000
    classifiers_lr: float = 0.01
    label_smoothing: float = 0.0


#: Values where geo-cell training differs from the shared (VG-benchmark) defaults.
GEOCELL_PRESET: dict[str, tuple[Any, str]] = {
    "model.spec": (
        "resnet18+gem+fc512",
        "CP parser.py (ResNet18, fc_output_dim 512: the CosPlace network; PlaNet used Inception, GE ResNet50)",
    ),
    "data.image_size": ((224, 224), "GC train/dataloader.py:11-31 (224x224 crops)"),
    "schedule.select_metric": ("R@1", "CP train.py:154-176 (best model by val R@1, as CosPlace)"),
}


def check_geocell(c: GeoCellConfig, cfg: TrainConfig) -> list[str]:
    """Value rules of the ``geocell`` section."""
    problems: list[str] = []
    t = list(c.t_img) if isinstance(c.t_img, (list, tuple)) else [c.t_img]
    if not t or any(int(v) < 1 for v in t) or len(set(t)) != len(t):
        problems.append(f"geocell.t_img={c.t_img} must be one or more distinct values >= 1")
    for key in ("min_images", "batch_size", "iterations_per_epoch"):
        if getattr(c, key) < 1:
            problems.append(f"geocell.{key}={getattr(c, key)} must be >= 1")
    if c.cells == "h3":
        import importlib.util

        if importlib.util.find_spec("h3") is None:
            problems.append("geocell.cells=h3 needs the h3 package: pip install 'vgloc[h3]'")
    if not 0 <= c.h3_max_resolution <= 15:
        problems.append(
            f"geocell.h3_max_resolution={c.h3_max_resolution} must be within 0..15 (H3's resolutions)"
        )
    if not c.t_area_km2 > 0:
        problems.append(f"geocell.t_area_km2={c.t_area_km2} must be > 0")
    if not c.classifiers_lr > 0:
        problems.append(f"geocell.classifiers_lr={c.classifiers_lr} must be > 0")
    if not 0 <= c.label_smoothing < 1:
        problems.append(f"geocell.label_smoothing={c.label_smoothing} must be in [0, 1)")
    return problems
