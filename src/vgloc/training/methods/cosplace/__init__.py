"""CosPlace classification training: registration of the ``cosplace`` method.

Modules: :mod:`.config` (the ``cosplace`` section and preset, no torch),
:mod:`.groups` (geo-cell classes and groups), :mod:`.adapt` (settings that follow the
data), :mod:`.trainer` (the training loop, imported when a run starts).
"""

from __future__ import annotations

from vgloc.training.methods.base import TrainingMethod, register_method
from vgloc.training.methods.cosplace.config import COSPLACE_PRESET, CosPlaceConfig, check_cosplace

__all__ = ["METHOD", "CosPlaceConfig"]

METHOD = register_method(
    TrainingMethod(
        name="cosplace",
        config_class=CosPlaceConfig,
        trainer="vgloc.training.methods.cosplace.trainer:CosPlaceTrainer",
        presets={"cosplace": COSPLACE_PRESET},
        help="CosPlace training: geo-classes in groups, one CosFace classifier per group, best model on val R@1",
        description="Defaults follow CosPlace (resnet18+gem+fc512, 512x512, M=10 m, alpha=30 deg, N=5, L=2, "
        "8 groups, batch 32, 10,000 iterations per epoch, 50 epochs, Adam lr 1e-5 / classifiers 0.01, colour "
        "jitter and random resized crop). Where the data is too small for these cells and groups (e.g. the "
        "synthetic city), the cell size, class size, groups, batch and epoch length adapt to it "
        "(data.adapt; the log says what changed and why).",
        check=check_cosplace,
    )
)
