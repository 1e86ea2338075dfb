"""Checked ONNX exports found by checkpoint file, so a process can skip building the model.

A process that loads weights from a file (an index's ``model.pt``, a recorded checkpoint,
``--checkpoint FILE``) and finds a record here for that file's bytes runs the cached
export directly on the fp32 CPU path, without building the torch model or importing
torchvision (about 2.4 s of start-up; :class:`vgloc.describers.net.NetDescriber`). A record
is written only after :func:`vgloc.models.engines.select_engine` has checked the export
against torch and cached it; it lives beside the exports as
``<cache>/onnx/checkpoint-<key>.json`` and is pruned with its export.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vgloc.io import cache_dir
from vgloc.models.engines import _CACHE, _weights_version
from vgloc.models.onnx_cache import OPSET, fixed_image_size

__all__ = ["checkpoint_key", "export_for_checkpoint", "remember_checkpoint_export"]

log = logging.getLogger(__name__)


def checkpoint_key(file_sha256: str, how: str) -> str:
    """The key of a checkpoint file's export: its content and how it was loaded.

    ``how`` names the loading (e.g. the requested spec); the key also covers the versions
    the export depends on (vgloc's model code, torch's exporter, ONNX Runtime, the opset).
    """
    import onnxruntime as ort

    from vgloc._version import __version__

    text = f"{file_sha256}|{how}|vgloc {__version__} {_model_code_digest()}"
    text += f"|torch {torch.__version__}|onnxruntime {ort.__version__}|opset{OPSET}"
    return hashlib.sha256(text.encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def _model_code_digest() -> str:
    """A hash of vgloc's model code (``vgloc/models/*.py``): an edited network is exported anew.

    (The export cache proper is keyed by the weights themselves; a checkpoint file's key
    stands in for building the model, so it must change whenever the code would build a
    different graph from the same file.)
    """
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def _alias_path(key: str) -> Path:
    return cache_dir() / "onnx" / f"checkpoint-{key}.json"


def export_for_checkpoint(key: str) -> dict[str, Any] | None:
    """What :func:`remember_checkpoint_export` recorded for ``key``, if its export is still cached.

    Returns:
        ``{"export": Path, "spec": str, "descriptor_dim": int, "needs_data_init": bool}``,
        or None (never recorded, unreadable, or the export was evicted since).
    """
    try:
        facts = json.loads(_alias_path(key).read_text())
        export = _alias_path(key).parent / str(facts["export"])
        result = {
            "export": export,
            "spec": str(facts["spec"]),
            "descriptor_dim": int(facts["descriptor_dim"]),
            "needs_data_init": bool(facts["needs_data_init"]),
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return result if export.is_file() else None


def remember_checkpoint_export(key: str, model: nn.Module, *, spec: str, needs_data_init: bool) -> bool:
    """Record that ``model`` (loaded from the checkpoint ``key`` names) has a checked, cached export.

    Only for graphs that take any image size, once :func:`select_engine` has verified and
    cached the export. A later process that loads the same checkpoint file can then run the
    export without building the torch model (:class:`vgloc.describers.net.NetDescriber`).

    Returns:
        Whether it was recorded.
    """
    cached = _CACHE.get(model)
    if cached is None or cached[0] != _weights_version(model) or fixed_image_size(model):
        return False
    engine = cached[1]
    if engine.precision != "fp32" or not engine.cache_path.is_file():
        return False
    from vgloc.io import write_json_atomic

    facts = {
        "export": engine.cache_path.name,
        "spec": spec,
        "descriptor_dim": int(getattr(model, "descriptor_dim")),  # noqa: B009
        "needs_data_init": needs_data_init,
    }
    try:
        write_json_atomic(_alias_path(key), facts)
    except OSError as exc:  # a read-only cache only costs the model build next time
        log.debug("could not record the export of checkpoint %s: %s", key[:12], exc)
        return False
    return True
