"""Checkpoints: the authors' state dicts in, vgloc's own model files in and out.

Authors' files (:func:`load_state_dict_compat`):

- containers: a plain state dict, ``{"model_state_dict": ...}`` (VG benchmark,
  CricaVPR), ``{"state_dict": ...}`` (Lightning), or a vgloc model file; keys with or
  without DataParallel's ``module.`` prefix;
- key names: the backbone is ``backbone.N...`` in both CosPlace and the VG benchmark,
  as in vgloc. The authors' ``aggregation`` block is renamed:

  ======================================  =========================  ==================
  authors' key                            vgloc key                  layout
  ======================================  =========================  ==================
  ``aggregation.1.p``                     ``aggregator.p``           CosPlace, VGB GeM
  ``aggregation.3.{weight,bias}``         ``head.fc.{weight,bias}``  CosPlace fc
  ``aggregation.{centroids,conv.*,crn.*}`` ``aggregator.*``          VGB NetVLAD/CRN
  ``aggregation.0.<inner>``               as the inner key above     VGB with fc
  ``aggregation.1.{weight,bias}``         ``head.fc.*``              VGB with fc
  ======================================  =========================  ==================

- loading is strict: missing and unexpected keys are listed and shape mismatches
  named, in one error.

Files are read with ``torch.load(..., map_location="cpu", weights_only=True)`` (numpy
arrays and scalars, which VG-benchmark checkpoints carry in ``recalls``, are allowed
through a scoped allow-list), or with ``safetensors`` for ``.safetensors`` files.

vgloc's format (:func:`save_model` / :func:`load_model`)::

    {"format": "vgloc-model", "format_version": 1, "vgloc_version": "...",
     "spec": "resnet18+gem+fc512", "descriptor_dim": 512,
     "state_dict": {...}, "extra": {...}}
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from vgloc._version import __version__
from vgloc.io import atomic_path
from vgloc.models.model import GeoLocalizationModel

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "LoadReport",
    "convert_author_keys",
    "extract_state_dict",
    "load_model",
    "load_state_dict_compat",
    "read_checkpoint",
    "read_weights_file",
    "save_model",
]

FORMAT = "vgloc-model"
FORMAT_VERSION = 1
_MAX_LISTED = 12


class LoadReport(NamedTuple):
    """What :func:`load_state_dict_compat` did.

    Attributes:
        missing: Model keys the checkpoint did not provide (empty when strict).
        unexpected: Checkpoint keys the model has no place for (empty when strict).
        renamed: How many checkpoint keys were renamed from an authors' layout.
    """

    missing: list[str]
    unexpected: list[str]
    renamed: int


# -- reading files ------------------------------------------------------------------------
def _numpy_safe_globals() -> list[Any]:
    """Numpy pickling helpers that weights-only loading may accept (arrays, scalars)."""
    try:
        from numpy._core.multiarray import _reconstruct, scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]

    allowed: list[Any] = [np.ndarray, np.dtype]
    # numpy 1.x writes these functions as numpy.core.*, numpy 2 as numpy._core.*.
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed += [(_reconstruct, f"{mod}._reconstruct"), (scalar, f"{mod}.scalar")]
    allowed += [type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFD"]
    return allowed


def read_weights_file(path: str | os.PathLike[str], *, trusted: bool = False) -> Any:
    """Load a checkpoint file safely onto the CPU.

    Args:
        path: A ``.pth``/``.pt``/``.ckpt`` file (torch pickle) or ``.safetensors``.
        trusted: Allow arbitrary pickled objects (``weights_only=False``). Only for
            files from a source you trust: unpickling can run code.

    Returns:
        The loaded object (a state dict or a container dict).

    Raises:
        FileNotFoundError: No such file.
        ValueError: The file holds objects weights-only loading refuses, or is not a
            torch/safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as err:
            raise ImportError(
                f"{path} is a safetensors file; install the 'safetensors' package to read it"
            ) from err
        return load_file(os.fspath(path), device="cpu")
    try:
        if trusted:
            return torch.load(path, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's own message is long (and has terminal colour codes): name the culprit.
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        culprit = f"it references {found.group(1)}" if found else str(err).splitlines()[0]
        raise ValueError(
            f"{path} contains objects that safe (weights-only) loading refuses ({culprit}). "
            "If you trust the file, load it with trusted=True, or re-save just its "
            "state dict."
        ) from err
    except Exception as err:  # truncated or foreign files fail in many different ways
        raise ValueError(f"{path} is not a readable torch checkpoint ({type(err).__name__}: {err})") from err


# -- containers and key names ----------------------------------------------------------------
def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    )


def extract_state_dict(obj: Any) -> dict[str, Tensor]:
    """Unwrap a checkpoint container and strip a DataParallel ``module.`` prefix.

    Args:
        obj: A state dict, ``{"model_state_dict": sd}``, ``{"state_dict": sd}``,
            ``{"model": sd}`` or a vgloc model file's dict.

    Returns:
        The state dict (a new dict; tensors are not copied).

    Raises:
        ValueError: No state dict found; the message lists the top-level keys.
    """
    sd: Any = obj
    if isinstance(obj, Mapping) and not _is_state_dict(obj):
        for key in ("state_dict", "model_state_dict", "model"):
            if _is_state_dict(obj.get(key)):
                sd = obj[key]
                break
        else:
            keys = ", ".join(map(repr, list(obj)[:_MAX_LISTED]))
            raise ValueError(
                "no state dict found in checkpoint: expected a dict of tensors or one under "
                f"'model_state_dict' / 'state_dict' / 'model'; top-level keys: {keys}"
            )
    if not _is_state_dict(sd):
        raise ValueError(f"checkpoint is not a state dict (got {type(obj).__name__})")
    out = dict(sd)
    if all(k.startswith("module.") for k in out):
        out = {k[len("module.") :]: v for k, v in out.items()}
    return out


_AGG_INDEX = re.compile(r"^aggregation\.(\d+)\.(.+)$")


def convert_author_keys(sd: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], int]:
    """Rename CosPlace / VG-benchmark ``aggregation.*`` keys to vgloc's modules.

    Keys already in vgloc's layout (``backbone.``, ``aggregator.``, ``head.``) and
    unknown keys pass through unchanged (the strict load then reports the latter).

    Args:
        sd: A state dict without container or ``module.`` prefix.

    Returns:
        ``(renamed state dict, number of renamed keys)``.
    """
    nested = any(k.startswith("aggregation.0.") for k in sd)  # VGB: Sequential(agg, fc, L2)
    out: dict[str, Tensor] = {}
    renamed = 0
    for key, val in sd.items():
        new = _rename(key, nested)
        renamed += new != key
        if new in out:
            raise ValueError(f"checkpoint keys collide after renaming: {key!r} -> {new!r}")
        out[new] = val
    return out, renamed


def _rename(key: str, nested: bool) -> str:
    if not key.startswith("aggregation."):
        return key
    if nested:
        if key.startswith("aggregation.0."):
            return _rename("aggregation." + key[len("aggregation.0.") :], nested=False)
        m = _AGG_INDEX.match(key)
        if m and m.group(1) == "1":
            return f"head.fc.{m.group(2)}"
        return key
    m = _AGG_INDEX.match(key)
    if m is None:  # NetVLAD / CRN: parameters directly on the aggregation module
        return "aggregator." + key[len("aggregation.") :]
    index, rest = m.groups()
    if index == "1":  # Sequential(L2Norm, GeM, Flatten, ...): GeM
        return f"aggregator.{rest}"
    if index == "3":  # CosPlace: Sequential(L2Norm, GeM, Flatten, Linear, L2Norm)
        return f"head.fc.{rest}"
    return key


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    more = f" ... (+{len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else ""
    return f"{shown}{more}"


def load_state_dict_compat(
    model: GeoLocalizationModel,
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    strict: bool = True,
    trusted: bool = False,
    convert_keys: Callable[[Mapping[str, Tensor]], dict[str, Tensor]] | None = None,
) -> LoadReport:
    """Load an authors' or vgloc checkpoint into ``model``.

    Args:
        model: The model to fill (its architecture must match the checkpoint).
        source: A file path or an already loaded object (state dict or container).
        strict: Fail on missing or unexpected keys. Shape mismatches always fail.
        trusted: Passed to :func:`read_weights_file`.
        convert_keys: The authors' key names -> vgloc's, applied after the container
            and ``module.`` prefix are removed (a published model's ``convert_keys``);
            default: the CosPlace / VG-benchmark renaming of :func:`convert_author_keys`.
            Never applied to a vgloc model file, whose keys are vgloc's already.

    Returns:
        A :class:`LoadReport`.

    Raises:
        ValueError: Keys or shapes do not match; the message lists the missing and
            unexpected keys and every shape mismatch, with the model's spec.
    """
    obj = source if isinstance(source, Mapping) else read_weights_file(source, trusted=trusted)
    where = "" if isinstance(source, Mapping) else f" from {source}"
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        stored = obj.get("spec")
        if stored != model.spec:
            raise ValueError(
                f"checkpoint{where} is a vgloc model for spec {stored!r}, but the model is "
                f"{model.spec!r}; use vgloc.models.load_model(path) to rebuild it"
            )
    plain = extract_state_dict(obj)
    if convert_keys is None or (isinstance(obj, Mapping) and obj.get("format") == FORMAT):
        sd, renamed = convert_author_keys(plain)
    else:
        sd = convert_keys(plain)
        renamed = sum(k not in plain for k in sd)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in sd.items()
        if k in own and v.shape != own[k].shape
    ]
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {_listing(mismatched)}")
    if strict and missing:
        problems.append(f"{len(missing)} missing key(s): {_listing(missing)}")
    if strict and unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
    if problems:
        raise ValueError(
            f"checkpoint{where} does not fit model {model.spec!r} "
            f"(descriptor_dim {model.descriptor_dim}): " + "; ".join(problems)
        )
    model.load_state_dict(sd, strict=strict)
    return LoadReport(missing, unexpected, renamed)


# -- vgloc's own format -----------------------------------------------------------------
def _check_plain(value: Any, where: str) -> None:
    """Refuse values that weights-only loading could not read back."""
    if value is None or isinstance(value, (bool, int, float, str, Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where} has a key of type {type(k).__name__}: {k!r}")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise TypeError(
        f"{where} is a {type(value).__name__}; extra may hold only None, bool, int, float, "
        "str, tensors, and lists/dicts of those (so the file loads with weights_only=True)"
    )


def save_model(
    model: GeoLocalizationModel,
    path: str | os.PathLike[str],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` as a vgloc model file, atomically.

    Args:
        model: The model (its tensors are copied to CPU).
        path: Destination (conventionally ``.pt``).
        extra: Small metadata (epoch, recalls, training config as plain types).

    Returns:
        ``path``.
    """
    if not isinstance(model, GeoLocalizationModel):
        raise TypeError(f"save_model needs a GeoLocalizationModel, got {type(model).__name__}")
    extra = dict(extra or {})
    _check_plain(extra, "extra")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "vgloc_version": __version__,
        "spec": model.spec,
        "descriptor_dim": model.descriptor_dim,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a vgloc model file without building the model.

    Args:
        path: A file written by :func:`save_model`.

    Returns:
        The stored dict (``spec``, ``state_dict``, ``extra``, versions).

    Raises:
        ValueError: Not a vgloc model file, or a newer format version.
    """
    obj = read_weights_file(path)
    fmt = obj.get("format") if isinstance(obj, Mapping) else None
    if fmt != FORMAT:
        raise ValueError(
            f"{path} is not a vgloc model file (format={fmt!r}, expected {FORMAT!r}); "
            "for an authors' checkpoint use create_model(spec, weights=path)"
        )
    version = obj.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise ValueError(
            f"{path} has format_version {version!r} (written by vgloc "
            f"{obj.get('vgloc_version', '?')}); this vgloc {__version__} reads version "
            f"{FORMAT_VERSION}: upgrade vgloc"
        )
    for key in ("spec", "state_dict"):
        if key not in obj:
            raise ValueError(f"{path} is a damaged vgloc model file: no {key!r}")
    return dict(obj)


def load_model(path: str | os.PathLike[str]) -> GeoLocalizationModel:
    """Rebuild a model saved by :func:`save_model` (architecture from its spec).

    Args:
        path: The model file.

    Returns:
        The model with its weights, in train mode (call ``.eval()`` for inference).
        ``model.checkpoint_extra`` holds the file's ``extra`` dict.
    """
    ckpt = read_checkpoint(path)
    model = GeoLocalizationModel(ckpt["spec"])
    load_state_dict_compat(model, ckpt, strict=True)
    model.checkpoint_extra = dict(ckpt.get("extra") or {})
    return model
