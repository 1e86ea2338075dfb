"""MixVPR: feature mixing for visual place recognition (Ali-bey et al., WACV 2023).

Source: amaralibey/MixVPR @4043915cef, ``models/aggregators/mixvpr.py``,
``models/backbones/resnet.py`` and the README's loading snippet;
/work/shared/PROTOCOLS.md section 7.

Registered aggregator ``mixvpr{D}``: the ``(C, h, w)`` feature map is flattened to
``C`` rows of length ``h*w``; 4 residual Feature-Mixer blocks (LayerNorm ->
Linear(hw, hw) -> ReLU -> Linear(hw, hw), added to the input) mix each row over space;
a channel projection ``Linear(C, D / 4)`` and a row projection ``Linear(hw, 4)``
give a ``(D / 4, 4)`` matrix, flattened channel-major and L2-normalised.

The mixer's weights are sized for one feature-map grid, fixed when the model is built:
``h = w = 20`` by default, i.e. 320x320 images after a stride-16 backbone such as
``resnet50.conv4`` (the authors: "images must be resized to 320x320"). Another input
size is refused with a clear error instead of silently failing in a matmul.

Published entry: ``mixvpr`` = ``resnet50.conv4+mixvpr4096`` (the authors' released
ResNet-50 4096-d model).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from vgloc.models.aggregators import Aggregator
from vgloc.models.published import Preprocessing, PublishedModel
from vgloc.registry import AGGREGATORS, PUBLISHED_MODELS

__all__ = ["FeatureMixer", "MixVPR", "convert_mixvpr_keys"]


class FeatureMixer(nn.Module):
    """One residual Feature-Mixer block: ``x + MLP(LayerNorm(x))`` over the last axis.

    Args:
        dim: Row length ``h*w``.
        mlp_ratio: Hidden width factor (1 in the released model).

    Shape:
        - Input: ``(B, C, dim)``
        - Output: ``(B, C, dim)``
    """

    def __init__(self, dim: int, mlp_ratio: float = 1.0) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.mix = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        # Authors' init (PROTOCOLS section 7): truncated normal std 0.02, zero bias.
        for m in self.mix:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mix(x)


class MixVPR(Aggregator):
    """The MixVPR aggregator (authors' ``MixVPR`` module, parameter names kept).

    Args:
        in_channels: Backbone channels ``C``.
        out_dim: Descriptor length ``D`` = ``out_rows * out_channels``.
        in_hw: Feature-map grid ``(h, w)`` the mixer is sized for (20x20: 320x320 input
            at stride 16).
        mix_depth: Number of Feature-Mixer blocks (4).
        mlp_ratio: Mixer hidden width factor (1).
        out_rows: Rows of the row projection (4).

    Shape:
        - Input: ``(B, C, h, w)``
        - Output: ``(B, D)``, L2-normalised

    Raises:
        ValueError: ``out_dim`` is not a multiple of ``out_rows``; at forward time, a
            feature map of another size than ``in_hw``.
    """

    def __init__(
        self,
        in_channels: int,
        out_dim: int,
        in_hw: tuple[int, int] = (20, 20),
        mix_depth: int = 4,
        mlp_ratio: float = 1.0,
        out_rows: int = 4,
    ) -> None:
        super().__init__(in_channels)
        if out_dim <= 0 or out_dim % out_rows:
            raise ValueError(f"mixvpr{out_dim}: the descriptor length must be a multiple of {out_rows} rows")
        self.in_hw = (int(in_hw[0]), int(in_hw[1]))
        hw = self.in_hw[0] * self.in_hw[1]
        self.out_rows = int(out_rows)
        self.out_dim = int(out_dim)
        self.mix = nn.Sequential(*[FeatureMixer(hw, mlp_ratio) for _ in range(mix_depth)])
        self.channel_proj = nn.Linear(self.in_channels, out_dim // out_rows)
        self.row_proj = nn.Linear(hw, out_rows)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        if tuple(x.shape[-2:]) != self.in_hw:
            h, w = self.in_hw
            raise ValueError(
                f"MixVPR is sized for a {h}x{w} feature map, got {x.shape[-2]}x{x.shape[-1]}: "
                f"resize images to {16 * h}x{16 * w} for a stride-16 backbone (resnet50.conv4)"
            )
        x = self.mix(x.flatten(2))  # (B, C, hw)
        x = self.channel_proj(x.transpose(1, 2)).transpose(1, 2)  # (B, D/4, hw)
        x = self.row_proj(x)  # (B, D/4, 4)
        return F.normalize(x.flatten(1), p=2, dim=-1)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, in_hw={self.in_hw}, out_dim={self.out_dim}"


AGGREGATORS.register(
    "mixvpr",
    lambda c, d: MixVPR(c, d),
    arg="out_dim",
    arg_default=4096,
    dim="D",
    # The feature-map size the mixer weights are built for: images must be grid x the
    # backbone's stride (BACKBONES metadata "stride"), e.g. 20 x 16 = 320 px.
    grid=(20, 20),
    description="MixVPR (WACV 2023): 4 feature mixers over a 20x20 map (320x320 input at stride 16), e.g. mixvpr4096",
)


def convert_mixvpr_keys(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Authors' MixVPR checkpoint keys -> ``resnet50.conv4+mixvpr4096`` keys.

    The authors keep torchvision's attribute names under ``backbone.model``
    (``conv1``, ``bn1``, ``layer1`` ...); vgloc's backbone is the ``nn.Sequential`` of
    the same modules (children 0, 1, 4, 5, 6; 2 and 3 are ReLU and max-pool). The
    aggregator keys are identical.
    """
    index = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6"}
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        if key.startswith("backbone.model."):
            head, _, rest = key[len("backbone.model.") :].partition(".")
            if head not in index:
                raise ValueError(f"unexpected MixVPR backbone key {key!r} (layer4 is cropped in this model)")
            key = f"backbone.{index[head]}.{rest}"
        out[key] = value
    return out


PUBLISHED_MODELS.register(
    "mixvpr",
    PublishedModel(
        name="mixvpr",
        spec="resnet50.conv4+mixvpr4096",
        descriptor_dim=4096,
        # README: "images must be resized to 320x320"; ImageNet normalisation.
        preprocessing=Preprocessing(image_size=(320, 320)),
        source=(
            "Ali-bey et al., MixVPR: Feature Mixing for Visual Place Recognition, WACV 2023; "
            "github.com/amaralibey/MixVPR (weights: Google Drive file "
            "11rxwsx6aUn7CwRyGxvFOWpAmUxniwREN, linked from the README)"
        ),
        filename="resnet50_MixVPR_4096_channels(1024)_rows(4).ckpt",
        # Google Drive serves large files through a confirmation page, not a direct URL.
        url=None,
        convert_keys=convert_mixvpr_keys,
        description="MixVPR ResNet-50 (cropped after layer3) 4096-d at 320x320, trained on GSV-Cities",
    ),
    description="MixVPR ResNet-50 4096-d (GSV-Cities)",
)
