"""The one place that goes from a spec (+ weights) to a :class:`Describer`.

Describer kinds register themselves in :data:`vgloc.registry.DESCRIBERS` with three
class methods: ``claims(spec) -> bool``, ``from_spec(spec, checkpoint, pretrained=...)``
and ``load_from_index(index_dir, state, spec)``. The resolver asks each registered
kind whether it claims a spec; the kind registered with ``fallback=True`` (the
torch network) takes every spec nobody else claims. No other module switches on
describer kinds: new kinds (multi-scale, ensembles, soups, cross-view branches) are
new files plus a registration.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgloc.describers.base import Describer
from vgloc.registry import DESCRIBERS

if TYPE_CHECKING:
    from vgloc.index import GeoIndex

__all__ = ["describer_for_index", "describer_kind_for_spec", "resolve_describer"]


def describer_kind_for_spec(spec: str) -> Any:
    """The registered describer class that builds ``spec`` (see :meth:`Registry.claimant`)."""
    return DESCRIBERS.claimant(spec)


def resolve_describer(
    model: Any,
    checkpoint: str | Path | None = None,
    *,
    pretrained: bool = False,
) -> Describer:
    """A describer from a spec string, a describer, or a torch network.

    Args:
        model: a spec (``"resnet18+gem+fc512"``, ``"rootsift+vlad64"``), a published
            model's name (``"megaloc"``: ``checkpoint`` is then a local copy of its file), a
            :class:`Describer` (returned as is), or a network with ``spec`` and
            ``descriptor_dim`` attributes (wrapped; ``checkpoint`` is loaded into it).
        checkpoint: weights: a vgloc model file (its stored spec must agree) or an
            authors' state dict for the architecture ``model`` names.
        pretrained: ImageNet backbone weights (network or local cache).

    Returns:
        The describer (networks in eval mode).
    """
    if isinstance(model, Describer):
        if checkpoint is not None:
            raise ValueError(
                f"a ready {model.kind} describer was given: checkpoint={checkpoint} does not apply"
            )
        return model
    if isinstance(model, str):
        if not model.strip():
            raise ValueError("empty model spec")
        return describer_kind_for_spec(model).from_spec(model, checkpoint, pretrained=pretrained)
    # An object: the classical model of vgloc.models, or a torch network.
    from vgloc.describers.classical import ClassicalDescriber
    from vgloc.models.classical import ClassicalDescriber as ClassicalModel

    if isinstance(model, ClassicalModel):
        if checkpoint is not None:
            raise ValueError("checkpoint does not apply to a ready classical descriptor")
        return ClassicalDescriber(model)
    from torch import nn

    if isinstance(model, nn.Module):
        from vgloc.describers.net import NetDescriber
        from vgloc.models import load_state_dict_compat

        if checkpoint is not None:
            load_state_dict_compat(model, checkpoint)  # type: ignore[arg-type]
        return NetDescriber(model, checkpoint=checkpoint, pretrained=pretrained)
    raise TypeError(f"cannot describe images with a {type(model).__name__}; pass a model spec or a Describer")


def describer_for_index(
    index: GeoIndex,
    model: Any = None,
    checkpoint: str | Path | None = None,
) -> Describer:
    """The describer that describes queries for ``index``, refusing mismatches.

    Without ``model``/``checkpoint`` it is the one the index recorded: the in-memory
    describer of a freshly built index, the model file stored inside the index, or
    the checkpoint it names (checked by hash). With them, the given network must have
    the index's spec and dimension. Either way ``image_size="auto"`` then means the
    index's recorded image size.
    """
    if model is None and checkpoint is None:
        if isinstance(index.model, Describer):
            describer = index.model
        else:
            state, kind = _recorded_state(index)
            describer = kind.load_from_index(
                None if index.path is None else Path(index.path), state, index.metadata.model_spec
            )
    else:
        describer = resolve_describer(model if model is not None else index.metadata.model_spec, checkpoint)
    index.check_model(describer.spec, describer.descriptor_dim)
    # Queries are described at the database's size unless the caller gives another one.
    describer.default_image_size = index.metadata.image_size
    return describer


def _recorded_state(index: GeoIndex) -> tuple[dict[str, Any], Any]:
    extra = index.metadata.extra
    state = extra.get("describer")
    if isinstance(state, dict) and state.get("kind"):
        return state, DESCRIBERS.get(state["kind"])
    # Indexes written before describers were recorded keep these keys at the top level.
    legacy: dict[str, Any] = {
        k: extra[k] for k in ("model_file", "checkpoint", "checkpoint_sha256", "pretrained") if k in extra
    }
    return legacy, describer_kind_for_spec(index.metadata.model_spec)
