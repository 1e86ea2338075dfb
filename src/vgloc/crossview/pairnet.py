"""The study's accurate-but-slow references: networks that classify a (street view, tile) pair.

Vo & Hays, "Localizing and Orienting Street Views Using Overhead Imagery" (ECCV 2016,
section 4) compare embedding networks with two networks that see both images and output
match / non-match:

- ``classification``: both images enter one network. Here the tile is resized to the
  street view's ``H x W``, the two images are stacked into 6 channels, and a small
  *fusion stem* (3x3 conv 6->16, batch norm, ReLU, 1x1 conv 16->3) feeds any registered
  ``backbone+aggregator[+head]`` spec, followed by fully connected layers to one logit.
  The stem lets every registered (3-channel, possibly pretrained) backbone take the pair;
  nothing of the two images is compared before the stem mixes them.
- ``hybrid`` (Siamese-classification): two branches (any specs and ``sharing``, exactly as
  the embedding network's) produce features that are concatenated and classified by fully
  connected layers.

Both are trained with binary cross-entropy on the batch's matching pairs and
``negatives`` non-matching pairs per street view taken from the same batch (tile
``i + s``, ``s = 1..negatives``; the batch's tiles are distinct), the positive and the
negative terms weighted equally (:func:`pair_bce_loss`).

They are slow because a query has no vector to search with: each (query, tile) pair needs
the classifier. :meth:`PairClassifier.embed_ground` / :meth:`PairClassifier.embed_aerial`
compute what can be computed once per image (the hybrid's branch features; for the
classification network only the resized image) and :meth:`PairClassifier.classify` scores
pairs of those: per pair the hybrid runs its small MLP, the classification network its
whole backbone. :func:`score_all_pairs` scores every pair, which is what evaluation does
(small test sets only; see docs/crossview.md).
"""

from __future__ import annotations

import abc
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vgloc.crossview.network import CrossViewConfig, CrossViewModule, CrossViewNet
from vgloc.models import GeoLocalizationModel
from vgloc.registry import CROSSVIEW_NETWORKS

__all__ = [
    "ClassificationNet",
    "HybridNet",
    "PairClassifier",
    "pair_bce_loss",
    "parse_negatives",
    "score_all_pairs",
]

HIDDEN = 128


def _mlp(dim_in: int, hidden: int = HIDDEN) -> nn.Sequential:
    """Fully connected layers ``(B, dim_in) -> (B, 1)`` (one logit)."""
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))


class PairClassifier(CrossViewModule, abc.ABC):
    """A network giving one match logit per (street view, tile) pair (abstract: the three stages).

    Shape:
        - embed_ground: ``(B, 3, H, W) -> (B, *F_g)``
        - embed_aerial: ``(B, 3, s, s) -> (B, *F_a)``
        - classify: ``(B, *F_g), (B, *F_a) -> (B,)`` logits (row ``i`` pairs ``g[i]`` with ``a[i]``)
    """

    @abc.abstractmethod
    def embed_ground(self, x: Tensor) -> Tensor:
        """What is computed once per street view; see the class docstring for shapes."""

    @abc.abstractmethod
    def embed_aerial(self, x: Tensor) -> Tensor:
        """What is computed once per tile (and rotation); see the class docstring for shapes."""

    @abc.abstractmethod
    def classify(self, g: Tensor, a: Tensor) -> Tensor:
        """Match logits of row-aligned pairs; see the class docstring for shapes."""

    def forward(self, ground: Tensor, aerial: Tensor) -> Tensor:
        """Match logits ``(B,)`` of street views ``(B, 3, H, W)`` with tiles ``(B, 3, s, s)``."""
        return self.classify(self.embed_ground(ground), self.embed_aerial(aerial))


class ClassificationNet(PairClassifier):
    """Both images through one network (6 stacked channels, fusion stem, a registered spec, FC layers).

    Uses ``config.ground_spec``; ``aerial_spec`` must be the same (there is one network)
    and ``sharing`` must stay ``separate`` (there is nothing to share).
    """

    def __init__(self, config: CrossViewConfig) -> None:
        super().__init__()
        if config.aerial_spec != config.ground_spec or config.sharing != "separate":
            raise ValueError(
                "arch='classification' is one network: give one --model (no --aerial-model) and no --sharing"
            )
        self.config = config
        self.stem = nn.Sequential(
            nn.Conv2d(6, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 3, 1),
        )
        self.body = GeoLocalizationModel(config.ground_spec)
        self.head = _mlp(int(self.body.descriptor_dim))

    def embed_ground(self, x: Tensor) -> Tensor:
        return x

    def embed_aerial(self, x: Tensor) -> Tensor:
        # To the street view's size, so that the two stack pixel by pixel.
        size = self.config.ground_size
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)

    def classify(self, g: Tensor, a: Tensor) -> Tensor:
        return self.head(self.body(self.stem(torch.cat([g, a], 1)))).squeeze(1)


class HybridNet(PairClassifier):
    """Siamese-classification hybrid: two branches (as :class:`CrossViewNet`), ``[g, a]`` -> FC layers."""

    def __init__(self, config: CrossViewConfig) -> None:
        super().__init__()
        self.config = config
        self.branches = CrossViewNet(replace(config, arch="embedding"))
        self.head = _mlp(2 * self.branches.dim)

    def embed_ground(self, x: Tensor) -> Tensor:
        return self.branches.encode_ground(x)

    def embed_aerial(self, x: Tensor) -> Tensor:
        return self.branches.encode_aerial(x)

    def classify(self, g: Tensor, a: Tensor) -> Tensor:
        return self.head(torch.cat([g, a], 1)).squeeze(1)


CROSSVIEW_NETWORKS.register(
    "classification",
    ClassificationNet,
    description="one network on the stacked pair (6 channels) -> match logit (Vo & Hays 2016; slow)",
)
CROSSVIEW_NETWORKS.register(
    "hybrid",
    HybridNet,
    description="two branches, concatenated features -> FC layers -> match logit (Vo & Hays 2016)",
)


def pair_bce_loss(net: PairClassifier, ground: Tensor, aerial: Tensor, negatives: int = 1) -> Tensor:
    """Binary cross-entropy of a batch's matching pairs and ``negatives`` non-matching pairs per row.

    Row ``i`` is matched with tile ``i`` (positive) and with tiles ``i + s mod B`` for
    ``s = 1..negatives`` (negatives; the batch's tiles are distinct). Loss = (mean BCE of
    the positives + mean BCE of the negatives) / 2, so the classes weigh the same.

    Shape:
        - ground: ``(B, 3, H, W)``; aerial: ``(B, 3, s, s)``; B >= 2, 1 <= negatives < B
        - Output: ``()``
    """
    b = ground.shape[0]
    if not 1 <= negatives < b:
        raise ValueError(f"negatives must be within 1..{b - 1} for a batch of {b}, got {negatives}")
    g, a = net.embed_ground(ground), net.embed_aerial(aerial)
    pos = net.classify(g, a)
    # Shifted tiles: one classifier call on (B * negatives) rows.
    shifted = torch.cat([torch.roll(a, -s, 0) for s in range(1, negatives + 1)])
    neg = net.classify(g.repeat(negatives, *([1] * (g.dim() - 1))), shifted)
    return 0.5 * (
        F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
        + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))
    )


@torch.no_grad()
def score_all_pairs(net: PairClassifier, ground: Tensor, refs: Tensor, pairs_per_call: int = 256) -> Tensor:
    """Logit of every (street view, reference) pair, ``pairs_per_call`` pairs per classifier call.

    Args:
        net: A pair classifier (eval mode).
        ground: ``(N, *F_g)`` from :meth:`PairClassifier.embed_ground`.
        refs: ``(M, *F_a)`` from :meth:`PairClassifier.embed_aerial` (tiles x rotations, flattened).

    Returns:
        ``(N, M)`` logits, on ``ground``'s device.
    """
    n, m = ground.shape[0], refs.shape[0]
    out = torch.empty(n * m, device=ground.device)
    step = max(1, pairs_per_call)
    for start in range(0, n * m, step):
        p = torch.arange(start, min(start + step, n * m), device=ground.device)
        out[p] = net.classify(ground[p // m], refs[p % m]).float()
    return out.view(n, m)


def parse_negatives(value: object, batch_size: int) -> int:
    """``--loss-arg negatives=N|all`` of the ``bce`` loss -> a count (``all``: ``batch_size - 1``)."""
    if value == "all":
        return batch_size - 1
    if (
        isinstance(value, float | int)
        and not isinstance(value, bool)
        and float(value).is_integer()
        and 1 <= value < batch_size
    ):
        return int(value)
    raise ValueError(f"negatives must be 'all' or an integer within 1..{batch_size - 1}, got {value!r}")
