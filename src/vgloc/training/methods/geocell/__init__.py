"""Geo-cell classification training: registration of the ``geocell`` method.

Modules: :mod:`.config` (the ``geocell`` section and preset, no torch), :mod:`.trainer`
(the training loop, imported when a run starts). The partitions are
:mod:`vgloc.geo.cells`; turning logits into positions is :mod:`vgloc.predict.cells`.
"""

from __future__ import annotations

from vgloc.training.methods.base import TrainingMethod, register_method
from vgloc.training.methods.geocell.config import GEOCELL_PRESET, GeoCellConfig, check_geocell

__all__ = ["METHOD", "GeoCellConfig"]

METHOD = register_method(
    TrainingMethod(
        name="geocell",
        config_class=GeoCellConfig,
        trainer="vgloc.training.methods.geocell.trainer:GeoCellTrainer",
        presets={"geocell": GEOCELL_PRESET},
        help="geo-cell classification (PlaNet/GeoEstimation): one linear classifier and loss per partition",
        description="The training images' positions are cut into adaptive geo-cells (vgloc.geo.cells; one "
        "partition per geocell.t_img, default GeoEstimation's 5000/2000/1000 with min 50 images per cell); "
        "the network and one linear classifier per partition are trained with the sum of their cross-entropy "
        "losses. The partitions are saved as cells.npz in the run folder and the classifiers in the checkpoint; "
        "validation is retrieval R@1 with the network's descriptor (usable for kNN density at world scale).",
        check=check_geocell,
    )
)
