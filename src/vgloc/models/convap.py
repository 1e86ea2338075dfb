"""Conv-AP aggregation (Ali-bey et al., GSV-Cities, Neurocomputing 2022).

Source: amaralibey/gsv-cities, ``models/aggregators/convap.py`` (paper:
https://arxiv.org/abs/2210.10239). No checkpoint fixture exists for it; the module
follows the authors' code: a 1x1 convolution (with bias) reduces the ``C`` channels to
``D / 4``, adaptive average pooling to a 2x2 grid, flatten (channel-major: each
channel's 4 cells are consecutive), L2.

The pooling is written as two small averaging matrices (``adaptive_avg_pool_matrix``),
which give the same bins as ``nn.AdaptiveAvgPool2d`` but, unlike it, export to ONNX with
dynamic image sizes (the legacy exporter refuses adaptive pooling of an unknown size).

Registered aggregator ``convap{D}`` (default 2048, the authors' default of 512
channels x 2 x 2). Parameter names are the authors' (``channel_pool``), so their
checkpoints load with ``aggregator.channel_pool.*`` keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vgloc.models.aggregators import Aggregator
from vgloc.registry import AGGREGATORS

__all__ = ["ConvAP", "adaptive_avg_pool_matrix"]


def adaptive_avg_pool_matrix(n: int, bins: int, like: Tensor) -> Tensor:
    """The ``(bins, n)`` matrix whose rows average the bins of PyTorch's adaptive average pooling.

    Bin ``i`` covers ``[floor(i*n/bins), ceil((i+1)*n/bins))``, as PyTorch's adaptive
    pooling. Index arithmetic runs in float32 (exact for any realistic ``n``) and the
    result takes ``like``'s dtype and device.

    Shape:
        - Output: ``(bins, n)``, rows summing to 1
    """
    idx = torch.arange(n, device=like.device, dtype=torch.float32)
    i = torch.arange(bins, device=like.device, dtype=torch.float32)
    start = torch.floor(i * n / bins)
    end = torch.ceil((i + 1) * n / bins)
    mask = ((idx[None] >= start[:, None]) & (idx[None] < end[:, None])).float()
    return (mask / mask.sum(dim=1, keepdim=True)).to(like.dtype)


class ConvAP(Aggregator):
    """Conv-AP: conv 1x1 -> adaptive average pool (s1 x s2) -> flatten -> L2.

    Args:
        in_channels: Backbone channels ``C``.
        out_dim: Descriptor length ``D``; ``D / (s1 * s2)`` channels.
        s1: Pooled grid height (2).
        s2: Pooled grid width (2).

    Shape:
        - Input: ``(B, C, H, W)`` (any H, W)
        - Output: ``(B, D)``, L2-normalised

    Raises:
        ValueError: ``out_dim`` is not a multiple of ``s1 * s2``.
    """

    def __init__(self, in_channels: int, out_dim: int, s1: int = 2, s2: int = 2) -> None:
        super().__init__(in_channels)
        if out_dim <= 0 or out_dim % (s1 * s2):
            raise ValueError(f"convap{out_dim}: the descriptor length must be a multiple of {s1 * s2}")
        self.out_dim = int(out_dim)
        self.channel_pool = nn.Conv2d(self.in_channels, out_dim // (s1 * s2), kernel_size=1, bias=True)
        self.grid = (int(s1), int(s2))

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        y = self.channel_pool(x)
        # = nn.AdaptiveAvgPool2d(grid)(y), in an ONNX-exportable form (module docstring).
        ph = adaptive_avg_pool_matrix(y.shape[-2], self.grid[0], y)
        pw = adaptive_avg_pool_matrix(y.shape[-1], self.grid[1], y)
        pooled = torch.einsum("ih,bchw,jw->bcij", ph, y, pw)
        return F.normalize(pooled.flatten(1), p=2, dim=1)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_dim={self.out_dim}, grid={self.grid}"


AGGREGATORS.register(
    "convap",
    lambda c, d: ConvAP(c, d),
    arg="out_dim",
    arg_default=2048,
    dim="D",
    description="Conv-AP (GSV-Cities): conv1x1 C->D/4, adaptive avg pool 2x2, L2; e.g. convap2048",
)
