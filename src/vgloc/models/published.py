"""Published models by name: what a released checkpoint is, and how it loads into vgloc.

A *published model* is a trained network released by its authors (``megaloc``,
``salad``, ``boq-dinov2``, ``boq-resnet50``, ``mixvpr``, ``cricavpr``, ...). vgloc does
not copy the authors' classes: each one is a composition of registered parts (a
backbone, an aggregator, a head: an ordinary spec such as ``dinov2_vitb14+salad``),
so training, saving, exporting and every command work on it unchanged. What this
module adds is the *table* that says, for each name:

- the vgloc spec its weights load into;
- how the authors' state-dict keys map onto that spec's keys (``convert_keys``);
- the evaluation preprocessing the authors use (resize, normalisation), applied
  automatically wherever the model describes images;
- where the weights come from online (release file / Hugging Face file / torch.hub
  repo, with its SHA-256 when published) and what the file is called, so that
  offline the error can say exactly where to put a local copy.

Entries are registered in :data:`vgloc.registry.PUBLISHED_MODELS` by the module that
implements the architecture (e.g. ``vgloc.models.salad`` registers ``salad``), with
``PUBLISHED_MODELS.register(name, PublishedModel(...), description=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "KeyConverter",
    "Preprocessing",
    "PublishedModel",
    "identity_keys",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

KeyConverter = Callable[[Mapping[str, Tensor]], dict[str, Tensor]]
"""Authors' state dict (container and ``module.`` prefix already removed) -> vgloc keys."""


def identity_keys(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The converter for checkpoints already in vgloc's key layout."""
    return dict(sd)


@dataclass(frozen=True)
class Preprocessing:
    """How the authors feed images to the network at evaluation time.

    Attributes:
        image_size: ``(H, W)`` every image is resized to, or ``None`` for native size.
        mean: Per-channel mean of the normalisation (RGB, in [0, 1] units).
        std: Per-channel standard deviation.
        multiple_of: Input sides must be multiples of this (14 for DINOv2 patches); a
            resize to ``image_size`` must respect it.
    """

    image_size: tuple[int, int] | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    multiple_of: int = 1


@dataclass(frozen=True)
class PublishedModel:
    """A released checkpoint, by name.

    Attributes:
        name: The user-facing name (``"megaloc"``), what ``--model`` takes.
        spec: The vgloc spec the weights load into (``"dinov2_vitb14+megaloc"``).
        descriptor_dim: Length of the output descriptor.
        preprocessing: The authors' evaluation preprocessing.
        source: Paper and repository, one line (cited in ``vgloc models``).
        filename: The file name the weights are stored under in the hub cache
            (``<torch hub dir>/checkpoints/<filename>``), where an offline user puts a
            manually downloaded copy.
        url: Direct download URL of the published file, if there is one.
        sha256: Its published SHA-256 (verified after download), if published.
        hub_repo: ``owner/repo`` for ``torch.hub.load``, when the authors publish through
            torch.hub instead of a plain file (their hubconf builds the model, and vgloc
            takes its ``state_dict()``). Write ``owner/repo:entrypoint`` to name the
            hubconf function (default: the repository's only entrypoint).
        hub_kwargs: Keyword arguments of that entrypoint, as ``(name, value)`` pairs
            (e.g. ``(("backbone_name", "dinov2"), ("output_dim", 12288))`` for BoQ).
        convert_keys: Authors' keys -> the spec's keys.
        batch_dependent: ``True`` when the authors' descriptors depend on the other
            images of the batch (CricaVPR's cross-image encoder).
        description: One line for listings.
    """

    name: str
    spec: str
    descriptor_dim: int
    preprocessing: Preprocessing
    source: str
    filename: str
    url: str | None = None
    sha256: str | None = None
    hub_repo: str | None = None
    hub_kwargs: tuple[tuple[str, Any], ...] = ()
    convert_keys: KeyConverter = field(default=identity_keys)
    batch_dependent: bool = False
    description: str = ""
