"""Ensembles of differently trained models: each model retrieves, a fusion rule merges.

The rules (``nif``, ``sif``, ``rrf``) are pure functions on ranked lists registered in
:data:`vgloc.registry.ENSEMBLES` (:mod:`vgloc.ensemble.rules`); the evaluation path is
:func:`vgloc.evaluation.ensemble.evaluate_ensemble` (``vgloc eval --ensemble``).
"""

from __future__ import annotations

from vgloc.ensemble.rules import RRF_K, best_similarities, check_ensemble, fuse, nif, rrf, sif

__all__ = ["RRF_K", "best_similarities", "check_ensemble", "fuse", "nif", "rrf", "sif"]
