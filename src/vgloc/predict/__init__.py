"""Predictors: retrieved neighbours -> a position with a confidence.

``vgloc.predict`` is a package (not ``vgloc.locate``) so that no submodule shadows
the public function :func:`vgloc.locate`.
"""

from __future__ import annotations

from vgloc.predict.positions import (
    DEFAULT_KDE,
    METHODS,
    KDEParams,
    Match,
    Prediction,
    kernel_density,
    neighbour_weights,
    predict_position,
    predict_positions,
)

__all__ = [
    "DEFAULT_KDE",
    "METHODS",
    "KDEParams",
    "Match",
    "Prediction",
    "kernel_density",
    "neighbour_weights",
    "predict_position",
    "predict_positions",
]
