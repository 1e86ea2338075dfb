"""Building models: ``create_model`` (spec + optional weights) and ``list_models``.

Kept apart from :mod:`vgloc.models.model` because it needs the checkpoint loader and
the published-weight table, which themselves build on the model class.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from vgloc.models.checkpoints import load_state_dict_compat
from vgloc.models.model import GeoLocalizationModel
from vgloc.models.published import IMAGENET_MEAN, IMAGENET_STD, PublishedModel
from vgloc.models.spec import ModelSpec
from vgloc.registry import AGGREGATORS, BACKBONES, HEADS

__all__ = ["ModelRow", "create_model", "list_models"]


def create_model(
    spec: str | ModelSpec,
    pretrained: bool | str = False,
    weights: str | os.PathLike[str] | None = None,
) -> GeoLocalizationModel:
    """Build a model from a spec string, optionally with weights.

    Args:
        spec: ``backbone[.cut]+aggregator[+head]``, e.g. ``"resnet18+gem+fc512"``, or the
            name of a published model (``"megaloc"``, ``"cosplace:resnet50+gem+fc2048"``,
            see :data:`vgloc.registry.PUBLISHED_MODELS`): its architecture with its
            published weights, from ``weights`` (a local copy of the authors' file) or,
            when ``weights`` is None, fetched into the torch hub cache. The model's
            ``published`` attribute then holds the entry (evaluation preprocessing).
        pretrained: ImageNet weights for the backbone from torchvision (``True`` or a
            weights tag such as ``"IMAGENET1K_V1"``; downloads once into the torch hub
            cache). Ignored when ``weights`` is given, since strict loading overwrites
            every parameter.
        weights: A checkpoint file (authors' state dict, ``{"model_state_dict": ...}``,
            ``{"state_dict": ...}``, ``module.``-prefixed, ``.safetensors``, or a vgloc
            model file), or the name of a published weight set (``"cosplace"``,
            ``"eigenplaces"``, see :data:`vgloc.models.pretrained.PUBLISHED_WEIGHTS`),
            which is downloaded into the torch hub cache unless already there. Loading
            is strict.

    Returns:
        The model, in train mode (call ``.eval()`` for inference).

    Raises:
        UnknownNameError: Unknown part in ``spec``.
        FileNotFoundError: ``weights`` is a path that does not exist.
        ValueError: ``weights`` does not fit the architecture (missing, unexpected or
            mis-shaped keys are listed), or a downloaded file's SHA-256 differs.
        WeightsDownloadError: Published weights are not cached and cannot be fetched.
    """
    from vgloc.models.hub import find_published, load_published, published_file
    from vgloc.models.pretrained import resolve_weights

    entry = find_published(spec) if isinstance(spec, str) else None
    if entry is not None:
        # A published name: its architecture, with its weights (a local copy, or fetched).
        model = GeoLocalizationModel(entry.spec)
        load_published(model, entry, published_file(entry, weights))
        _mark_published(model, entry)
        return model
    model = GeoLocalizationModel(spec, pretrained=pretrained if weights is None else False)
    named = find_published(weights) if isinstance(weights, str) else None
    if named is not None and ":" not in named.name:
        # weights="megaloc" for the spec megaloc loads into (the cosplace sources keep their own rule).
        if named.spec != model.spec:
            raise ValueError(f"weights {named.name!r} are for {named.spec!r}, not for {model.spec!r}")
        load_published(model, named, published_file(named))
        _mark_published(model, named)
    elif weights is not None:
        path = resolve_weights(weights, model.spec)
        pub = find_published(str(weights)) if isinstance(weights, str) else None
        load_state_dict_compat(model, path, strict=True)
        if pub is not None:
            _mark_published(model, pub)
    return model


def _mark_published(model: GeoLocalizationModel, entry: PublishedModel) -> None:
    """Attach the published entry (its evaluation preprocessing) as ``model.published``."""
    # A plain attribute: nn.Module keeps non-tensor attributes in __dict__ (typed there as
    # Tensor | Module by torch's stubs, hence no attribute assignment).
    model.__dict__["published"] = entry


@dataclass(frozen=True)
class ModelRow:
    """One row of :func:`list_models` (``vars(row)`` / ``asdict(row)`` give a dict).

    Attributes:
        kind: ``"backbone"``, ``"aggregator"``, ``"head"`` or ``"weights"``.
        name: What to write in a spec (``"resnet50.conv4"``, ``"netvlad{clusters}"``)
            or, for weights, the published name (``"megaloc"``,
            ``"cosplace:resnet50+gem+fc2048"``), which ``--model`` takes.
        dim: Output channels (backbones), output size formula (aggregators, heads)
            or descriptor size (weights).
        description: One line.
        spec: For weights, the architecture they load into.
        eval_size: For weights, the authors' evaluation input (``"322x322"``, ``"native"``).
        normalize: For weights, the normalisation (``"imagenet"`` or ``"mean=...,std=..."``).
        source: For weights, where they come from (URL or torch.hub repository).
    """

    kind: str
    name: str
    dim: str
    description: str
    spec: str = ""
    eval_size: str = ""
    normalize: str = ""
    source: str = ""


def list_models(pattern: str = "*") -> list[ModelRow]:
    """List the building blocks of model specs and the published weights.

    Args:
        pattern: Shell-style pattern on the row name (case-insensitive), e.g.
            ``"resnet*"`` or ``"cosplace:*"``.

    Returns:
        Rows sorted by kind (backbones, aggregators, heads, weights) then name.
    """
    import fnmatch

    from vgloc.models.hub import published_models

    rows: list[ModelRow] = []
    for name in BACKBONES.names():
        entry = BACKBONES.entry(name)
        for cut, ch in sorted(entry.metadata["channels"].items(), reverse=True):
            shown = name if cut == entry.metadata["default_cut"] else f"{name}.{cut}"
            rows.append(ModelRow("backbone", shown, str(ch), entry.description))
    for kind, reg in (("aggregator", AGGREGATORS), ("head", HEADS)):
        for name in reg.names():
            meta = reg.metadata(name)
            shown = f"{name}{{{meta['arg']}}}" if "arg" in meta else name
            rows.append(ModelRow(kind, shown, str(meta.get("dim", "")), str(meta["description"])))
    for pm in published_models():
        pre = pm.preprocessing
        size = "native" if pre.image_size is None else f"{pre.image_size[0]}x{pre.image_size[1]}"
        norm = (
            "imagenet"
            if (pre.mean, pre.std) == (IMAGENET_MEAN, IMAGENET_STD)
            else f"mean={pre.mean},std={pre.std}"
        )
        where = pm.url or (f"torch.hub {pm.hub_repo}" if pm.hub_repo else "local file only")
        text = pm.description or pm.source
        rows.append(ModelRow("weights", pm.name, str(pm.descriptor_dim), text, pm.spec, size, norm, where))
    pat = pattern.lower()
    return [r for r in rows if fnmatch.fnmatchcase(r.name.lower(), pat)]
