"""The two-branch cross-view network, its orientation head and its checkpoint file.

A street-view branch and an aerial branch, each any registered spec
(``backbone+aggregator[+head]``, see :func:`vgloc.models.create_model`), with three ways
to share weights (Vo & Hays 2016 compare them):

- ``separate``: two networks;
- ``shared``: one network for both views (the specs must be equal);
- ``shared_last``: separate backbones, one aggregator and head (the specs must agree
  from the aggregator on, and the backbones must give the same channels).

The network kind is ``CrossViewConfig.arch``, a name of
:data:`vgloc.registry.CROSSVIEW_NETWORKS`: ``embedding`` (this module: two branches whose
L2-normalised outputs are compared by distance) or the study's accurate-but-slow pair
classifiers ``classification`` and ``hybrid`` (:mod:`vgloc.crossview.pairnet`).
:func:`build_crossview_net` builds any of them and :func:`load_any_crossview` reads any
checkpoint; :func:`load_crossview` reads embedding networks only (what an aerial index needs).

The optional orientation head (Vo & Hays 2016, section 5) reads the concatenated
embeddings of a street view and a tile and predicts their relative rotation as a unit
``(cos, sin)`` vector; training it alongside the matching loss also helped localization
in the study.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vgloc._version import __version__
from vgloc.io import atomic_path
from vgloc.models import GeoLocalizationModel, ModelSpec
from vgloc.registry import CROSSVIEW_NETWORKS

__all__ = [
    "FORMAT",
    "SHARING",
    "CrossViewConfig",
    "CrossViewModule",
    "CrossViewNet",
    "OrientationHead",
    "build_crossview_net",
    "load_any_crossview",
    "load_crossview",
    "save_crossview",
]

FORMAT = "vgloc-crossview"
FORMAT_VERSION = 1
SHARING = ("separate", "shared", "shared_last")


@dataclass(frozen=True)
class CrossViewConfig:
    """What it takes to rebuild a :class:`CrossViewNet` and feed it (stored in checkpoints).

    Attributes:
        ground_spec: Street-view branch spec (``tiny+gem+fc64``).
        aerial_spec: Aerial branch spec (default: the same).
        sharing: ``separate``, ``shared`` or ``shared_last``.
        orientation_head: Build the orientation-regression head.
        ground_size: ``(H, W)`` of street views.
        aerial_size: Side of tiles after rotation and centre crop.
        rotation_range: Degrees of random tile rotation at training time.
        arch: Network kind, a name of :data:`vgloc.registry.CROSSVIEW_NETWORKS`
            (``embedding``, ``classification``, ``hybrid``).
    """

    ground_spec: str
    aerial_spec: str = ""
    sharing: str = "separate"
    orientation_head: bool = False
    ground_size: tuple[int, int] = (64, 96)
    aerial_size: int = 64
    rotation_range: float = 0.0
    arch: str = "embedding"

    def __post_init__(self) -> None:
        if self.sharing not in SHARING:
            raise ValueError(f"sharing must be one of {SHARING}, got {self.sharing!r}")
        if self.arch != "embedding" and self.orientation_head:
            raise ValueError(f"the orientation head needs arch='embedding' (not {self.arch!r})")
        if not self.aerial_spec:
            object.__setattr__(self, "aerial_spec", self.ground_spec)
        object.__setattr__(self, "ground_size", tuple(int(v) for v in self.ground_size))


class OrientationHead(nn.Module):
    """``[g, a] -> (cos, sin)`` of the street view's heading relative to the tile's up.

    Shape:
        - Input: ``g (B, D)``, ``a (B, D)``
        - Output: ``(B, 2)``, unit rows
    """

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2))

    def forward(self, g: Tensor, a: Tensor) -> Tensor:
        return F.normalize(self.mlp(torch.cat([g, a], 1)), dim=1)


class CrossViewModule(nn.Module):
    """Base of every cross-view network: built from, and saved with, a :class:`CrossViewConfig`."""

    config: CrossViewConfig


class CrossViewNet(CrossViewModule):
    """Street-view and aerial branches (+ optional orientation head), from a :class:`CrossViewConfig`.

    Shape:
        - encode_ground: ``(B, 3, H, W) -> (B, D)``, L2-normalised
        - encode_aerial: ``(B, 3, s, s) -> (B, D)``, L2-normalised
    """

    def __init__(self, config: CrossViewConfig) -> None:
        super().__init__()
        self.config = config
        self.ground = GeoLocalizationModel(config.ground_spec)
        if config.sharing == "shared":
            if ModelSpec.parse(config.aerial_spec) != ModelSpec.parse(config.ground_spec):
                raise ValueError("sharing='shared' needs the same spec for both branches")
            self.aerial = self.ground
        else:
            self.aerial = GeoLocalizationModel(config.aerial_spec)
        if config.sharing == "shared_last":
            gs, as_ = ModelSpec.parse(config.ground_spec), ModelSpec.parse(config.aerial_spec)
            same = (gs.aggregator, gs.aggregator_arg, gs.head, gs.head_arg) == (
                as_.aggregator,
                as_.aggregator_arg,
                as_.head,
                as_.head_arg,
            )
            if not same or self.ground.backbone.out_channels != self.aerial.backbone.out_channels:
                raise ValueError(
                    "sharing='shared_last' needs the same aggregator and head in both specs and "
                    f"backbones with the same channels ({config.ground_spec!r} vs {config.aerial_spec!r})"
                )
            self.aerial.aggregator = self.ground.aggregator
            self.aerial.head = self.ground.head
        if self.ground.descriptor_dim != self.aerial.descriptor_dim:
            raise ValueError(
                f"the branches give {self.ground.descriptor_dim}- and {self.aerial.descriptor_dim}-D "
                "descriptors; they must match"
            )
        self.dim = int(self.ground.descriptor_dim)
        self.orientation = OrientationHead(self.dim) if config.orientation_head else None

    def encode_ground(self, x: Tensor) -> Tensor:
        """Street-view embeddings; see the class docstring for shapes."""
        return self.ground(x)

    def encode_aerial(self, x: Tensor) -> Tensor:
        """Aerial-tile embeddings; see the class docstring for shapes."""
        return self.aerial(x)


CROSSVIEW_NETWORKS.register(
    "embedding", CrossViewNet, description="two branches, embeddings compared by distance (indexable)"
)


def build_crossview_net(config: CrossViewConfig) -> CrossViewModule:
    """The network of ``config.arch`` (:data:`vgloc.registry.CROSSVIEW_NETWORKS`), freshly initialised."""
    net: CrossViewModule = CROSSVIEW_NETWORKS.get(config.arch)(config)
    return net


def save_crossview(
    net: CrossViewModule, path: str | os.PathLike[str], extra: dict[str, Any] | None = None
) -> Path:
    """Write ``net`` atomically with its configuration and metadata (plain types only)."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "vgloc_version": __version__,
        "config": {**asdict(net.config), "ground_size": list(net.config.ground_size)},
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "extra": dict(extra or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_any_crossview(path: str | os.PathLike[str]) -> tuple[CrossViewModule, dict[str, Any]]:
    """Rebuild any network saved by :func:`save_crossview` (``torch.load(weights_only=True)``).

    Returns:
        ``(net in eval mode, extra metadata)``; the net's kind follows its ``config.arch``.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Not a cross-view checkpoint, or one from a newer format.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint {path}")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError(f"{path} is not a vgloc cross-view checkpoint (written by `vgloc crossview train`)")
    if not isinstance(obj.get("format_version"), int) or obj["format_version"] > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {obj.get('format_version')!r}; this vgloc reads {FORMAT_VERSION}"
        )
    cfg = dict(obj["config"])
    cfg["ground_size"] = tuple(cfg["ground_size"])
    net = build_crossview_net(CrossViewConfig(**cfg))
    net.load_state_dict(obj["state_dict"], strict=True)
    return net.eval(), dict(obj.get("extra") or {})


def load_crossview(path: str | os.PathLike[str]) -> tuple[CrossViewNet, dict[str, Any]]:
    """Rebuild an embedding network saved by :func:`save_crossview`.

    Returns:
        ``(net in eval mode, extra metadata)``.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Not a cross-view checkpoint, one from a newer format, or a pair
            classifier (it scores pairs and has no embeddings to index).
    """
    net, extra = load_any_crossview(path)
    if not isinstance(net, CrossViewNet):
        raise ValueError(
            f"{path} is a {net.config.arch!r} pair classifier: it scores (photo, tile) pairs and has no "
            "embeddings to index; evaluate it with `vgloc crossview eval`, or index an embedding network"
        )
    return net, extra
