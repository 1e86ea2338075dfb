"""int8 inference on the CPU: static post-training quantisation of the ONNX export.

``precision="int8"`` runs the network as an int8 ONNX Runtime graph (weights int8 per
output channel, activations uint8 per tensor, QDQ format, which ONNX Runtime fuses into
``QLinearConv`` kernels). On an AVX-512 VNNI Xeon a ResNet-18+GeM+FC512 at 480x640 runs
about 2.9x faster per core than the fp32 graph, with descriptors within cosine 0.9998
of fp32's (BENCHMARKS.md, "int8 on the CPU"). The quantisation itself is ONNX Runtime's
(``onnxruntime.quantization.quantize_static``); this module only decides what it is
calibrated on, where the result is cached and when it is refused.

Calibration data must not depend on the user's images, or the database and a later
``locate`` in another process could run different graphs. It is a fixed set of
:data:`CALIBRATION_IMAGES` street views rendered by the synthetic city (day, night,
fog and occluded conditions, deterministic), normalised exactly as the describer
normalises its inputs. Because synthetic views may not cover a user's photos, the
engine is checked on them too: the first image of every extraction process runs
through both graphs, and a cosine below :data:`MIN_INT8_COSINE` falls back to fp32
with a warning (:func:`vgloc.models.engines.select_engine`).

The quantised graph is cached beside the fp32 export as
``<sha256 of the export>.int8-<key>.onnx``, ``<key>`` a hash of the calibration
tensor, the quantisation settings and the ONNX Runtime version; it is an ONNX graph,
never unpickled, written atomically.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vgloc.io import atomic_path

__all__ = [
    "CALIBRATION_HW",
    "CALIBRATION_IMAGES",
    "MIN_INT8_COSINE",
    "Calibration",
    "calibration_images",
    "cpu_has_int8_dot",
    "quantize_onnx",
    "quantized_path",
]

log = logging.getLogger(__name__)

#: Street views the int8 graph is calibrated on.
CALIBRATION_IMAGES = 16

#: (H, W) they are rendered at when the graph takes any size (the VG benchmark's test size).
CALIBRATION_HW = (480, 640)

#: The lowest cosine between int8 and fp32 descriptors accepted (the issue's bar for fast paths).
MIN_INT8_COSINE = 0.999


@functools.lru_cache(maxsize=1)
def cpu_has_int8_dot() -> bool:
    """Whether this CPU has an int8 dot-product instruction (AVX-512 VNNI, AVX-VNNI or AMX-INT8).

    Without one, x86 int8 kernels multiply uint8 by int8 pairs into int16 that can
    saturate, so the weights are quantised to 7 bits (``reduce_range``, ONNX Runtime's
    advice for such CPUs).
    """
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


@functools.lru_cache(maxsize=4)
def calibration_images(hw: tuple[int, int], n: int = CALIBRATION_IMAGES) -> np.ndarray:
    """The fixed calibration set: ``n`` synthetic street views, uint8 ``(n, 3, H, W)``.

    Half are database views (daylight), the rest queries of the four conditions in
    turn (day, night, fog, occluded), from the training split of the tiny synthetic
    city (seed 0): the same pixels in every process and on every machine.
    """
    from vgloc.data.synthetic.citymap import CityMap
    from vgloc.data.synthetic.generate import DEFAULT_FOV_DEG, plan_city, render_record

    if n < 2:
        raise ValueError(f"calibration needs at least 2 images, got {n}")
    city = CityMap.generate(0, "tiny")
    plan = {folder: recs for split, folder, recs in plan_city(city) if split == "train"}
    database = plan["database"]
    query_folders = [plan[f] for f in ("queries", "queries_night", "queries_fog", "queries_occluded")]
    records = [database[i * len(database) // (n // 2)] for i in range(n // 2)]
    for i in range(n - n // 2):
        folder = query_folders[i % len(query_folders)]
        records.append(folder[(i // len(query_folders)) % len(folder)])
    params = {"image_size": [int(hw[0]), int(hw[1])], "fov_deg": DEFAULT_FOV_DEG}
    views = [render_record(city, rec, params) for rec in records]
    return np.stack(views).transpose(0, 3, 1, 2).copy()


@dataclass(frozen=True)
class Calibration:
    """The calibration set of an int8 graph: :func:`calibration_images`, normalised by ``normalize``.

    Attributes:
        normalize: uint8 ``(N, 3, H, W)`` -> the graph's float input.
        description: what alone determines ``normalize`` (its mean and std), so the cache
            key needs no rendering; None hashes the normalised pixels instead.
    """

    normalize: Callable[[torch.Tensor], torch.Tensor]
    description: str | None = None

    def batch(self, hw: tuple[int, int]) -> np.ndarray:
        """The normalised calibration views at ``hw``, float32 ``(N, 3, H, W)``."""
        with torch.no_grad():
            return self.normalize(torch.from_numpy(calibration_images(hw))).float().numpy()

    def key(self, hw: tuple[int, int]) -> str:
        """A hash of the calibration tensor at ``hw`` (rendered only when ``description`` is None)."""
        from vgloc.data.synthetic.generate import GENERATOR_VERSION

        digest = hashlib.sha256()
        if self.description is not None:
            text = f"views {CALIBRATION_IMAGES} at {hw[0]}x{hw[1]}, generator {GENERATOR_VERSION}|{self.description}"
            digest.update(text.encode())
        else:
            array = np.ascontiguousarray(self.batch(hw), dtype=np.float32)
            digest.update(f"{array.shape}|".encode())
            digest.update(array.data)
        return digest.hexdigest()


def quantized_path(fp32_path: Path, calibration_key: str, reduce_range: bool) -> Path:
    """Where the int8 graph of the export ``fp32_path`` calibrated as ``calibration_key`` says is cached."""
    import onnxruntime as ort

    digest = hashlib.sha256()
    digest.update(f"onnxruntime {ort.__version__}|{_SETTINGS}|reduce_range={reduce_range}|".encode())
    digest.update(calibration_key.encode())
    return fp32_path.with_name(f"{fp32_path.stem}.int8-{digest.hexdigest()[:16]}.onnx")


#: The quantisation settings (part of the cache key): QDQ graph, uint8 activations with
#: min/max ranges, int8 weights per output channel. MinMax and Percentile calibration came
#: out level (`benchmarks/bench_int8_calibration.py`: minimum cosine to fp32 0.99984 both on
#: synthetic queries, 0.99988 vs 0.99986 on held-out real photos); MinMax needs no histogram.
_SETTINGS = "QDQ|QUInt8 activations|QInt8 weights per channel|MinMax"


@contextlib.contextmanager
def _root_logging_untouched() -> Iterator[None]:
    """Keep ONNX Runtime's quantiser from configuring the root logger.

    It logs through the module-level ``logging.info``, which calls ``logging.basicConfig()``
    when the root logger has no handler; every vgloc log line would then print twice.
    A :class:`logging.NullHandler` on the root for the duration prevents that.
    """
    root = logging.getLogger()
    guard = logging.NullHandler()
    root.addHandler(guard)
    try:
        yield
    finally:
        root.removeHandler(guard)


def quantize_onnx(
    fp32_path: Path, calibration: np.ndarray, out: Path, *, reduce_range: bool, method: str = "MinMax"
) -> Path:
    """Quantise the fp32 graph ``fp32_path`` to int8, calibrated on ``calibration``; write ``out`` atomically.

    Args:
        fp32_path: an ONNX graph with one float input ``images`` ``(B, 3, H, W)``.
        calibration: float32 ``(N, 3, H, W)``, normalised as the graph's inputs are.
        out: the int8 graph's path.
        reduce_range: quantise weights to 7 bits (for CPUs without an int8 dot product).
        method: ONNX Runtime's calibration method (``"MinMax"``, what the engine uses; the
            calibration benchmark also tries ``"Percentile"``).

    Returns:
        ``out``.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Reader(CalibrationDataReader):
        def __init__(self, batch: np.ndarray) -> None:
            self._items: Iterator[np.ndarray] = iter(batch)

        def get_next(self) -> dict[str, Any] | None:
            item = next(self._items, None)
            return None if item is None else {"images": np.ascontiguousarray(item[None], dtype=np.float32)}

    with (
        _root_logging_untouched(),
        atomic_path(out) as tmp,
        tempfile.TemporaryDirectory(dir=out.parent) as work,
    ):
        # Shape inference and constant folding first, as ONNX Runtime's quantiser advises.
        pre = Path(work) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(tmp),
            _Reader(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod[method],
        )
    return out
