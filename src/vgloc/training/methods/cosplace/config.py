"""The ``cosplace`` config section and preset: CosPlace classification training (PROTOCOLS 2.1-2.2).

Cheap to import (no torch): :mod:`vgloc.config` builds its ``cosplace`` section from
:class:`CosPlaceConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from vgloc.config import TrainConfig

__all__ = ["COSPLACE_PRESET", "CosPlaceConfig", "check_cosplace"]


@dataclass
class CosPlaceConfig:
    """CosPlace classification training (PROTOCOLS 2.1-2.2).

    Attributes:
        M: Cell side in metres, 10 (CP parser.py:8-13).
        alpha: Heading sector in degrees, 30 (same).
        N: Cells per group period, 5 (same).
        L: Heading sectors per group period, 2 (same).
        min_images_per_class: Smaller classes are dropped, 10 (CP train_dataset.py:129-138).
        groups_num: Groups trained, one per epoch cyclically, 8 (CP parser.py:8-13).
        heading_policy: ``error``: every image needs a heading (CP reads field 9 of
            the file name); ``ignore``: classes are UTM cells only.
        group_order: ``cosplace`` (CP's first-appearance order) or ``sorted``.
        batch_size: Images per step (global), 32 (CP parser.py:31-33).
        iterations_per_epoch: Steps per epoch, 10,000 (CP parser.py:31-33).
        loss: Margin loss of the classifiers: ``cosface`` (CP: s=30, m=0.40,
            cosface_loss.py:24-38), ``arcface`` or ``sphereface``. SphereFace's
            presets (m=4, scale = ||x|| = 1 on normalised descriptors, no annealing,
            as PML) barely learn from random weights; train it with
            ``loss_params={s: 30, annealing: true}`` (BENCHMARKS.md).
        loss_params: Overrides of the loss preset (``s``, ``m``, ...; booleans
            ``scale_by_norm`` and ``annealing``, SphereFace's Caffe lambda schedule),
            see :func:`vgloc.losses.create_margin_head`, e.g.
            ``cosplace.loss_params={s: 30, annealing: true}``.
        classifiers_lr: Adam learning rate of each group's classifier, 0.01
            (CP parser.py:34-35; train.py:53).
    """

    M: float = 10.0
    alpha: float = 30.0
    N: int = 5
    L: int = 2
    min_images_per_class: int = 10
    groups_num: int = 8
    heading_policy: Literal["error", "ignore"] = "error"
    group_order: Literal["cosplace", "sorted"] = "cosplace"
    batch_size: int = 32
    iterations_per_epoch: int = 10_000
    loss: Literal["cosface", "arcface", "sphereface"] = "cosface"
    loss_params: dict[str, float | bool] = field(default_factory=dict)
    classifiers_lr: float = 0.01


#: Values where CosPlace differs from the shared (VG-benchmark) defaults.
COSPLACE_PRESET: dict[str, tuple[Any, str]] = {
    "model.spec": ("resnet18+gem+fc512", "CP parser.py (ResNet18, fc_output_dim 512)"),
    "data.image_size": ((512, 512), "CP train_dataset.py:89-90"),
    "schedule.epochs": (50, "CP parser.py:31-33"),
    "schedule.patience": (None, "CP train.py:154-176 (no early stopping)"),
    "schedule.select_metric": ("R@1", "CP train.py:154-176"),
    "augment.brightness": (0.7, "CP parser.py:36-46"),
    "augment.contrast": (0.7, "CP parser.py:36-46"),
    "augment.saturation": (0.7, "CP parser.py:36-46"),
    "augment.hue": (0.5, "CP parser.py:36-46"),
    "augment.random_resized_crop": ((0.5, 1.0), "CP parser.py:36-46; augmentations.py:7-35"),
}


def check_cosplace(c: CosPlaceConfig, cfg: TrainConfig) -> list[str]:
    """Value rules of the ``cosplace`` section."""
    problems: list[str] = []
    for key in ("M", "alpha"):
        if not getattr(c, key) > 0:
            problems.append(f"cosplace.{key}={getattr(c, key)} must be > 0")
    for key in ("N", "L", "min_images_per_class", "groups_num", "batch_size", "iterations_per_epoch"):
        if getattr(c, key) < 1:
            problems.append(f"cosplace.{key}={getattr(c, key)} must be >= 1")
    if not c.classifiers_lr > 0:
        problems.append(f"cosplace.classifiers_lr={c.classifiers_lr} must be > 0")
    return problems
