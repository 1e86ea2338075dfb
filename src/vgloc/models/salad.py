"""SALAD: optimal-transport aggregation with a dustbin (Izquierdo & Civera, CVPR 2024).

"Optimal Transport Aggregation for Visual Place Recognition", serizba/salad
(models/aggregators/salad.py; PROTOCOLS.md section 7). Registered as aggregator
``salad`` (64 clusters x 128 + 256-d global token = 8448-d) and published model
``salad`` (``dinov2_vitb14+salad``, the authors' ``dino_salad.ckpt``).

Forward, for patch tokens ``x (B, C, h, w)`` and the CLS token ``t (B, C)``:

1. ``f = cluster_features(x)`` (1x1 MLP C->512->l), ``s = score(x)`` (1x1 MLP C->512->m),
   ``g = token_features(t)`` (MLP C->512->256).
2. Log-domain Sinkhorn (SuperGlue's ``log_optimal_transport``, 3 iterations, reg 1) on
   ``s`` augmented with a constant dustbin row ``z`` (learned); the source mass is
   ``1/(m+n)`` per cluster and ``(n-m)/(m+n)`` for the dustbin, the target mass
   ``1/(m+n)`` per token; ``P = exp(log P + log(m+n))`` with the dustbin row dropped.
3. ``V[:, :, k] = sum_i P[k, i] f_i``, each cluster L2-normalised, flattened
   cluster-dim-major (``[B, l, m].flatten(1)``) after the L2-normalised ``g``; L2 again.

The authors' ``(f * p).sum(-1)`` over ``repeat``-ed ``(B, l, m, n)`` tensors is the same
sum as the einsum used here, which does not materialise them (17 MB per 322x322 image).
Dropout (0.3) acts in training only, as in the authors' code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vgloc.models.aggregators import Aggregator
from vgloc.models.dinov2 import DINOV2_EVAL, dinov2_keys_to_vgloc
from vgloc.models.published import PublishedModel
from vgloc.registry import AGGREGATORS, PUBLISHED_MODELS

__all__ = ["SALAD", "log_optimal_transport", "salad_keys_to_vgloc"]


def log_optimal_transport(scores: Tensor, dustbin: Tensor, iters: int = 3) -> Tensor:
    """Log-domain Sinkhorn with a dustbin row (SuperGlue / SALAD), scaled by ``m + n``.

    Args:
        scores: Cluster-to-token scores ``(B, m, n)``.
        dustbin: Scalar dustbin score ``z``.
        iters: Sinkhorn iterations (SALAD and MegaLoc use 3).

    Returns:
        ``log P + log(m + n)`` of shape ``(B, m + 1, n)``; row ``m`` is the dustbin.
    """
    b, m, n = scores.shape
    if n <= m:
        # The dustbin's source mass is log(n - m): SALAD needs more tokens than clusters.
        raise ValueError(f"SALAD needs more patch tokens ({n}) than clusters ({m}); use a larger input")
    couplings = torch.cat([scores, dustbin.to(scores.dtype).expand(b, 1, n)], dim=1)
    norm = -math.log(m + n)
    log_mu = scores.new_full((m + 1,), norm)
    log_mu[-1] = norm + math.log(n - m)
    log_nu = scores.new_full((n,), norm)
    log_mu, log_nu = log_mu.expand(b, -1), log_nu.expand(b, -1)
    u, v = torch.zeros_like(log_mu), torch.zeros_like(log_nu)
    for _ in range(iters):
        u = log_mu - torch.logsumexp(couplings + v.unsqueeze(1), dim=2)
        v = log_nu - torch.logsumexp(couplings + u.unsqueeze(2), dim=1)
    return couplings + u.unsqueeze(2) + v.unsqueeze(1) - norm


class SALAD(Aggregator):
    """SALAD aggregation of DINOv2 patch tokens and CLS token.

    Args:
        in_channels: Token channels ``C`` (768 for ViT-B/14).
        clusters: ``m`` (64).
        cluster_dim: ``l`` (128; MegaLoc 256).
        token_dim: ``g``, the global token's size (256).
        mlp_dim: Hidden width of the three MLPs (512).
        dropout: Dropout in the cluster and score MLPs (0.3, training only).
        iters: Sinkhorn iterations (3).

    Parameter names follow the authors' (``token_features.0``, ``cluster_features.3``,
    ``score.3``, ``dust_bin``), so their keys load by prefix only.

    Shape:
        - Input: ``((B, C, h, w), (B, C))`` (``h * w > clusters``)
        - Output: ``(B, clusters * cluster_dim + token_dim)``, unit L2 norm
    """

    needs_cls_token = True

    def __init__(
        self,
        in_channels: int,
        clusters: int = 64,
        cluster_dim: int = 128,
        token_dim: int = 256,
        mlp_dim: int = 512,
        dropout: float = 0.3,
        iters: int = 3,
    ) -> None:
        super().__init__(in_channels)
        self.clusters, self.cluster_dim, self.token_dim = int(clusters), int(cluster_dim), int(token_dim)
        self.iters = int(iters)
        self.out_dim = self.clusters * self.cluster_dim + self.token_dim
        c = self.in_channels

        def drop() -> nn.Module:
            return nn.Dropout(dropout) if dropout > 0 else nn.Identity()

        self.token_features = nn.Sequential(nn.Linear(c, mlp_dim), nn.ReLU(), nn.Linear(mlp_dim, token_dim))
        self.cluster_features = nn.Sequential(
            nn.Conv2d(c, mlp_dim, 1), drop(), nn.ReLU(), nn.Conv2d(mlp_dim, cluster_dim, 1)
        )
        self.score = nn.Sequential(
            nn.Conv2d(c, mlp_dim, 1), drop(), nn.ReLU(), nn.Conv2d(mlp_dim, clusters, 1)
        )
        self.dust_bin = nn.Parameter(torch.tensor(1.0))

    def forward(self, x: tuple[Tensor, Tensor]) -> Tensor:
        """Aggregate ``(map, cls)`` into one descriptor (see the class docstring)."""
        if not isinstance(x, (tuple, list)) or len(x) != 2:
            raise TypeError(
                "SALAD takes (feature map, CLS token); build it in a model with a DINOv2 backbone"
            )
        fmap, token = x
        self._check(fmap)
        f = self.cluster_features(fmap).flatten(2)  # (B, l, n)
        p = torch.exp(log_optimal_transport(self.score(fmap).flatten(2), self.dust_bin, self.iters))
        p = p[:, :-1, :]  # drop the dustbin row: (B, m, n)
        v = torch.einsum("bln,bmn->blm", f, p)
        out = torch.cat(
            [F.normalize(self.token_features(token), p=2, dim=-1), F.normalize(v, p=2, dim=1).flatten(1)],
            dim=-1,
        )
        return F.normalize(out, p=2, dim=-1)

    def extra_repr(self) -> str:
        return f"clusters={self.clusters}, cluster_dim={self.cluster_dim}, token_dim={self.token_dim}"


AGGREGATORS.register(
    "salad",
    lambda c, _arg: SALAD(c),
    dim="m*l+g = 64*128+256 = 8448",
    needs_cls_token=True,
    description="SALAD optimal transport + dustbin, 64x128 + 256 token (needs a DINOv2 backbone)",
)


def salad_keys_to_vgloc(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """serizba/salad ``VPRModel`` keys -> ``dinov2_vitb14+salad`` keys.

    ``backbone.model.X`` (the torch.hub DINOv2 inside SALAD's wrapper) becomes
    ``backbone.X``; the unused ``mask_token`` is dropped; ``aggregator.*`` is unchanged.
    """
    renamed = {
        ("backbone." + k[len("backbone.model.") :] if k.startswith("backbone.model.") else k): v
        for k, v in sd.items()
    }
    return dinov2_keys_to_vgloc(renamed)


_SALAD: dict[str, Any] = {
    "spec": "dinov2_vitb14+salad",
    "descriptor_dim": 8448,
    "preprocessing": DINOV2_EVAL,
    "source": "Izquierdo & Civera, Optimal Transport Aggregation for VPR, CVPR 2024; github.com/serizba/salad",
    "filename": "dino_salad.ckpt",
    "url": "https://github.com/serizba/salad/releases/download/v1.0.0/dino_salad.ckpt",
    "hub_repo": "serizba/salad",
    "convert_keys": salad_keys_to_vgloc,
    "description": "DINOv2 ViT-B/14 + SALAD, trained on GSV-Cities (8448-d, 322x322)",
}
PUBLISHED_MODELS.register("salad", PublishedModel(name="salad", **_SALAD), description=_SALAD["description"])
