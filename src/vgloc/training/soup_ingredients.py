"""Soup ingredients: read any model file ``vgloc eval --checkpoint`` takes, and check they match.

An ingredient is a vgloc model file (``best_model.pt``, the ``snapshots`` add-on's
``snapshots/epoch_001.pt`` ...), a training checkpoint (``last.pt``, ``best.pt``: its
``model`` entry), or, given the model spec, an authors' state dict (read exactly as
``vgloc eval --model SPEC --checkpoint FILE`` reads it). Files are read with
``weights_only=True`` (:func:`vgloc.models.checkpoints.read_weights_file`).
:func:`inspect_ingredients` reads every file once and refuses, before anything is
averaged or evaluated, ingredients whose spec, state-dict keys, shapes or dtypes differ
from the first's, naming the first difference. See :mod:`vgloc.training.soup`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

__all__ = [
    "Ingredient",
    "SoupMismatchError",
    "ingredient_weights",
    "inspect_ingredients",
    "load_ingredient",
]

log = logging.getLogger(__name__)


class SoupMismatchError(ValueError):
    """The ingredients of a soup do not share one architecture."""


@dataclass(frozen=True)
class Ingredient:
    """One model file of a soup, as inspected (its weights are read again when needed).

    Attributes:
        path: The file.
        spec: Its model spec (``"resnet18+gem+fc512"``).
        kind: ``"model"`` (vgloc model file), ``"training"`` (training checkpoint) or
            ``"state_dict"`` (an authors' file, read for the spec given).
        sha256: Hex SHA-256 of the file.
        signature: state-dict key -> ``(shape, dtype name)``, in the file's key order.
        published: The published model name whose preprocessing applies, if any.
    """

    path: Path
    spec: str
    kind: str
    sha256: str
    signature: dict[str, tuple[tuple[int, ...], str]] = field(repr=False)
    published: str | None = None


def _signature(sd: Mapping[str, Tensor]) -> dict[str, tuple[tuple[int, ...], str]]:
    return {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in sd.items()}


def _read(path: Path, spec: str | None) -> tuple[str, str, dict[str, Tensor], str | None]:
    """``(spec, kind, state dict, published name)`` of one ingredient file."""
    from vgloc.models.checkpoints import FORMAT, FORMAT_VERSION, extract_state_dict, read_weights_file
    from vgloc.training.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION

    obj = read_weights_file(path)  # weights_only=True (numpy arrays/scalars allowed)
    fmt = obj.get("format") if isinstance(obj, Mapping) else None
    # format -> (newest version read, spec key, state-dict key, ingredient kind)
    readable = {
        FORMAT: (FORMAT_VERSION, "spec", "state_dict", "model"),
        CHECKPOINT_FORMAT: (CHECKPOINT_VERSION, "model_spec", "model", "training"),
    }
    if isinstance(obj, Mapping) and fmt in readable:
        newest, spec_key, sd_key, kind = readable[fmt]
        version = obj.get("format_version")
        if not isinstance(version, int) or not 1 <= version <= newest:
            raise ValueError(
                f"{path} has {fmt} format_version {version!r} (vgloc {obj.get('vgloc_version', '?')}); "
                f"this vgloc reads up to {newest}: upgrade vgloc"
            )
        if not isinstance(obj.get(spec_key), str) or not isinstance(obj.get(sd_key), Mapping):
            raise ValueError(f"{path} is a damaged {fmt} file: no {spec_key!r} or {sd_key!r}")
        stored = str(obj[spec_key])
        published = _check_spec(path, spec, stored)
        return stored, kind, extract_state_dict({"model": obj[sd_key]}), published
    if not spec:
        raise ValueError(
            f"{path} is neither a vgloc model file nor a training checkpoint: name its architecture "
            "with --model SPEC (an authors' state dict)"
        )
    # An authors' file: exactly the loading `vgloc eval --model SPEC --checkpoint FILE` does.
    from vgloc.describers import resolve_describer

    net = resolve_describer(spec, path)
    model = getattr(net, "model", None)
    if model is None:
        raise ValueError(f"--model {spec} is not a network; only networks can be souped")
    published = getattr(getattr(net, "published", None), "name", None)
    return str(model.spec), "state_dict", {k: v.detach() for k, v in model.state_dict().items()}, published


def _check_spec(path: Path, asked: str | None, stored: str) -> str | None:
    """Refuse ``--model`` (a spec or a published name) naming another architecture than the file's;
    return the published name, whose preprocessing then scores the soup."""
    if not asked:
        return None
    from vgloc.models import ModelSpec
    from vgloc.models.hub import find_published

    entry = find_published(asked)
    wanted = str(ModelSpec.parse(entry.spec if entry is not None else asked))
    if wanted != stored:
        raise SoupMismatchError(
            f"{path} holds a {stored} model, but --model {asked} ({wanted}) was asked for"
        )
    return None if entry is None else str(entry.name)


def load_ingredient(
    path: str | os.PathLike[str], spec: str | None = None
) -> tuple[Ingredient, dict[str, Tensor]]:
    """Read one ingredient file.

    Args:
        path: A vgloc model file, a training checkpoint, or (with ``spec``) an authors'
            state dict.
        spec: The model spec or published name; needed for authors' files, checked
            against the file's own spec otherwise.

    Returns:
        ``(ingredient, state dict)``; tensors on the CPU.
    """
    from vgloc.describers.net import sha256_file

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"soup ingredient not found: {p}")
    model_spec, kind, sd, published = _read(p, spec)
    ingredient = Ingredient(p, model_spec, kind, sha256_file(p), _signature(sd), published)
    return ingredient, sd


def _first_difference(a: Ingredient, b: Ingredient) -> str | None:
    if a.spec != b.spec:
        return f"spec {b.spec!r} vs {a.spec!r}"
    for key, (shape, dtype) in a.signature.items():
        if key not in b.signature:
            return f"key {key!r} is missing"
        other_shape, other_dtype = b.signature[key]
        if other_shape != shape:
            return f"{key!r} has shape {other_shape} vs {shape}"
        if other_dtype != dtype:
            return f"{key!r} has dtype {other_dtype} vs {dtype}"
    extra = [k for k in b.signature if k not in a.signature]
    return f"unexpected key {extra[0]!r}" if extra else None


def inspect_ingredients(paths: Sequence[str | os.PathLike[str]], spec: str | None = None) -> list[Ingredient]:
    """Read every ingredient once and check that they share one architecture.

    Args:
        paths: Two or more model files.
        spec: See :func:`load_ingredient`.

    Returns:
        The ingredients, in the order given.

    Raises:
        ValueError: Fewer than two files.
        SoupMismatchError: An ingredient differs from the first (spec, a key, a shape or
            a dtype); the message names the first difference.
    """
    if len(paths) < 2:
        raise ValueError(f"a soup needs at least 2 models, got {len(paths)}")
    ingredients = [load_ingredient(p, spec)[0] for p in paths]
    first = ingredients[0]
    for other in ingredients[1:]:
        diff = _first_difference(first, other)
        if diff is not None:
            raise SoupMismatchError(
                f"soup ingredients must share one architecture: {other.path} differs from {first.path}: {diff}"
            )
    seen: dict[str, Path] = {}
    for ing in ingredients:
        if ing.sha256 in seen:
            log.warning(
                "%s has the same content as %s: it counts twice in the soup", ing.path, seen[ing.sha256]
            )
        seen.setdefault(ing.sha256, ing.path)
    return ingredients


def ingredient_weights(ingredient: Ingredient, spec: str | None) -> dict[str, Tensor]:
    """The ingredient's state dict, read again (tensors on the CPU).

    Raises:
        ValueError: The file changed since it was inspected (its sha256 differs).
    """
    again, sd = load_ingredient(ingredient.path, spec)
    if again.sha256 != ingredient.sha256:
        raise ValueError(f"{ingredient.path} changed while the soup was being made (sha256 differs)")
    return sd
