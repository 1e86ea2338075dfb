"""Export a descriptor network to ONNX or TorchScript, checked against PyTorch.

The exported graph is the network alone: ``(B, 3, H, W)`` float32 images, already
resized and normalised, to ``(B, D)`` L2-normalised descriptors. How to prepare the
images (evaluation size, mean, std) travels inside the file as JSON: the ONNX model's
``metadata_props`` (key ``vgloc``) or the TorchScript archive's extra file
``vgloc.json``. Every export is run once on an example batch and compared with the
PyTorch model; an export whose outputs differ by more than ``atol`` is refused (not
written).

The ONNX settings are those of the extraction engine (:mod:`vgloc.models.engines`:
opset, dynamic batch/height/width, the TorchScript-based exporter), so a file exported
here behaves like the one ``precision="auto"`` runs on the CPU.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vgloc.io import atomic_path

__all__ = ["EXPORT_FORMATS", "ExportReport", "export_model"]

EXPORT_FORMATS = ("onnx", "torchscript")

#: The example size when neither the caller nor a published model names one.
FALLBACK_SIZE = (480, 640)


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_model` wrote.

    Attributes:
        path: The written file.
        format: ``"onnx"`` or ``"torchscript"``.
        image_size: ``(H, W)`` of the example the export was traced and checked with.
        max_abs_diff: Largest absolute difference from PyTorch on that example.
        metadata: The JSON stored in the file (spec, descriptor_dim, preprocessing).
    """

    path: Path
    format: str
    image_size: tuple[int, int]
    max_abs_diff: float
    metadata: dict[str, Any]


def _metadata(model: nn.Module, image_size: tuple[int, int]) -> dict[str, Any]:
    from vgloc.models.published import Preprocessing

    published = getattr(model, "published", None)
    pre = published.preprocessing if published is not None else Preprocessing(image_size=None)
    return {
        "format": "vgloc-export",
        "spec": str(getattr(model, "spec", type(model).__name__)),
        "published": None if published is None else published.name,
        "descriptor_dim": int(getattr(model, "descriptor_dim", -1)),
        "input": "float32 (B, 3, H, W), RGB in [0, 1], then (x - mean) / std",
        "image_size": list(image_size),
        "eval_image_size": None if pre.image_size is None else list(pre.image_size),
        "mean": list(pre.mean),
        "std": list(pre.std),
        "multiple_of": pre.multiple_of,
    }


def _onnx_bytes(model: nn.Module, example: Tensor, meta: dict[str, Any]) -> bytes:
    import onnx

    from vgloc.models.engines import OPSET

    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # Tracing warns about shape checks turned into constants; they only validate input.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            # (a file object works; the stub says paths)
            buf,  # type: ignore[arg-type]
            input_names=["images"],
            output_names=["descriptors"],
            dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, "descriptors": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = "vgloc", json.dumps(meta)
    return bytes(proto.SerializeToString())


def _run_onnx(data: bytes, example: Tensor) -> Tensor:
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"images": example.numpy()})
    return torch.from_numpy(out)


def export_model(
    model: nn.Module,
    out: str | os.PathLike[str],
    fmt: str = "onnx",
    *,
    image_size: tuple[int, int] | None = None,
    batch_size: int = 2,
    atol: float = 1e-4,
    seed: int = 0,
) -> ExportReport:
    """Export ``model`` (CPU, fp32, eval mode) and check it against PyTorch.

    Args:
        model: A descriptor network (``create_model(spec_or_published_name, ...)``).
        out: The file to write (atomically).
        fmt: ``"onnx"`` or ``"torchscript"`` (traced).
        image_size: ``(H, W)`` of the example batch; default: the published model's
            evaluation size, else 480x640. ONNX inputs keep dynamic batch, height and
            width; a traced TorchScript module may have size-dependent steps fixed at
            this size (e.g. a ViT's position-embedding interpolation).
        batch_size: Images in the example batch.
        atol: Largest absolute difference from PyTorch accepted.
        seed: Seeds the random example batch.

    Returns:
        An :class:`ExportReport`.

    Raises:
        ValueError: Unknown format, or outputs that differ by more than ``atol``.
        ImportError: ONNX export without the ``onnx`` / ``onnxruntime`` packages.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if fmt == "onnx":
        from vgloc.models.engines import onnxruntime_available

        if not onnxruntime_available():
            raise ImportError(
                "ONNX export needs the onnx and onnxruntime packages (pip install onnx onnxruntime)"
            )
    published = getattr(model, "published", None)
    if image_size is None and published is not None:
        image_size = published.preprocessing.image_size
    size = tuple(image_size) if image_size is not None else FALLBACK_SIZE
    model = model.cpu().float().eval()
    gen = torch.Generator().manual_seed(seed)
    example = torch.randn(batch_size, 3, size[0], size[1], generator=gen)
    with torch.no_grad():
        expected = model(example)
    meta = _metadata(model, (size[0], size[1]))
    with _no_transformer_fastpath():
        data, got = _export(model, example, fmt, meta)
    diff = float((got.float() - expected.float()).abs().max())
    if not diff <= atol:
        raise ValueError(f"the {fmt} export differs from PyTorch by {diff:.2e} (> {atol:.0e}); not written")
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    return ExportReport(Path(out), fmt, (size[0], size[1]), diff, meta)


@contextlib.contextmanager
def _no_transformer_fastpath() -> Iterator[None]:
    """Trace ``nn.TransformerEncoderLayer`` (BoQ, CricaVPR) through its plain ops: the fused
    inference kernel ``aten::_transformer_encoder_layer_fwd`` has no ONNX export. Restored after."""
    mha = torch.backends.mha
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)


def _export(model: nn.Module, example: Tensor, fmt: str, meta: dict[str, Any]) -> tuple[bytes, Tensor]:
    """The exported file's bytes and its output on ``example``."""
    if fmt == "onnx":
        data = _onnx_bytes(model, example, meta)
        got = _run_onnx(data, example)
    else:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, (example,), check_trace=False)
        buf = io.BytesIO()
        with warnings.catch_warnings():
            # torch 2.9 marks TorchScript deprecated (in favour of torch.export); it still works.
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(traced, buf, _extra_files={"vgloc.json": json.dumps(meta)})
            data = buf.getvalue()
            with torch.no_grad():
                got = torch.jit.load(io.BytesIO(data), map_location="cpu")(example)
    return data, got
