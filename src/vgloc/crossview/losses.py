"""Cross-view losses on a batch of matching (street view, aerial tile) pairs.

Contract: every loss is an ``nn.Module`` called as ``loss(ground, aerial)`` with
``ground (B, D)`` and ``aerial (B, D)`` L2-normalised embeddings where row ``i`` of both
is a matching pair and every other row is a non-matching item (the pair sampler puts
distinct tiles in a batch). It returns a scalar. ``D(x, y)`` is the Euclidean distance.

Formulas (Vo & Hays, "Localizing and Orienting Street Views Using Overhead Imagery",
ECCV 2016, section 4; Hu et al., CVM-Net, CVPR 2018, for the scaled soft margin;
Radford et al., CLIP, 2021, for the symmetric InfoNCE):

=========================  =======================================================  ============================
name                       loss                                                     implementation
=========================  =======================================================  ============================
``contrastive``            ``l * D + (1 - l) * max(0, m - D)``                       PML ``ContrastiveLoss``
``triplet``                ``max(0, m + D(a, p) - D(a, n))``                         PML ``TripletMarginLoss``
``dbl_pair``               ``-[l log p + (1-l) log(1-p)]``,                          written here (not in PML)
                           ``p = (1 + e^-m) / (1 + e^(D - m))``
``dbl_triplet``            ``log(1 + exp(D(a, p) - D(a, n)))``                        PML, ``smooth_loss=True``
``soft_triplet``           ``log(1 + exp(alpha (D(a, p) - D(a, n))))``, alpha=10      PML, descriptors scaled
``exhaustive_dbl``         ``dbl_triplet`` over every non-matching item, both ways   PML, all triplets
``exhaustive_soft_triplet`` ``soft_triplet`` over every non-matching item, both ways  PML, all triplets
``infonce``                ``(CE(G A^T / T) + CE(A G^T / T)) / 2``                    ``F.cross_entropy``
=========================  =======================================================  ============================

Negatives: ``negatives="one"`` pairs anchor ``i`` with item ``(i + 1) mod B`` of the
other view (a fixed derangement; the batch order is random), and the anchors are the
street views, as in the study's Siamese/triplet training. ``negatives="all"`` is the
exhaustive mini-batch version: every anchor against every non-matching item, with both
street views and aerial tiles as anchors for the triplet losses (for pair losses both
directions give the same set of pairs). Pair losses average the positive pairs and the
negative pairs separately and add the two means (PML's convention), so the many
negatives of the exhaustive version do not drown the ``B`` positives.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from pytorch_metric_learning import reducers
from pytorch_metric_learning.losses import ContrastiveLoss as PMLContrastive
from pytorch_metric_learning.losses import TripletMarginLoss
from torch import Tensor, nn

from vgloc.losses.triplet import ExactL2Distance
from vgloc.registry import CROSSVIEW_LOSSES

__all__ = [
    "ContrastiveLoss",
    "DBLPairLoss",
    "InfoNCELoss",
    "SoftMarginTripletLoss",
    "TripletHingeLoss",
    "check_pair_batch",
    "create_crossview_loss",
    "negative_pairs",
]

NEGATIVES = ("one", "all")


def check_pair_batch(ground: Tensor, aerial: Tensor) -> None:
    """Raise ``ValueError`` unless ``ground`` and ``aerial`` are ``(B, D)`` with the same shape and ``B >= 2``."""
    if ground.ndim != 2 or ground.shape != aerial.shape:
        raise ValueError(
            f"ground and aerial must both be (B, D), got {tuple(ground.shape)} and {tuple(aerial.shape)}"
        )
    if ground.shape[0] < 2:
        raise ValueError(
            f"a cross-view loss needs at least 2 pairs per batch (negatives), got {ground.shape[0]}"
        )


def negative_pairs(b: int, negatives: str, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """Indices ``(i, j)`` of the non-matching (anchor, other-view) pairs of a batch of ``b`` pairs.

    Args:
        b: Batch size.
        negatives: ``"one"`` (``j = (i + 1) mod b``) or ``"all"`` (every ``j != i``).

    Returns:
        Two int64 tensors of length ``b`` (one) or ``b * (b - 1)`` (all).
    """
    if negatives not in NEGATIVES:
        raise ValueError(f"negatives must be one of {NEGATIVES}, got {negatives!r}")
    idx = torch.arange(b, device=device)
    if negatives == "one":
        return idx, (idx + 1) % b
    i, j = torch.meshgrid(idx, idx, indexing="ij")
    off = i != j
    return i[off], j[off]


class _PairBatchLoss(nn.Module):
    def __init__(self, negatives: str = "one") -> None:
        super().__init__()
        if negatives not in NEGATIVES:
            raise ValueError(f"negatives must be one of {NEGATIVES}, got {negatives!r}")
        self.negatives = negatives


class ContrastiveLoss(_PairBatchLoss):
    """The study's Siamese contrastive loss ``l * D + (1 - l) * max(0, m - D)`` (Hadsell et al. 2006).

    PML's ``ContrastiveLoss(pos_margin=0, neg_margin=m)`` is exactly this per pair; it is
    used with a mean reducer (mean over positive pairs + mean over negative pairs).

    Args:
        margin: ``m``, the distance beyond which negatives cost nothing.
        negatives: ``"one"`` or ``"all"`` (see the module docstring).

    Shape:
        - Input: ``ground (B, D)``, ``aerial (B, D)``
        - Output: ``()``
    """

    def __init__(self, margin: float = 1.0, negatives: str = "one") -> None:
        super().__init__(negatives)
        if not margin > 0:
            raise ValueError(f"margin must be > 0, got {margin}")
        self.margin = float(margin)
        self.pml = PMLContrastive(
            pos_margin=0.0, neg_margin=self.margin, distance=ExactL2Distance(), reducer=reducers.MeanReducer()
        )

    def forward(self, ground: Tensor, aerial: Tensor) -> Tensor:
        """Contrastive loss of the batch; see the class docstring for shapes."""
        check_pair_batch(ground, aerial)
        b = ground.shape[0]
        pos = torch.arange(b, device=ground.device)
        ni, nj = negative_pairs(b, self.negatives, ground.device)
        out: Tensor = self.pml(ground, indices_tuple=(pos, pos, ni, nj), ref_emb=aerial)
        return out


class TripletHingeLoss(_PairBatchLoss):
    """The study's triplet loss ``max(0, m + D(a, p) - D(a, n))``, mean over triplets.

    This is PML's ``TripletMarginLoss(margin=m)`` with a mean reducer (PML's default
    reducer would average the violating triplets only).

    Args:
        margin: ``m``.
        negatives: ``"one"`` (street-view anchors) or ``"all"`` (every anchor of both views).

    Shape:
        - Input: ``ground (B, D)``, ``aerial (B, D)``
        - Output: ``()``
    """

    def __init__(self, margin: float = 0.2, negatives: str = "one") -> None:
        super().__init__(negatives)
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.margin = float(margin)
        self.pml = TripletMarginLoss(
            margin=self.margin, distance=ExactL2Distance(), reducer=reducers.MeanReducer()
        )

    def forward(self, ground: Tensor, aerial: Tensor) -> Tensor:
        """Triplet hinge loss of the batch; see the class docstring for shapes."""
        return _pml_triplets(self.pml, ground, aerial, self.negatives)


class SoftMarginTripletLoss(_PairBatchLoss):
    """DBL triplet / soft-margin triplet: ``log(1 + exp(alpha * (D(a, p) - D(a, n))))``, mean over triplets.

    ``alpha = 1`` is the study's distance-based logistic triplet loss (Vo & Hays 2016);
    ``alpha = 10`` is CVM-Net's weighted soft-margin triplet loss (Hu et al. 2018).
    PML's ``TripletMarginLoss(margin=0, smooth_loss=True)`` computes the softplus;
    ``alpha`` is applied by scaling the embeddings (Euclidean distances scale linearly).

    Args:
        alpha: Scale on the distance difference (> 0).
        negatives: ``"one"`` or ``"all"`` (the exhaustive mini-batch version, both directions).

    Shape:
        - Input: ``ground (B, D)``, ``aerial (B, D)``
        - Output: ``()``
    """

    def __init__(self, alpha: float = 1.0, negatives: str = "one") -> None:
        super().__init__(negatives)
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.alpha = float(alpha)
        self.pml = TripletMarginLoss(
            margin=0.0, smooth_loss=True, distance=ExactL2Distance(), reducer=reducers.MeanReducer()
        )

    def forward(self, ground: Tensor, aerial: Tensor) -> Tensor:
        """Soft-margin triplet loss of the batch; see the class docstring for shapes."""
        return _pml_triplets(self.pml, ground * self.alpha, aerial * self.alpha, self.negatives)


def _pml_triplets(loss: Any, ground: Tensor, aerial: Tensor, negatives: str) -> Tensor:
    """Mean of a PML triplet loss over the batch's triplets (both anchor views when exhaustive)."""
    check_pair_batch(ground, aerial)
    ai, nj = negative_pairs(ground.shape[0], negatives, ground.device)
    # Anchor i of one view, positive i and negative j of the other view.
    out: Tensor = loss(ground, indices_tuple=(ai, ai, nj), ref_emb=aerial)
    if negatives == "all":
        back: Tensor = loss(aerial, indices_tuple=(ai, ai, nj), ref_emb=ground)
        out = (out + back) / 2
    return out


class DBLPairLoss(_PairBatchLoss):
    """The study's distance-based logistic loss for pairs.

    ``p = (1 + exp(-m)) / (1 + exp(D - m))`` is the match probability (1 at ``D = 0``,
    0.5 near ``D = m``); the loss is the log loss ``-log p`` for matching pairs and
    ``-log(1 - p)`` for non-matching ones (mean over positives + mean over negatives).
    Written here: PML has no loss of this form. In closed form, with ``s = softplus``,
    ``-log p = s(D - m) - s(-m)`` and ``-log(1 - p) = s(D - m) + m - log(expm1(D))``.

    Args:
        margin: ``m``.
        negatives: ``"one"`` or ``"all"``.

    Shape:
        - Input: ``ground (B, D)``, ``aerial (B, D)``
        - Output: ``()``
    """

    def __init__(self, margin: float = 1.0, negatives: str = "one") -> None:
        super().__init__(negatives)
        if not margin > 0:
            raise ValueError(f"margin must be > 0, got {margin}")
        self.margin = float(margin)

    def forward(self, ground: Tensor, aerial: Tensor) -> Tensor:
        """DBL pair loss of the batch; see the class docstring for shapes."""
        check_pair_batch(ground, aerial)
        m = self.margin
        d_pos = (ground - aerial).norm(dim=1)
        ni, nj = negative_pairs(ground.shape[0], self.negatives, ground.device)
        # A distance of exactly 0 between non-matching items is an infinite log loss;
        # the clamp keeps it finite (loss ~ 25 nats) and its gradient defined.
        d_neg = (ground[ni] - aerial[nj]).norm(dim=1).clamp_min(1e-11)
        pos = F.softplus(d_pos - m) - math.log1p(math.exp(-m))
        # log(expm1(d)) = d + log(-expm1(-d)), stable for large d.
        log_expm1 = d_neg + torch.log(-torch.expm1(-d_neg))
        neg = F.softplus(d_neg - m) + m - log_expm1
        return pos.mean() + neg.mean()


class InfoNCELoss(nn.Module):
    """Symmetric InfoNCE (CLIP): cross-entropy of ``G A^T / T`` over rows and over columns, averaged.

    Written with ``F.cross_entropy``, CLIP's own definition: PML's ``NTXentLoss`` with a
    reference set gives one direction and recomputes the similarity matrix per call.

    Args:
        temperature: ``T`` (> 0); CLIP initialises its learned temperature at 0.07.

    Shape:
        - Input: ``ground (B, D)``, ``aerial (B, D)``
        - Output: ``()``
    """

    def __init__(self, temperature: float = 0.07) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, ground: Tensor, aerial: Tensor) -> Tensor:
        """Symmetric InfoNCE of the batch; see the class docstring for shapes."""
        check_pair_batch(ground, aerial)
        logits = ground @ aerial.T / self.temperature
        target = torch.arange(ground.shape[0], device=ground.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _register(name: str, cls: type[nn.Module], description: str, **defaults: Any) -> None:
    CROSSVIEW_LOSSES.register(name, cls, description=description, defaults=defaults)


_register("contrastive", ContrastiveLoss, "Siamese contrastive l*D + (1-l)*[m-D]+ (Vo & Hays 2016)")
_register("triplet", TripletHingeLoss, "triplet hinge [m + D(a,p) - D(a,n)]+")
_register("dbl_pair", DBLPairLoss, "distance-based logistic loss on pairs (Vo & Hays 2016)")
_register("dbl_triplet", SoftMarginTripletLoss, "DBL triplet log(1 + exp(D(a,p) - D(a,n)))")
_register("soft_triplet", SoftMarginTripletLoss, "soft-margin triplet, alpha=10 (CVM-Net)", alpha=10.0)
_register(
    "exhaustive_dbl",
    SoftMarginTripletLoss,
    "DBL triplet, every in-batch negative, both ways",
    negatives="all",
)
_register(
    "exhaustive_soft_triplet",
    SoftMarginTripletLoss,
    "soft-margin triplet (alpha=10), every in-batch negative, both ways",
    alpha=10.0,
    negatives="all",
)
_register("infonce", InfoNCELoss, "symmetric InfoNCE (CLIP), T=0.07")


def create_crossview_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered cross-view loss: its registered defaults, then ``kwargs``.

    Args:
        name: A name of :data:`vgloc.registry.CROSSVIEW_LOSSES` (``contrastive``, ``triplet``,
            ``dbl_pair``, ``dbl_triplet``, ``soft_triplet``, ``exhaustive_dbl``,
            ``exhaustive_soft_triplet``, ``infonce``).
        **kwargs: Constructor arguments (``margin``, ``alpha``, ``negatives``, ``temperature``).

    Returns:
        A module called as ``loss(ground (B, D), aerial (B, D)) -> ()``.

    Raises:
        UnknownNameError: Unknown name (the message lists close ones).
        TypeError: An argument the loss does not take.
    """
    entry = CROSSVIEW_LOSSES.entry(name)
    args = {**dict(entry.metadata.get("defaults", {})), **kwargs}
    module: nn.Module = entry.obj(**args)
    return module
