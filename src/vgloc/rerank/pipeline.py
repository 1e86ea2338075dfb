"""Former home of the score-once loop and the K sweep; kept so existing imports work.

The loop is :mod:`vgloc.rerank.run`, the sweep :mod:`vgloc.rerank.sweep`; import from
there (or from :mod:`vgloc.rerank`) in new code.
"""

from __future__ import annotations

from vgloc.rerank.fusion import FUSIONS
from vgloc.rerank.run import CandidateScores, Reranked, score_candidates
from vgloc.rerank.sweep import (
    DEFAULT_SWEEP_KS,
    SWEEP_STEM,
    SweepPoint,
    check_sweep_ks,
    rerank_sweep,
    sweep_table,
    write_sweep,
)

__all__ = [
    "DEFAULT_SWEEP_KS",
    "FUSIONS",
    "SWEEP_STEM",
    "CandidateScores",
    "Reranked",
    "SweepPoint",
    "check_sweep_ks",
    "rerank_sweep",
    "score_candidates",
    "sweep_table",
    "write_sweep",
]
