"""The on-disk cache of ONNX exports: where an export lives, and what is kept.

``<cache>/onnx/<sha256>.onnx`` holds a checked export (key: the weights, the
architecture, the opset, torch's and ONNX Runtime's versions); beside it live its
derived graphs: ONNX Runtime's optimised form per CPU kind
(``<sha256>.<cpu>.optimized.onnx``), its int8 forms (``<sha256>.int8-<key>.onnx``,
:mod:`vgloc.models.quantize`) and the records that find it by checkpoint file
(``checkpoint-<key>.json``, :mod:`vgloc.models.checkpoint_exports`). Only the
:data:`CACHE_KEEP` most recent exports are kept, with everything derived from them.
Used by :mod:`vgloc.models.engines`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
from pathlib import Path

import torch
from torch import nn

from vgloc.io import cache_dir

__all__ = ["CACHE_KEEP", "OPSET", "fixed_image_size"]

#: The ONNX opset of the export (part of the cache key).
OPSET = 17

#: ONNX exports kept on disk (the most recently written); each is the size of the weights.
CACHE_KEEP = 8


def _prune(folder: Path, keep: int) -> None:
    """Delete all but the ``keep`` most recently written exports in ``folder``."""
    # An export is "<sha256>.onnx"; its derived graphs ("<sha256>.<cpu>.optimized.onnx",
    # "<sha256>.int8-<key>.onnx" and the int8 graph's optimised forms) go with it.
    exports = sorted(
        (f for f in folder.glob("*.onnx") if "." not in f.stem),
        key=lambda f: f.stat().st_mtime,
        reverse=True,
    )
    for old in exports[keep:]:
        old.unlink(missing_ok=True)
        for derived in folder.glob(f"{old.stem}.*.onnx"):
            derived.unlink(missing_ok=True)
    # Checkpoint records whose export is gone (export_for_checkpoint ignores them anyway).
    for alias in folder.glob("checkpoint-*.json"):
        try:
            target = folder / str(json.loads(alias.read_text())["export"])
        except (OSError, ValueError, KeyError, TypeError):
            target = None
        if target is None or not target.is_file():
            alias.unlink(missing_ok=True)


def fixed_image_size(model: nn.Module) -> bool:
    """Whether tracing ``model`` bakes the input's height and width into the graph.

    A module says so with a true ``onnx_fixed_image_size`` attribute (DINOv2's
    position-embedding interpolation is computed from the traced size); such an export
    only takes images of the size it was traced at.
    """
    return any(getattr(m, "onnx_fixed_image_size", False) for m in model.modules())


def _cache_path(model: nn.Module, image_hw: tuple[int, int] | None = None) -> Path:
    """Where the ONNX export of ``model`` is cached: a hash of everything the graph depends on.

    ``image_hw`` is part of the key for models whose graph is traced at a fixed size.
    """
    import onnxruntime as ort

    digest = hashlib.sha256()
    digest.update(f"{type(model).__qualname__}|{getattr(model, 'spec', '')}|opset{OPSET}".encode())
    if image_hw is not None:
        digest.update(f"|fixed size {image_hw[0]}x{image_hw[1]}".encode())
    digest.update(f"|torch {torch.__version__}|onnxruntime {ort.__version__}".encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"|{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().data if t.numel() else b"")  # (no copy)
    return cache_dir() / "onnx" / f"{digest.hexdigest()}.onnx"


@functools.lru_cache(maxsize=1)
def _cpu_signature() -> str:
    """What ONNX Runtime's optimised graph depends on: its version, the CPU model and its flags.

    The optimised graph holds layouts chosen for this CPU's vector width (NCHWc blocks),
    so a cache shared between machines keeps one file per CPU kind.
    """
    import onnxruntime as ort

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    wanted = ("model name", "flags")
    lines = sorted({line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith(wanted)})
    digest = hashlib.sha256(f"onnxruntime {ort.__version__}|{platform.machine()}|{lines}".encode())
    return digest.hexdigest()[:16]


def _optimized_path(cache_path: Path) -> Path:
    """Where ONNX Runtime's optimised form of the cached export ``cache_path`` is kept for this CPU."""
    return cache_path.with_name(f"{cache_path.stem}.{_cpu_signature()}.optimized.onnx")
