"""Building models: ``create_model`` (spec + optional weights) and ``list_models``.

Kept apart from :mod:`vgloc.models.model` because it needs the checkpoint loader and
the published-weight table, which themselves build on the model class.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from vgloc.models.checkpoints import load_state_dict_compat
from vgloc.models.model import GeoLocalizationModel
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
        spec: ``backbone[.cut]+aggregator[+head]``, e.g. ``"resnet18+gem+fc512"``.
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
            mis-shaped keys are listed).
    """
    model = GeoLocalizationModel(spec, pretrained=pretrained if weights is None else False)
    if weights is not None:
        from vgloc.models.pretrained import resolve_weights

        path = resolve_weights(weights, model.spec)
        load_state_dict_compat(model, path, strict=True)
    return model


@dataclass(frozen=True)
class ModelRow:
    """One row of :func:`list_models` (``vars(row)`` / ``asdict(row)`` give a dict).

    Attributes:
        kind: ``"backbone"``, ``"aggregator"``, ``"head"`` or ``"weights"``.
        name: What to write in a spec (``"resnet50.conv4"``, ``"netvlad{clusters}"``)
            or, for weights, ``"<source>:<spec>"``.
        dim: Output channels (backbones), output size formula (aggregators, heads)
            or descriptor size (weights).
        description: One line.
    """

    kind: str
    name: str
    dim: str
    description: str


def list_models(pattern: str = "*") -> list[ModelRow]:
    """List the building blocks of model specs and the published weights.

    Args:
        pattern: Shell-style pattern on the row name (case-insensitive), e.g.
            ``"resnet*"`` or ``"cosplace:*"``.

    Returns:
        Rows sorted by kind (backbones, aggregators, heads, weights) then name.
    """
    import fnmatch

    from vgloc.models.pretrained import PUBLISHED_WEIGHTS

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
    for key, pw in sorted(PUBLISHED_WEIGHTS.items()):
        rows.append(ModelRow("weights", key, str(pw.descriptor_dim), pw.description))
    pat = pattern.lower()
    return [r for r in rows if fnmatch.fnmatchcase(r.name.lower(), pat)]
