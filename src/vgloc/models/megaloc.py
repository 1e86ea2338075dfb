"""MegaLoc: DINOv2 ViT-B/14 + a SALAD aggregator with a linear projection (Berton & Masone, 2025).

"MegaLoc: One Retrieval to Place Them All" (arXiv 2502.17237), gmberton/MegaLoc
(``megaloc_model.py``). Registered as aggregator ``megaloc`` and published model
``megaloc`` (``dinov2_vitb14+megaloc``, 8448-d).

The aggregator is SALAD (:class:`~vgloc.models.salad.SALAD`) with 64 clusters of 256
dims and a 256-d token (16640-d, itself L2-normalised), then ``Linear(16640, 8448)``; the
model L2-normalises the result (MegaLoc's ``L2Norm``). The module layout is the
authors' (``agg.*``, ``linear.*``), and MegaLoc's self-contained ViT uses DINOv2's key
names without a wrapper, so the published ``model.safetensors`` loads with its keys
unchanged.

MegaLoc's forward resizes inputs whose sides are not multiples of 14 to the nearest
multiple (antialiased); vgloc's DINOv2 backbone raises instead, and the published
entry's 322x322 preprocessing never needs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from vgloc.models.aggregators import Aggregator
from vgloc.models.dinov2 import DINOV2_EVAL, dinov2_keys_to_vgloc
from vgloc.models.published import PublishedModel
from vgloc.models.salad import SALAD
from vgloc.registry import AGGREGATORS, PUBLISHED_MODELS

__all__ = ["MegaLocAggregator", "megaloc_keys_to_vgloc"]


class MegaLocAggregator(Aggregator):
    """SALAD (64 x 256 + 256) followed by ``Linear(16640, out_dim)``.

    Args:
        in_channels: Token channels ``C`` (768).
        out_dim: Descriptor size (8448).

    Shape:
        - Input: ``((B, C, h, w), (B, C))``
        - Output: ``(B, out_dim)`` (not normalised; the model L2-normalises)
    """

    needs_cls_token = True

    def __init__(self, in_channels: int, out_dim: int = 8448) -> None:
        super().__init__(in_channels)
        self.agg = SALAD(in_channels, clusters=64, cluster_dim=256, token_dim=256, mlp_dim=512)
        self.linear = nn.Linear(self.agg.out_dim, int(out_dim))
        self.out_dim = int(out_dim)

    def forward(self, x: tuple[Tensor, Tensor]) -> Tensor:
        """``linear(SALAD(map, cls))``."""
        out: Tensor = self.linear(self.agg(x))
        return out


AGGREGATORS.register(
    "megaloc",
    lambda c, _arg: MegaLocAggregator(c),
    dim="8448 (SALAD 64*256+256 -> linear)",
    needs_cls_token=True,
    description="MegaLoc: SALAD 64x256+256 -> Linear(16640, 8448) (needs a DINOv2 backbone)",
)


def megaloc_keys_to_vgloc(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """gmberton/MegaLoc ``MegaLocModel`` keys -> ``dinov2_vitb14+megaloc`` keys.

    The layouts already agree (``backbone.blocks.N.*``, ``aggregator.agg.*``,
    ``aggregator.linear.*``); a ``mask_token`` (present in the torch.hub-DINOv2 version of
    MegaLoc's code) is dropped.
    """
    return dinov2_keys_to_vgloc(sd)


_MEGALOC: dict[str, Any] = {
    "spec": "dinov2_vitb14+megaloc",
    "descriptor_dim": 8448,
    "preprocessing": DINOV2_EVAL,
    "source": "Berton & Masone, MegaLoc: One Retrieval to Place Them All, 2025; github.com/gmberton/MegaLoc",
    "filename": "megaloc.safetensors",
    "url": "https://huggingface.co/gberton/MegaLoc/resolve/main/model.safetensors",
    "convert_keys": megaloc_keys_to_vgloc,
    "description": "MegaLoc: DINOv2 ViT-B/14 + SALAD + linear, trained on many VPR/landmark sets (8448-d)",
}
PUBLISHED_MODELS.register(
    "megaloc", PublishedModel(name="megaloc", **_MEGALOC), description=_MEGALOC["description"]
)
