"""Pretrained weights: the ONLY module of vgloc that downloads anything.

Two sources:

- torchvision's ImageNet weights for backbones (``create_model(..., pretrained=True)``),
  fetched with torchvision's weights API into the torch hub cache.
- :data:`PUBLISHED_WEIGHTS`: trained VPR checkpoints released by the authors
  (CosPlace, EigenPlaces torch.hub release files), fetched into the same cache as
  ``<hub dir>/checkpoints/<file name>``, the place ``torch.hub`` itself uses.
- published models by name (:data:`vgloc.registry.PUBLISHED_MODELS`, which holds the
  ones above too): resolved and fetched by :mod:`vgloc.models.hub`, with the helpers
  of this module.

Offline, every entry point fails with :class:`WeightsDownloadError`, whose message
names the file, the URL or repository it tried, the cache path where a manually
downloaded file is picked up, and the ``--checkpoint FILE`` / ``weights=FILE``
alternative.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "PUBLISHED_WEIGHTS",
    "PublishedWeights",
    "WeightsDownloadError",
    "download_published",
    "hub_checkpoint_dir",
    "load_torchvision_weights",
    "published_for",
    "resolve_weights",
]


class WeightsDownloadError(RuntimeError):
    """Weights could not be downloaded (offline, blocked, or a server error)."""


@dataclass(frozen=True)
class PublishedWeights:
    """A released checkpoint that loads into a vgloc spec.

    Attributes:
        source: Who released it (``"cosplace"``, ``"eigenplaces"``).
        spec: The canonical vgloc spec it loads into.
        url: Download URL.
        descriptor_dim: Output descriptor size.
        description: One line (training data, paper).
    """

    source: str
    spec: str
    url: str
    descriptor_dim: int
    description: str

    @property
    def filename(self) -> str:
        """The file name in the hub cache (the URL's last component)."""
        return self.url.rsplit("/", 1)[-1]


_TORCHVISION_NAME = {"vgg16": "VGG16", "resnet18": "ResNet18", "resnet50": "ResNet50"}
_TORCHVISION_NAME.update({"resnet101": "ResNet101", "resnet152": "ResNet152"})
# (CosPlace's hubconf publishes no EfficientNet weights, so none are listed here.)

# Released dims per backbone, from each repository's hubconf.py (AVAILABLE_MODELS).
_COSPLACE_DIMS = {
    "vgg16": (64, 128, 256, 512),
    "resnet18": (32, 64, 128, 256, 512),
    "resnet50": (32, 64, 128, 256, 512, 1024, 2048),
    "resnet101": (32, 64, 128, 256, 512, 1024, 2048),
    "resnet152": (32, 64, 128, 256, 512, 1024, 2048),
}
_EIGENPLACES_DIMS = {
    "vgg16": (512,),
    "resnet18": (256, 512),
    "resnet50": (128, 256, 512, 1024, 2048),
    "resnet101": (128, 256, 512, 1024, 2048),
}
_RELEASES = {
    "cosplace": (
        "https://github.com/gmberton/CosPlace/releases/download/v1.0/{arch}_{dim}_cosplace.pth",
        _COSPLACE_DIMS,
        "CosPlace (Berton et al., CVPR 2022), trained on SF-XL",
    ),
    "eigenplaces": (
        "https://github.com/gmberton/EigenPlaces/releases/download/v1.0/{arch}_{dim}_eigenplaces.pth",
        _EIGENPLACES_DIMS,
        "EigenPlaces (Berton et al., ICCV 2023), trained on SF-XL",
    ),
}


def _build_table() -> dict[str, PublishedWeights]:
    table: dict[str, PublishedWeights] = {}
    for source, (pattern, dims, blurb) in _RELEASES.items():
        for backbone, dim_list in dims.items():
            for dim in dim_list:
                spec = f"{backbone}+gem+fc{dim}"
                url = pattern.format(arch=_TORCHVISION_NAME[backbone], dim=dim)
                table[f"{source}:{spec}"] = PublishedWeights(source, spec, url, dim, blurb)
    return table


PUBLISHED_WEIGHTS: Mapping[str, PublishedWeights] = _build_table()
"""``"<source>:<spec>"`` -> :class:`PublishedWeights` (e.g. ``"cosplace:resnet50+gem+fc2048"``)."""


def hub_checkpoint_dir() -> Path:
    """Where downloaded checkpoints live: ``<torch hub dir>/checkpoints`` (``$TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _offline_help(what: str, url: str, cached: Path, err: BaseException, *, model: bool) -> str:
    """The offline message: what failed, the URL, and where a local copy is accepted."""
    where = f"put it at {cached} (the torch hub cache; set TORCH_HOME to move it)"
    if model:  # a whole-model checkpoint can also be passed directly
        where = f"pass it as weights=PATH (create_model(spec, weights='{cached.name}')) or {where}"
    return (
        f"could not download {what} from {url} ({type(err).__name__}: {err}). "
        f"If this machine is offline, download that file elsewhere and {where}; "
        "it is then used without a download."
    )


def load_torchvision_weights(arch: str, tag: bool | str = True) -> dict[str, torch.Tensor]:
    """The ImageNet state dict of a torchvision classification model.

    Args:
        arch: torchvision builder name (``"resnet50"``, ``"vgg16"``).
        tag: ``True``/``"DEFAULT"`` for torchvision's recommended weights, or a tag
            such as ``"IMAGENET1K_V1"``.

    Returns:
        The full model's state dict (the caller cuts the network afterwards).

    Raises:
        ValueError: Unknown architecture or tag.
        WeightsDownloadError: The file is not cached and could not be downloaded.
    """
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(arch)
    except ValueError as err:
        raise ValueError(f"torchvision has no weights for {arch!r}") from err
    name = "DEFAULT" if tag is True else str(tag).upper()
    try:
        weights = enum[name]
    except KeyError:
        known = ", ".join(["DEFAULT", *enum.__members__])
        raise ValueError(f"unknown weights tag {tag!r} for {arch}; known: {known}") from None
    cached = hub_checkpoint_dir() / weights.url.rsplit("/", 1)[-1]
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except Exception as err:  # urllib, socket, hash and guard errors all end up here
        raise WeightsDownloadError(
            _offline_help(
                f"torchvision ImageNet weights {enum.__name__}.{weights.name}",
                weights.url,
                cached,
                err,
                model=False,
            )
        ) from err


def download_published(key: str) -> Path:
    """Return the local path of a published checkpoint, downloading it if needed.

    Args:
        key: A :data:`PUBLISHED_WEIGHTS` key (``"cosplace:resnet18+gem+fc512"``).

    Returns:
        ``<hub dir>/checkpoints/<file name>``.

    Raises:
        KeyError: Unknown key.
        WeightsDownloadError: Not cached and could not be downloaded.
    """
    if key not in PUBLISHED_WEIGHTS:
        raise KeyError(f"unknown published weights {key!r}; see vgloc.models.list_models('*:*')")
    pw = PUBLISHED_WEIGHTS[key]
    dst = hub_checkpoint_dir() / pw.filename
    if dst.is_file():
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        # download_url_to_file writes a temporary file and renames it: never a partial dst.
        torch.hub.download_url_to_file(pw.url, os.fspath(dst), progress=True)
    except Exception as err:
        raise WeightsDownloadError(_offline_help(f"{key} weights", pw.url, dst, err, model=True)) from err
    return dst


def resolve_weights(weights: str | os.PathLike[str], spec: str) -> Path:
    """Turn a ``weights=`` argument into a local file.

    Args:
        weights: A file path; a source name (``"cosplace"``, ``"eigenplaces"``), which
            selects that source's release for ``spec``; or a full
            :data:`PUBLISHED_WEIGHTS` key.
        spec: The canonical spec of the model the weights are for.

    Returns:
        The path of an existing file.

    Raises:
        FileNotFoundError: A path that does not exist.
        ValueError: A source without a release for ``spec``, or a key for another spec.
        WeightsDownloadError: A release could not be downloaded.
    """
    if isinstance(weights, os.PathLike):
        return _existing(Path(weights))
    if not isinstance(weights, str) or not weights:
        raise TypeError(f"weights must be a path or a published name, got {weights!r}")
    key: str | None = None
    if weights.lower() in _RELEASES:
        source = weights.lower()
        key = f"{source}:{spec}"
        if key not in PUBLISHED_WEIGHTS:
            avail = sorted(pw.spec for pw in PUBLISHED_WEIGHTS.values() if pw.source == source)
            raise ValueError(
                f"{source} released no weights for {spec!r}; available specs: {', '.join(avail)}"
            )
    elif ":" in weights and weights.split(":", 1)[0].lower() in _RELEASES:
        from vgloc.models.spec import ModelSpec

        source, _, other = weights.partition(":")
        key = f"{source.lower()}:{ModelSpec.parse(other)}"
        if key not in PUBLISHED_WEIGHTS:
            raise ValueError(f"unknown published weights {weights!r}; see list_models('*:*')")
        if PUBLISHED_WEIGHTS[key].spec != spec:
            raise ValueError(f"weights {weights!r} are for {PUBLISHED_WEIGHTS[key].spec!r}, not for {spec!r}")
    if key is not None:
        return download_published(key)
    return _existing(Path(weights).expanduser())


def _existing(path: Path) -> Path:
    if not path.is_file():
        sources = ", ".join(sorted(_RELEASES))
        raise FileNotFoundError(
            f"weights file not found: {path} (weights= takes a checkpoint path or a published "
            f"source: {sources})"
        )
    return path


def published_for(spec: str) -> list[PublishedWeights]:
    """Published weight sets that load into ``spec`` (canonical form)."""
    return [pw for pw in PUBLISHED_WEIGHTS.values() if pw.spec == spec]
