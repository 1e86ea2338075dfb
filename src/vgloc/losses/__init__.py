"""Training losses: margin classification heads and ranking losses on mined tuples.

- :mod:`vgloc.losses.margin`: CosFace / ArcFace / SphereFace heads
  (:func:`create_margin_head`), as used by CosPlace-style classification training.
- :mod:`vgloc.losses.triplet`: triplet, soft-margin triplet, multi-positive soft and
  contrastive losses on ``(query, positives, negatives)`` (:func:`create_triplet_loss`).

The ranking losses wrap pytorch-metric-learning, which costs about a second to import;
their names are therefore resolved lazily, on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vgloc.losses.margin import (
    MarginHead,
    SphereFaceAnnealing,
    create_margin_head,
    list_margin_heads,
)

if TYPE_CHECKING:
    from vgloc.losses.triplet import (
        ContrastivePairLoss,
        MultiPositiveSoftLoss,
        SoftTripletLoss,
        TripletLoss,
        create_triplet_loss,
        list_triplet_losses,
    )

__all__ = [
    "ContrastivePairLoss",
    "MarginHead",
    "MultiPositiveSoftLoss",
    "SoftTripletLoss",
    "SphereFaceAnnealing",
    "TripletLoss",
    "create_margin_head",
    "create_triplet_loss",
    "list_margin_heads",
    "list_triplet_losses",
]

_LAZY = {
    "ContrastivePairLoss",
    "MultiPositiveSoftLoss",
    "SoftTripletLoss",
    "TripletLoss",
    "create_triplet_loss",
    "list_triplet_losses",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("vgloc.losses.triplet"), name)
    raise AttributeError(f"module 'vgloc.losses' has no attribute {name!r}")
