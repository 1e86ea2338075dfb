"""The global-descriptor model: backbone -> aggregator -> head -> L2."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vgloc.models.aggregators import Aggregator, build_aggregator
from vgloc.models.backbones import Backbone, build_backbone
from vgloc.models.heads import Head, build_head
from vgloc.models.spec import ModelSpec

__all__ = ["GeoLocalizationModel"]


def _check_images(x: Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(x.shape)}")


class GeoLocalizationModel(nn.Module):
    """Image -> L2-normalised global descriptor, built from a spec string.

    The final descriptor is always L2-normalised. For the VG benchmark's pooling
    models without fc (``l2='before_pool'``, e.g. ``resnet50.conv4+gem``) the authors'
    output is *not* normalised after pooling (norms near but not exactly 1); ours is.
    Rankings by L2 distance can therefore differ slightly from theirs for those models.

    Args:
        spec: A spec string such as ``"resnet18+gem+fc512"`` or a :class:`ModelSpec`.
        pretrained: Load torchvision ImageNet weights into the backbone (``True`` or a
            torchvision weights tag such as ``"IMAGENET1K_V1"``). Downloads unless cached.

    Attributes:
        spec: The canonical spec string.
        descriptor_dim: Length ``D`` of the output descriptor.
        backbone: :class:`~vgloc.models.backbones.Backbone` (state-dict ``backbone.N...``).
        aggregator: :class:`~vgloc.models.aggregators.Aggregator`.
        head: :class:`~vgloc.models.heads.Head`.

    CLS-token contract: an aggregator whose class sets ``needs_cls_token = True``
    (SALAD, MegaLoc, CricaVPR) is called with the pair ``(map (B, C, h, w), cls (B, C))``
    from the backbone's ``forward_tokens(x)`` (DINOv2 backbones have it); every other
    aggregator gets the map ``backbone(x)`` alone. Building such an aggregator on a
    backbone without ``forward_tokens`` is a ``ValueError``.

    Shape:
        - Input: ``(B, 3, H, W)``, ImageNet-normalised RGB
        - Output: ``(B, D)``, unit L2 norm per row
    """

    backbone: Backbone
    aggregator: Aggregator
    head: Head

    def __init__(self, spec: str | ModelSpec, pretrained: bool | str = False) -> None:
        super().__init__()
        parsed = ModelSpec.parse(spec)
        self.model_spec = parsed
        self.spec = str(parsed)
        self.backbone = build_backbone(parsed.backbone, parsed.cut, pretrained)
        self.aggregator = build_aggregator(
            parsed.aggregator, self.backbone.out_channels, parsed.aggregator_arg
        )
        # Aggregators that also read the CLS token (SALAD, MegaLoc, CricaVPR) get
        # (map, cls) from a ViT backbone's forward_tokens; the others get the map alone.
        self.needs_cls_token = bool(getattr(self.aggregator, "needs_cls_token", False))
        if self.needs_cls_token and not hasattr(self.backbone, "forward_tokens"):
            raise ValueError(
                f"aggregator {parsed.aggregator!r} needs a backbone with a CLS token "
                f"(a ViT such as dinov2_vitb14), got {parsed.backbone!r}"
            )
        self.head = build_head(parsed.head, self.aggregator.out_dim, parsed.head_arg)
        self.descriptor_dim = int(self.head.out_dim)
        # Filled by load_model with the checkpoint's "extra" dict.
        self.checkpoint_extra: dict[str, Any] = {}

    def features(self, x: Tensor) -> Tensor:
        """The backbone feature map (before aggregation).

        Shape:
            - x: ``(B, 3, H, W)``
            - Output: ``(B, C, H', W')``
        """
        _check_images(x)
        return self.backbone(x)

    def forward(self, x: Tensor) -> Tensor:
        """Compute global descriptors.

        Args:
            x: A batch of images.

        Returns:
            L2-normalised descriptors.

        Shape:
            - x: ``(B, 3, H, W)``
            - Output: ``(B, descriptor_dim)``
        """
        if self.needs_cls_token:
            _check_images(x)
            pair = self.backbone.forward_tokens(x)  # type: ignore[operator]
            out = self.head(self.aggregator(pair))
        else:
            out = self.head(self.aggregator(self.features(x)))
        # Normalise in at least float32: under fp16/bf16 autocast the squared norm of a
        # long vector loses precision (and can overflow in fp16).
        return F.normalize(out.to(torch.promote_types(out.dtype, torch.float32)), p=2, dim=1)

    def extra_repr(self) -> str:
        return f"spec={self.spec!r}, descriptor_dim={self.descriptor_dim}"
