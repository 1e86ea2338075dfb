"""CricaVPR: cross-image correlation-aware representations (Lu et al., CVPR 2024).

"CricaVPR: Cross-image Correlation-aware Representation Learning for Visual Place
Recognition", Lu-Feng/CricaVPR (``network.py``, ``backbone/dinov2/block.py``).
Registered as backbone ``dinov2_vitb14_adapter`` (DINOv2 ViT-B/14 whose blocks carry
CricaVPR's multi-scale convolutional adapters), aggregator ``cricavpr`` (regional GeM +
cross-image encoder, 14 x C = 10752-d for ViT-B) and published model ``cricavpr``.

Aggregation, for the normalised patch map ``(B, C, h, w)`` and CLS token ``(B, C)``:
14 tokens per image = the CLS token, GeM (one shared learnable ``p``, after L2 over
channels) of the 2x2 regions and of the 3x3 regions; then a 2-layer
``nn.TransformerEncoder`` (d_model C, 16 heads, FFN 2048, GELU, post-norm), flatten,
L2. The authors slice a 16x16 grid at 8 and at 5/11; here the cuts are
``floor(n*k/2 + 0.5)`` and ``floor(n*k/3 + 0.5)``, which are exactly those for n = 16
(224x224 input, the authors' size) and proportional regions for other sizes.

**Batch dependence.** The authors' encoder is ``batch_first=False`` but receives a
``(B, 14, C)`` tensor, so it attends *across the images of the batch*: a descriptor
depends on the other images in the batch and their order. vgloc's default
(``cross_image=False``) encodes each image alone (exactly the authors' output for a
batch of one), so database and query descriptors do not depend on batching. Set
``model.aggregator.cross_image = True`` (or :func:`set_cross_image`) for the authors'
batch behaviour (what their evaluation does with its batches).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vgloc.models.aggregators import Aggregator
from vgloc.models.dinov2 import DinoV2Backbone, build_dinov2, dinov2_keys_to_vgloc
from vgloc.models.published import Preprocessing, PublishedModel
from vgloc.registry import AGGREGATORS, BACKBONES, PUBLISHED_MODELS

__all__ = [
    "AdapterDinoV2Backbone",
    "CricaVPRAggregator",
    "MulConvAdapter",
    "cricavpr_keys_to_vgloc",
    "set_cross_image",
]


class _ConvBN(nn.Module):
    """Conv (with bias) -> BatchNorm (eps 1e-3) -> ReLU: CricaVPR's ``BasicConv2d``."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=True)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


class MulConvAdapter(nn.Module):
    """CricaVPR's multi-scale conv adapter on a token sequence ``(B, 1 + h*w, C)``.

    ``D_fc1`` (C -> C/2), ReLU, then on the patch grid three branches (1x1 -> C/4;
    1x1 -> C/32 -> 3x3 -> C/8; 1x1 -> C/32 -> 5x5 -> C/8) concatenated back to C/2, the
    CLS token passed through, plus the ``D_fc1`` output (residual), then ``D_fc2`` back to C.
    For ViT-B these are the authors' hard-coded 768/384/192/24/96/24/96.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        mid = dim // 2
        self.D_fc1 = nn.Linear(dim, mid)  # the authors' parameter names
        self.D_fc2 = nn.Linear(mid, dim)
        self.branch1 = _ConvBN(mid, dim // 4, 1)
        self.branch2 = nn.Sequential(_ConvBN(mid, dim // 32, 1), _ConvBN(dim // 32, dim // 8, 3))
        self.branch3 = nn.Sequential(_ConvBN(mid, dim // 32, 1), _ConvBN(dim // 32, dim // 8, 5))
        # CricaVPR's train.py initialisation: the adapter starts as (almost) zero.
        nn.init.zeros_(self.D_fc2.weight)
        nn.init.zeros_(self.D_fc2.bias)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.constant_(m.weight, 1e-5)
                nn.init.constant_(cast(Tensor, m.bias), 1e-5)

    def forward(self, x: Tensor, grid: tuple[int, int]) -> Tensor:
        """``(B, 1 + h*w, C)`` -> ``(B, 1 + h*w, C)``; ``grid`` is ``(h, w)``."""
        x0 = F.relu(self.D_fc1(x))
        b, _, d = x0.shape
        xs = x0[:, 1:].reshape(b, grid[0], grid[1], d).permute(0, 3, 1, 2)
        conv = torch.cat([self.branch1(xs), self.branch2(xs), self.branch3(xs)], dim=1)
        out = torch.cat([x0[:, :1], conv.reshape(b, d, -1).permute(0, 2, 1)], dim=1) + x0
        out_: Tensor = self.D_fc2(out)
        return out_


@functools.cache
def adapter_block_class() -> type[nn.Module]:
    """timm's ViT block plus CricaVPR's adapter in the MLP branch (the class, built once).

    Built on first use so that importing vgloc does not import timm (about a second).
    ``x + ls1(attn(norm1(x)))``, then ``x + ls2(mlp(norm2(x)) + 0.2 * adapter(norm2(x)))``.
    """
    from timm.models.vision_transformer import Block

    class AdapterBlock(Block):
        """timm's ViT block plus CricaVPR's adapter in the MLP branch."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.adapter = MulConvAdapter(int(kwargs["dim"]))

        def forward(self, x: Tensor, grid: tuple[int, int]) -> Tensor:  # type: ignore[override]
            """``(B, 1 + h*w, C)`` -> same; ``grid`` is the patch grid ``(h, w)``."""
            x = x + self.ls1(self.attn(self.norm1(x)))
            y = self.norm2(x)
            out: Tensor = x + self.ls2(self.mlp(y) + 0.2 * self.adapter(y, grid))
            return out

    return AdapterBlock


class AdapterDinoV2Backbone(DinoV2Backbone):
    """DINOv2 with adapter blocks (:func:`adapter_block_class`; CricaVPR's backbone).

    :meth:`freeze_early_layers` freezes every backbone parameter except the adapters,
    as CricaVPR's ``train.py`` does.
    """

    def _run_blocks(self, tokens: Tensor, grid: tuple[int, int]) -> Tensor:
        for blk in self.blocks:
            tokens = blk(tokens, grid)
        return tokens

    def freeze_early_layers(self) -> list[str]:
        """Freeze all but the adapters; return what was frozen (short paths, for logs)."""
        for name, param in self.named_parameters():
            if ".adapter." not in name:
                param.requires_grad_(False)
        return ["cls_token", "pos_embed", "patch_embed", f"blocks.0-{self.depth - 1} except .adapter", "norm"]


@BACKBONES.register(
    "dinov2_vitb14_adapter",
    channels={"last": 768},
    default_cut="last",
    stride={"last": 14},
    multiple_of=14,
    cls_token=True,
    timm="vit_base_patch14_dinov2",
    description="DINOv2 ViT-B/14 with CricaVPR's multi-scale conv adapters (adapters trainable)",
)
def _build_adapter_backbone(cut: str, pretrained: bool | str) -> DinoV2Backbone:
    # CricaVPR builds vit_base(init_values=1): LayerScale starts at 1 (matters for random init).
    return build_dinov2(
        "dinov2_vitb14",
        pretrained,
        backbone_cls=AdapterDinoV2Backbone,
        registry_name="dinov2_vitb14_adapter",
        block_fn=adapter_block_class(),
        init_values=1.0,
    )


def _region_cuts(n: int, parts: int) -> list[int]:
    """Cut points of ``n`` cells into ``parts`` (16 -> [0, 8, 16] and [0, 5, 11, 16])."""
    return [math.floor(n * k / parts + 0.5) for k in range(parts + 1)]


class CricaVPRAggregator(Aggregator):
    """CLS + 2x2 and 3x3 regional GeM tokens -> cross-image TransformerEncoder -> flatten.

    Args:
        in_channels: Token channels ``C`` (768).
        cross_image: ``True`` for the authors' behaviour (the encoder attends across the
            batch); ``False`` (default) encodes each image alone.

    Shape:
        - Input: ``((B, C, h, w), (B, C))`` with ``h, w >= 3``
        - Output: ``(B, 14 * C)`` (the model L2-normalises)
    """

    needs_cls_token = True

    def __init__(self, in_channels: int, cross_image: bool = False) -> None:
        super().__init__(in_channels)
        self.out_dim = 14 * self.in_channels
        self.cross_image = bool(cross_image)
        self.p = nn.Parameter(torch.ones(1) * 3.0)
        self.eps = 1e-6
        layer = nn.TransformerEncoderLayer(
            d_model=self.in_channels, nhead=16, dim_feedforward=2048, activation="gelu", dropout=0.1
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)

    def _gem(self, region: Tensor) -> Tensor:
        region = F.normalize(region, p=2, dim=1).clamp(min=self.eps).pow(self.p)
        return region.mean(dim=(-2, -1)).pow(1.0 / self.p)

    def region_tokens(self, fmap: Tensor, cls: Tensor) -> Tensor:
        """The 14 tokens per image, ``(B, 14, C)``: CLS, 2x2 then 3x3 regions, row-major."""
        self._check(fmap)
        h, w = fmap.shape[-2:]
        if h < 3 or w < 3:
            raise ValueError(f"CricaVPR needs a patch grid of at least 3x3, got {h}x{w}")
        tokens = [cls]
        for parts in (2, 3):
            rows, cols = _region_cuts(h, parts), _region_cuts(w, parts)
            for i in range(parts):
                for j in range(parts):
                    tokens.append(self._gem(fmap[:, :, rows[i] : rows[i + 1], cols[j] : cols[j + 1]]))
        return torch.stack(tokens, dim=1)

    def forward(self, x: tuple[Tensor, Tensor]) -> Tensor:
        """Encode the 14 tokens (across the batch only when ``cross_image``) and flatten."""
        fmap, cls = x
        tokens = self.region_tokens(fmap, cls)
        b = tokens.shape[0]
        # cross_image: the authors' call, (B, 14, C) read as (sequence=B, batch=14, C).
        # Otherwise a sequence of length 1 per image token: each image encoded alone.
        out = self.encoder(tokens if self.cross_image else tokens.reshape(1, b * 14, -1))
        return out.reshape(b, 14 * self.in_channels)

    def extra_repr(self) -> str:
        return f"cross_image={self.cross_image}"


AGGREGATORS.register(
    "cricavpr",
    lambda c, _arg: CricaVPRAggregator(c),
    dim="14*C (10752 for ViT-B)",
    needs_cls_token=True,
    description="CricaVPR: CLS + 2x2/3x3 regional GeM -> 2-layer encoder (per image by default)",
)


def set_cross_image(model: nn.Module, enabled: bool = True) -> None:
    """Switch a CricaVPR model to the authors' batch-dependent encoding (or back).

    Raises:
        TypeError: ``model`` has no CricaVPR aggregator.
    """
    agg = getattr(model, "aggregator", model)
    if not isinstance(agg, CricaVPRAggregator):
        raise TypeError(f"expected a model with a CricaVPR aggregator, got {type(agg).__name__}")
    agg.cross_image = bool(enabled)


def cricavpr_keys_to_vgloc(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Lu-Feng/CricaVPR ``GeoLocalizationNet`` keys -> ``dinov2_vitb14_adapter+cricavpr`` keys.

    ``aggregation.1.p`` -> ``aggregator.p``; ``encoder.*`` -> ``aggregator.encoder.*``;
    ``backbone.*`` unchanged except the unused ``mask_token`` (dropped).
    """
    out: dict[str, Tensor] = {}
    for key, val in dinov2_keys_to_vgloc(sd).items():
        if key == "aggregation.1.p":
            key = "aggregator.p"
        elif key.startswith("encoder."):
            key = "aggregator." + key
        out[key] = val
    return out


_CRICAVPR: dict[str, Any] = {
    "spec": "dinov2_vitb14_adapter+cricavpr",
    "descriptor_dim": 10752,
    # CricaVPR's test resize is 224x224 (its forward slices a 16x16 patch grid).
    "preprocessing": Preprocessing(image_size=(224, 224), multiple_of=14),
    "source": "Lu et al., CricaVPR: Cross-image Correlation-aware Representation Learning, CVPR 2024; "
    "github.com/Lu-Feng/CricaVPR",
    "filename": "CricaVPR.pth",
    "url": "https://github.com/Lu-Feng/CricaVPR/releases/download/v1.0/CricaVPR.pth",
    "convert_keys": cricavpr_keys_to_vgloc,
    "batch_dependent": True,
    "description": "CricaVPR: DINOv2 ViT-B/14 + adapters + cross-image encoder (10752-d, 224x224)",
}
PUBLISHED_MODELS.register(
    "cricavpr", PublishedModel(name="cricavpr", **_CRICAVPR), description=_CRICAVPR["description"]
)
