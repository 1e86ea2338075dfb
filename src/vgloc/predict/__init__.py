"""Predictors: retrieved neighbours -> a position with a confidence.

``vgloc.predict`` is a package (not ``vgloc.locate``) so that no submodule shadows
the public function :func:`vgloc.locate`.

Modules:
    predictors  the :class:`Predictor` contract, ``nearest`` and ``kde`` (registered in
                :data:`vgloc.registry.PREDICTORS`), :func:`resolve_predictor`
    positions   many queries at once: planar (:func:`predict_positions`), anywhere
                (:func:`predict_latlon`), or in the database's geometry (:func:`estimate_positions`)
    kernels     the kernel arithmetic (:class:`KDEParams`, density, mean shift, consensus)
    types       :class:`Match` and :class:`Prediction`, what users get back

Example:
    >>> from vgloc.predict import predict_latlon  # doctest: +SKIP
    >>> latlon, conf = predict_latlon(sims, ids, database, "kde", sigma_m=50_000)  # doctest: +SKIP
"""

from __future__ import annotations

from vgloc.predict.kernels import (
    DEFAULT_KDE,
    WORLD_KDE,
    KDEParams,
    kde_params_for,
    kernel_density,
    neighbour_weights,
)
from vgloc.predict.positions import (
    METHODS,
    PositionEstimates,
    estimate_positions,
    predict_latlon,
    predict_position,
    predict_positions,
)
from vgloc.predict.predictors import (
    KDEPredictor,
    KernelPredictor,
    NearestPredictor,
    Predictor,
    resolve_predictor,
)
from vgloc.predict.types import Match, Prediction

__all__ = [
    "DEFAULT_KDE",
    "METHODS",
    "WORLD_KDE",
    "KDEParams",
    "KDEPredictor",
    "KernelPredictor",
    "Match",
    "NearestPredictor",
    "PositionEstimates",
    "Prediction",
    "Predictor",
    "estimate_positions",
    "kde_params_for",
    "kernel_density",
    "neighbour_weights",
    "predict_latlon",
    "predict_position",
    "predict_positions",
    "resolve_predictor",
]
