"""VG-benchmark triplet training: registration of the ``triplet`` method.

Modules: :mod:`.config` (the ``triplet`` section and preset, no torch),
:mod:`.mining` (triplet mining), :mod:`.adapt` (settings that follow the data),
:mod:`.trainer` (the training loop, imported when a run starts).
"""

from __future__ import annotations

from vgloc.training.methods.base import TrainingMethod, register_method
from vgloc.training.methods.triplet.config import TRIPLET_PRESET, TripletConfig, check_triplet

__all__ = ["METHOD", "TripletConfig"]

METHOD = register_method(
    TrainingMethod(
        name="triplet",
        config_class=TripletConfig,
        trainer="vgloc.training.methods.triplet.trainer:TripletTrainer",
        presets={"vg-benchmark": TRIPLET_PRESET},
        help="VG-benchmark triplet training: mining with a cache refreshed every 1000 queries, "
        "triplet loss, early stopping on val R@5",
        description="Defaults follow the VG benchmark (resnet18.conv4+netvlad64, 480x640, Adam lr 1e-5, "
        "4 queries x (1 positive + 10 negatives) per step, 5000 queries per epoch, patience 3). On data "
        "with fewer training queries than a cache refresh, the refresh and the epoch shrink to fit "
        "(data.adapt; the log says what changed).",
        check=check_triplet,
    )
)
