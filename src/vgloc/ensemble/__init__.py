"""Ensembles of differently trained models: each model retrieves, a fusion rule merges.

The rules (``nif``, ``sif``, ``rrf``) are pure functions on ranked lists registered in
:data:`vgloc.registry.ENSEMBLES` (:mod:`vgloc.ensemble.rules`); the evaluation path is
:func:`vgloc.evaluation.ensemble.evaluate_ensemble` (``vgloc eval --ensemble``), locating
is :class:`EnsembleLocalizer` / :func:`locate_ensemble` (``vgloc locate --ensemble``).
"""

from __future__ import annotations

from vgloc.ensemble.localizer import EnsembleLocalizer, locate_ensemble
from vgloc.ensemble.members import EnsembleMember, ensemble_members
from vgloc.ensemble.rules import RRF_K, best_similarities, check_ensemble, fuse, nif, rrf, sif

__all__ = [
    "RRF_K",
    "EnsembleLocalizer",
    "EnsembleMember",
    "best_similarities",
    "check_ensemble",
    "ensemble_members",
    "fuse",
    "locate_ensemble",
    "nif",
    "rrf",
    "sif",
]
