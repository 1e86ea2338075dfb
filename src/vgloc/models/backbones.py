"""Convolutional backbones: image -> dense feature map.

Every backbone is an ``nn.Sequential`` of the torchvision model's children, so its
state-dict keys are ``backbone.<index>...`` exactly as in the CosPlace and
VG-benchmark checkpoints (the two code bases build their backbones the same way).

Cuts ("which stage is the output"):

- ResNet (``resnet18/34/50/101/152``) ``conv5`` (default, CosPlace): ``children[:-2]`` (drops avgpool and fc).
- ResNet ``conv4`` (VG benchmark's ``resnetXXconv4``): ``children[:-3]`` (also drops
  layer4).
- EfficientNet (``efficientnet_b0`` ... ``efficientnet_b7``, ``efficientnet_v2_s``): ``children[:-2]``, i.e. the
  ``features`` block alone, so keys are ``backbone.0.<block>...`` as in CosPlace.
- VGG16 ``conv5``: ``features[:-2]``. This drops the last max-pool **and the last
  ReLU**, so the feature map ends with the raw output of conv5_3 (a quirk of both
  CosPlace and the VG benchmark, kept for checkpoint compatibility).

Backbones are built with random weights unless ``pretrained`` asks for
torchvision's ImageNet weights (downloaded by :mod:`vgloc.models.pretrained`).
Nothing is frozen by default; call :func:`freeze_early_layers` in training code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from torch import nn

from vgloc.registry import BACKBONES

if TYPE_CHECKING:
    from vgloc.models.model import GeoLocalizationModel

__all__ = ["Backbone", "build_backbone", "freeze_early_layers"]


class Backbone(nn.Sequential):
    """A feature extractor: an ``nn.Sequential`` plus what the rest of the model needs.

    Args:
        *layers: The layers, in order.
        name: Registry name of the architecture (e.g. ``"resnet50"``).
        cut: Which stage the output comes from (e.g. ``"conv4"``).
        out_channels: Channels of the output feature map.
        frozen: Sub-module paths (relative to the backbone) that
            :meth:`freeze_early_layers` freezes: the published recipes' choice for this
            architecture.

    Shape:
        - Input: ``(B, 3, H, W)``
        - Output: ``(B, out_channels, H', W')``
    """

    def __init__(self, *layers: nn.Module, name: str, cut: str, out_channels: int, frozen: list[str]) -> None:
        super().__init__(*layers)
        self.name = name
        self.cut = cut
        self.out_channels = int(out_channels)
        self.frozen = list(frozen)

    def freeze_early_layers(self) -> list[str]:
        """Set ``requires_grad=False`` on the early layers listed in ``frozen``.

        This follows CosPlace and the VG benchmark: for ResNets everything before
        ``layer3`` (conv1, bn1, layer1, layer2); for VGG16 all but the last 5
        feature layers; for EfficientNets (CosPlace) the feature blocks before
        block 5. BatchNorm statistics are not frozen (neither recipe does).

        Returns:
            The frozen sub-module paths, relative to the backbone.
        """
        for path in self.frozen:
            self.get_submodule(path).requires_grad_(False)
        return list(self.frozen)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, cut={self.cut!r}, out_channels={self.out_channels}"


def freeze_early_layers(model: GeoLocalizationModel | Backbone) -> list[str]:
    """Freeze the early backbone layers the way CosPlace / the VG benchmark do.

    Args:
        model: A :class:`~vgloc.models.GeoLocalizationModel` or a :class:`Backbone`.

    Returns:
        The frozen children's indices within the backbone.
    """
    backbone = model if isinstance(model, Backbone) else getattr(model, "backbone", None)
    if not isinstance(backbone, Backbone):
        raise TypeError(f"expected a GeoLocalizationModel or a Backbone, got {type(model).__name__}")
    return backbone.freeze_early_layers()


def build_backbone(name: str, cut: str | None = None, pretrained: bool | str = False) -> Backbone:
    """Build a registered backbone.

    Args:
        name: Registry name (``"resnet18"``, ``"resnet50"``, ``"vgg16"``, ``"tiny"``, ...).
        cut: Output stage (``"conv4"``/``"conv5"``); ``None`` for the backbone's default.
        pretrained: ``True`` (or a torchvision weights tag such as ``"IMAGENET1K_V1"``)
            to load ImageNet weights; this downloads unless the file is cached.

    Returns:
        The backbone.

    Raises:
        UnknownNameError: Unknown backbone name.
        ValueError: The backbone has no such cut.
    """
    entry = BACKBONES.entry(name)
    channels: dict[str, int] = dict(entry.metadata["channels"])
    cut = cut or entry.metadata["default_cut"]
    if cut not in channels:
        raise ValueError(f"backbone {name!r} has no cut {cut!r}; available: {', '.join(sorted(channels))}")
    builder: Callable[[str, bool | str], Backbone] = entry.obj
    return builder(cut, pretrained)


# -- ResNets --------------------------------------------------------------------------
def _resnet(arch: str, cut: str, pretrained: bool | str) -> Backbone:
    # torchvision is imported where a network is built, not with the registry: importing it
    # costs ~2.4 s (it imports torch._dynamo), which a process running a cached ONNX export
    # never needs (vgloc.describers.net).
    import torchvision

    net = getattr(torchvision.models, arch)(weights=None)
    if pretrained:
        from vgloc.models.pretrained import load_torchvision_weights

        net.load_state_dict(load_torchvision_weights(arch, pretrained))
    children = list(net.children())
    layers = children[:-3] if cut == "conv4" else children[:-2]
    channels = BACKBONES.metadata(arch)["channels"][cut]
    # children: conv1, bn1, relu, maxpool, layer1, layer2 | layer3, layer4: freeze 6.
    frozen = [str(i) for i in range(6)]
    return Backbone(*layers, name=arch, cut=cut, out_channels=channels, frozen=frozen)


def _register_resnet(arch: str, conv4: int, conv5: int, params: str) -> None:
    def build(cut: str, pretrained: bool | str) -> Backbone:
        return _resnet(arch, cut, pretrained)

    build.__name__ = f"build_{arch}"
    BACKBONES.register(
        arch,
        build,
        channels={"conv4": conv4, "conv5": conv5},
        default_cut="conv5",
        stride={"conv4": 16, "conv5": 32},
        torchvision=arch,
        description=f"torchvision {arch} ({params} params); conv4 drops layer4 (VG benchmark)",
    )


_register_resnet("resnet18", 256, 512, "11.7M")
_register_resnet("resnet34", 256, 512, "21.8M")
_register_resnet("resnet50", 1024, 2048, "25.6M")
_register_resnet("resnet101", 1024, 2048, "44.5M")
_register_resnet("resnet152", 1024, 2048, "60.2M")


# -- VGG16 ----------------------------------------------------------------------------
@BACKBONES.register(
    "vgg16",
    channels={"conv5": 512},
    default_cut="conv5",
    stride={"conv5": 16},
    torchvision="vgg16",
    description="torchvision vgg16 features[:-2] (CosPlace / VG benchmark; no last ReLU)",
)
def _build_vgg16(cut: str, pretrained: bool | str) -> Backbone:
    import torchvision

    net = torchvision.models.vgg16(weights=None)
    if pretrained:
        from vgloc.models.pretrained import load_torchvision_weights

        net.load_state_dict(load_torchvision_weights("vgg16", pretrained))
    layers = list(net.features.children())[:-2]
    # Both recipes train only the last 5 feature layers (conv5_2, relu, conv5_3 + ...).
    frozen = [str(i) for i in range(len(layers) - 5)]
    return Backbone(*layers, name="vgg16", cut=cut, out_channels=512, frozen=frozen)


# -- EfficientNets --------------------------------------------------------------------------
def _efficientnet(arch: str, cut: str, pretrained: bool | str) -> Backbone:
    import torchvision

    net = getattr(torchvision.models, arch)(weights=None)
    if pretrained:
        from vgloc.models.pretrained import load_torchvision_weights

        net.load_state_dict(load_torchvision_weights(arch, pretrained))
    # children: features, avgpool, classifier -> one child, so keys are backbone.0.<block>...
    # (CosPlace's layout). CosPlace trains feature blocks 5 and later.
    channels = BACKBONES.metadata(arch)["channels"][cut]
    frozen = [f"0.{i}" for i in range(5)]
    layers = list(net.children())[:-2]
    return Backbone(*layers, name=arch, cut=cut, out_channels=channels, frozen=frozen)


def _register_efficientnet(arch: str, channels: int, params: str) -> None:
    def build(cut: str, pretrained: bool | str) -> Backbone:
        return _efficientnet(arch, cut, pretrained)

    build.__name__ = f"build_{arch}"
    BACKBONES.register(
        arch,
        build,
        channels={"conv5": channels},
        default_cut="conv5",
        stride={"conv5": 32},
        torchvision=arch,
        description=f"torchvision {arch} features ({params} params; CosPlace layout)",
    )


_register_efficientnet("efficientnet_b0", 1280, "5.3M")
# B1-B7: torchvision's compound-scaled variants with B0's layout (features = stem conv,
# 7 MBConv stages, final 1x1 conv), so CosPlace's freezing of blocks 0-4 applies unchanged.
_register_efficientnet("efficientnet_b1", 1280, "7.8M")
_register_efficientnet("efficientnet_b2", 1408, "9.1M")
_register_efficientnet("efficientnet_b3", 1536, "12.2M")
_register_efficientnet("efficientnet_b4", 1792, "19.3M")
_register_efficientnet("efficientnet_b5", 2048, "30.4M")
_register_efficientnet("efficientnet_b6", 2304, "43.0M")
_register_efficientnet("efficientnet_b7", 2560, "66.3M")
_register_efficientnet("efficientnet_v2_s", 1280, "21.5M")


# -- tiny (tests, smoke runs) ------------------------------------------------------------
@BACKBONES.register(
    "tiny",
    channels={"conv5": 32},
    default_cut="conv5",
    stride={"conv5": 8},
    description="3 conv-BN-ReLU blocks, 32 channels, stride 8; for tests (no pretrained weights)",
)
def _build_tiny(cut: str, pretrained: bool | str) -> Backbone:
    if pretrained:
        raise ValueError("backbone 'tiny' has no pretrained weights; use pretrained=False")

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [
            nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]

    layers = [*block(3, 16), *block(16, 32), *block(32, 32)]
    return Backbone(*layers, name="tiny", cut=cut, out_channels=32, frozen=["0", "1"])
