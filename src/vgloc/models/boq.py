"""BoQ: Bag-of-Queries aggregation (Ali-bey et al., CVPR 2024).

Source: amaralibey/Bag-of-Queries @1a4965ea7d, ``src/boq.py`` (the aggregator) and
``hubconf.py`` (the released models); /work/shared/PROTOCOLS.md section 7.

Registered aggregator ``boq{R}`` (default ``boq32``): a 3x3 conv projects the ``C`` input channels to
``P = C // 2`` channels (1024 -> 512 after ResNet-50's layer3, 768 -> 384 for DINOv2
ViT-B/14: the authors' two released configurations), then LayerNorm, then 2 BoQ blocks
with 64 learned queries each. Every block is a post-norm ``TransformerEncoderLayer``
(``P // 64`` heads, FFN ``4P``, ReLU, no dropout) over the feature tokens, plus
self-attention of its queries (residual + LayerNorm) and cross-attention of the
queries to the tokens (+ LayerNorm). The 2 x 64 query outputs are concatenated and a
``Linear(128, R)`` mixes them into ``R`` rows; the ``(P, R)`` matrix is flattened
channel-major and L2-normalised: a ``D = P * R`` descriptor. The authors'
``get_trained_boq(backbone, output_dim)`` sets ``R = output_dim / P``; both released
models use ``R = 32`` (``resnet50.conv4+boq32``: 16384-d, ``dinov2_vitb14_nonorm+boq32``:
12288-d). The spec number is ``R``, not ``D``, so that ``boq`` has a default that fits
every backbone.

Parameter names are the authors' (``proj_c``, ``norm_input``, ``boqs.N.encoder``,
``boqs.N.queries``, ``fc`` ...), so their checkpoints load by a prefix rename.

BoQ's DINOv2 wrapper feeds the patch tokens of the last block **without** DINOv2's final
LayerNorm (its ``dino.norm`` weights are in the checkpoint but unused; the converter drops them) and trains the last
2 blocks; vgloc registers that variant as the backbones ``dinov2_vit{s,b,l,g}14_nonorm``
(:class:`DinoV2NoNorm`).

Published entries (:data:`vgloc.registry.PUBLISHED_MODELS`): ``boq-resnet50``
(``resnet50.conv4+boq32``, 384x384) and ``boq-dinov2``
(``dinov2_vitb14_nonorm+boq32``, 322x322).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vgloc.models.aggregators import Aggregator
from vgloc.models.backbones import Backbone
from vgloc.models.dinov2 import (
    DINOV2_ARCHS,
    DINOV2_EVAL,
    DinoV2Backbone,
    build_dinov2,
    dinov2_keys_to_vgloc,
    register_dinov2_backbone,
)
from vgloc.models.published import Preprocessing, PublishedModel
from vgloc.registry import AGGREGATORS, PUBLISHED_MODELS

__all__ = ["BoQ", "BoQBlock", "DinoV2NoNorm", "convert_boq_dinov2_keys", "convert_boq_resnet50_keys"]

_BOQ_SOURCE = "Ali-bey et al., BoQ: A Place is Worth a Bag of Learnable Queries, CVPR 2024; github.com/amaralibey/Bag-of-Queries"
_BOQ_RELEASE = "https://github.com/amaralibey/Bag-of-Queries/releases/download/v1.0/"


class BoQBlock(nn.Module):
    """One BoQ layer: token encoder, learned queries, cross-attention (authors' ``BoQBlock``).

    Args:
        dim: Token width ``P``.
        num_queries: Number of learned queries ``Q``.
        heads: Attention heads (the authors use ``P // 64``).

    Shape:
        - Input: ``(B, N, P)`` tokens
        - Output: ``((B, N, P), (B, Q, P), (B, Q, N) or None)``: the encoded tokens (the
          next block's input), the queries' outputs and, with ``need_weights``, the
          cross-attention (averaged over heads, as the authors return it)
    """

    def __init__(self, dim: int, num_queries: int, heads: int) -> None:
        super().__init__()
        self.encoder = nn.TransformerEncoderLayer(
            d_model=dim, nhead=heads, dim_feedforward=4 * dim, batch_first=True, dropout=0.0
        )
        # randn init, as the authors (not scaled).
        self.queries = nn.Parameter(torch.randn(1, num_queries, dim))
        # The query self-attention does not depend on the image: the authors keep it for
        # training stability ("you can cache their output in eval").
        self.self_attn = nn.MultiheadAttention(dim, num_heads=heads, batch_first=True)
        self.norm_q = nn.LayerNorm(dim)
        self.cross_attn = nn.MultiheadAttention(dim, num_heads=heads, batch_first=True)
        self.norm_out = nn.LayerNorm(dim)

    def forward(self, x: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
        x = self.encoder(x)
        q = self.queries.expand(x.shape[0], -1, -1)
        q = self.norm_q(q + self.self_attn(q, q, q, need_weights=False)[0])
        # Attention weights only on request: computing them disables the fused kernels.
        out, attn = self.cross_attn(q, x, x, need_weights=need_weights)
        return x, self.norm_out(out), attn


class BoQ(Aggregator):
    """Bag-of-Queries aggregator (authors' ``BoQ`` module).

    Args:
        in_channels: Backbone channels ``C``.
        rows: Output rows ``R`` (32 in the released models); the descriptor has
            ``D = P * R`` entries.
        proj_channels: ``P``; ``None`` means ``C // 2`` (the released models' choice).
        num_queries: Learned queries per block (64 in the released models).
        num_layers: BoQ blocks (2).

    Shape:
        - Input: ``(B, C, H, W)`` (any H, W)
        - Output: ``(B, P * R)``, L2-normalised

    Raises:
        ValueError: ``rows`` or ``P`` is not positive, or ``P`` is not divisible by its
            head count.
    """

    def __init__(
        self,
        in_channels: int,
        rows: int = 32,
        proj_channels: int | None = None,
        num_queries: int = 64,
        num_layers: int = 2,
    ) -> None:
        super().__init__(in_channels)
        proj = int(proj_channels) if proj_channels is not None else self.in_channels // 2
        if proj <= 0 or rows <= 0:
            raise ValueError(f"boq: rows ({rows}) and the projection width ({proj}) must be positive")
        # The authors use P // 64 heads; at least one so that narrow test backbones work.
        heads = max(1, proj // 64)
        if proj % heads:
            raise ValueError(f"boq: projection width {proj} is not divisible by its {heads} heads")
        self.proj_channels = proj
        self.row_dim = int(rows)
        self.out_dim = proj * self.row_dim
        self.proj_c = nn.Conv2d(self.in_channels, proj, kernel_size=3, padding=1)
        self.norm_input = nn.LayerNorm(proj)
        self.boqs = nn.ModuleList([BoQBlock(proj, num_queries, heads) for _ in range(num_layers)])
        self.fc = nn.Linear(num_layers * num_queries, self.row_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_attention(x, need_weights=False)[0]

    def forward_with_attention(self, x: Tensor, need_weights: bool = True) -> tuple[Tensor, list[Tensor]]:
        """The descriptor and the blocks' cross-attention maps (the authors' forward).

        Shape:
            - x: ``(B, C, H, W)``
            - Output: ``((B, D), [(B, Q, H*W)] * num_layers)`` (an empty list without
              ``need_weights``)
        """
        self._check(x)
        x = self.norm_input(self.proj_c(x).flatten(2).transpose(1, 2))  # (B, HW, P)
        outs, attns = [], []
        for block in self.boqs:
            x, out, attn = block(x, need_weights)
            outs.append(out)
            if attn is not None:
                attns.append(attn.detach())
        rows = self.fc(torch.cat(outs, dim=1).transpose(1, 2))  # (B, P, D / P)
        return F.normalize(rows.flatten(1), p=2, dim=-1), attns

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, proj_channels={self.proj_channels}, out_dim={self.out_dim}"


AGGREGATORS.register(
    "boq",
    lambda c, r: BoQ(c, r),
    arg="rows",
    arg_default=32,
    dim="D",
    description="Bag-of-Queries (BoQ, CVPR 2024): conv3x3 C->C/2, 2 blocks x 64 queries, R rows -> D = C/2*R; e.g. boq32",
)


# -- published models ---------------------------------------------------------------------
def _rename_prefix(sd: Mapping[str, Tensor], old: str, new: str) -> dict[str, Tensor]:
    return {(new + k[len(old) :] if k.startswith(old) else k): v for k, v in sd.items()}


def convert_boq_resnet50_keys(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Authors' ``resnet50_16384.pth`` keys -> ``resnet50.conv4+boq32`` keys.

    The authors' backbone is ``nn.Sequential(conv1, bn1, relu, maxpool, layer1..3)`` under
    ``backbone.net``; vgloc's ``resnet50.conv4`` is the same sequence under ``backbone``.
    The aggregator keys are identical.
    """
    return _rename_prefix(sd, "backbone.net.", "backbone.")


PUBLISHED_MODELS.register(
    "boq-resnet50",
    PublishedModel(
        name="boq-resnet50",
        spec="resnet50.conv4+boq32",
        descriptor_dim=16384,
        # Authors' test size for ResNet-50 (train.py:69-79; PROTOCOLS section 7).
        preprocessing=Preprocessing(image_size=(384, 384)),
        source=_BOQ_SOURCE,
        filename="resnet50_16384.pth",
        url=_BOQ_RELEASE + "resnet50_16384.pth",
        convert_keys=convert_boq_resnet50_keys,
        description="BoQ ResNet-50 (cropped after layer3) 16384-d, trained on GSV-Cities",
    ),
    description="BoQ ResNet-50 16384-d (GSV-Cities)",
)


# -- BoQ's DINOv2 backbone: no final LayerNorm ---------------------------------------------
class DinoV2NoNorm(DinoV2Backbone):
    """DINOv2 as BoQ's ``DinoV2`` wrapper runs it: the last block's patch tokens, no final norm.

    The final LayerNorm is replaced by an identity, so the model has no parameter that
    never gets a gradient; :func:`convert_boq_dinov2_keys` drops the authors' unused
    ``dino.norm.*`` entries. Default ``trainable_blocks`` is 2 (BoQ's ``unfreeze_n_blocks``).

    Shape:
        - Input: ``(B, 3, H, W)``, H and W multiples of 14
        - Output: ``(B, C, H/14, W/14)``; :meth:`forward_tokens` adds the (un-normalised)
          CLS token ``(B, C)``
    """

    def __init__(self, vit: Any, *, name: str, trainable_blocks: int = 2) -> None:
        super().__init__(vit, name=name, trainable_blocks=trainable_blocks)
        self.norm = nn.Identity()


def _register_nonorm(arch: str) -> None:
    params = DINOV2_ARCHS[arch][3]
    name = f"{arch}_nonorm"

    def build(cut: str, pretrained: bool | str) -> Backbone:
        return build_dinov2(arch, pretrained, 2, backbone_cls=DinoV2NoNorm, registry_name=name)

    register_dinov2_backbone(
        name,
        arch,
        build,
        f"{arch} ({params} params) without the final LayerNorm, last 2 blocks trainable "
        "(BoQ's DINOv2 wrapper); input sides multiples of 14",
    )


for _arch in DINOV2_ARCHS:
    _register_nonorm(_arch)


def convert_boq_dinov2_keys(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Authors' ``dinov2_12288.pth`` keys -> ``dinov2_vitb14_nonorm+boq32`` keys.

    BoQ wraps facebookresearch/dinov2's ViT as ``backbone.dino``; vgloc's DINOv2 backbone
    holds the same modules under ``backbone``. Dropped: ``mask_token`` (unused at
    inference, by :func:`~vgloc.models.dinov2.dinov2_keys_to_vgloc`) and ``dino.norm.*``
    (the authors' wrapper never applies the final norm; the fixture shows these entries
    cannot change the output).
    """
    kept = {k: v for k, v in sd.items() if not k.startswith("backbone.dino.norm.")}
    return dinov2_keys_to_vgloc(_rename_prefix(kept, "backbone.dino.", "backbone."))


PUBLISHED_MODELS.register(
    "boq-dinov2",
    PublishedModel(
        name="boq-dinov2",
        spec="dinov2_vitb14_nonorm+boq32",
        descriptor_dim=12288,
        # Authors' test size for DINOv2 (train.py:69-79; PROTOCOLS section 7): 322x322.
        preprocessing=DINOV2_EVAL,
        source=_BOQ_SOURCE,
        filename="dinov2_12288.pth",
        url=_BOQ_RELEASE + "dinov2_12288.pth",
        convert_keys=convert_boq_dinov2_keys,
        description="BoQ DINOv2 ViT-B/14 12288-d at 322x322, trained on GSV-Cities",
    ),
    description="BoQ DINOv2 ViT-B/14 12288-d (GSV-Cities)",
)
