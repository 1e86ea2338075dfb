"""Inference engines for the fp32 CPU path: ONNX Runtime where it is installed, torch otherwise.

On CPU, a ResNet-18+GeM+FC512 at 480x640 runs about 2x faster under ONNX Runtime
than under torch eager, with descriptors at cosine 1.0000000 of torch's
(BENCHMARKS.md, "Speed: extraction side by side with CosPlace"). The engine
exports the network once per model (about 2 s for a ResNet-18; cached in memory
while its weights are unchanged, and on disk under ``<cache>/onnx/<sha256>.onnx``,
keyed by the weights, the architecture and the torch/ONNX versions, so a new process
with the same weights skips the export), checks its first output against torch before
caching it (a cached export is not checked again), and falls back to torch, with a
warning, on any export error or mismatch. The cached
file is an ONNX graph (protobuf), never unpickled. OpenVINO was as fast here
but its conversion took 6 s instead of 2.

A batch runs split across the CPU's cores, one single-threaded ONNX Runtime run per
core on its share of the images (ONNX Runtime's ``run`` releases the GIL and is
safe to call concurrently), instead of one run whose every operator is split across
threads: a single-threaded ResNet-18 costs ~0.15 CPU-s per 480x640 image against
~0.17-0.20 with two intra-op threads, whose per-operator barriers (and spinning) also
stall whenever another process takes a core (docs/extraction_speed.md). A batch with
fewer images than cores uses intra-op threads for the rest. Descriptors are identical.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vgloc.io import atomic_path
from vgloc.models.onnx_cache import (
    CACHE_KEEP,
    OPSET,
    _cache_path,
    _optimized_path,
    _prune,
    fixed_image_size,
)
from vgloc.models.quantize import MIN_INT8_COSINE, Calibration

__all__ = ["ENGINES", "OnnxRuntimeEngine", "cpu_cores", "onnxruntime_available", "select_engine"]

log = logging.getLogger(__name__)

ENGINES = ("auto", "torch", "onnxruntime")

#: Cosine below which an engine's output is refused (vs torch, on the first batch).
MIN_COSINE = 0.9999

_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[int, ...], OnnxRuntimeEngine]] = (
    weakref.WeakKeyDictionary()
)


def onnxruntime_available() -> bool:
    """Whether ``onnxruntime`` can be imported and ``onnx`` (which torch's exporter needs) is installed.

    ``onnx`` is only looked up, not imported: a process that finds its export in the
    cache never needs it (importing it costs ~0.2-0.4 s of start-up).
    """
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return importlib.util.find_spec("onnx") is not None


def cpu_cores() -> int:
    """The CPUs this process may run on (its affinity mask; all CPUs where there is none)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _weights_version(model: nn.Module) -> tuple[int, ...]:
    """Changes whenever a parameter or buffer is modified in place (torch's version counters)."""
    return tuple(t._version for t in (*model.parameters(), *model.buffers()))


class OnnxRuntimeEngine:
    """A model exported to ONNX and run by ONNX Runtime on the CPU (fp32), called like the model.

    A batch of B images runs as ``min(B, cores)`` concurrent single-threaded runs on
    contiguous slices of it (see the module docstring); a batch smaller than ``cores``
    gives each slice ``cores // B`` intra-op threads.

    Args:
        model: a torch module mapping ``(B, 3, H, W)`` float images to ``(B, D)``.
        example: an input of the right rank for tracing (the exported graph takes any
            batch size and image size).
        cores: CPU cores to use; default: :func:`cpu_cores`.
    """

    def __init__(self, model: nn.Module, example: Tensor, cores: int | None = None) -> None:
        import onnxruntime as ort

        self.cores = max(1, int(cores) if cores is not None else cpu_cores())
        self._sessions: dict[int, Any] = {}  # intra-op threads -> session
        self._pool: ThreadPoolExecutor | None = None
        #: What the graph computes in: "fp32" (the export) or "int8" (:meth:`from_graph`).
        self.precision = "fp32"
        #: Its int8 forms per calibration key, or itself where int8 was refused (:func:`int8_of`).
        self.int8_forms: dict[str, OnnxRuntimeEngine] = {}
        options = self._options(1)
        #: (H, W) the graph was traced at, when it only takes that size (None: any size).
        self.fixed_hw = (int(example.shape[-2]), int(example.shape[-1])) if fixed_image_size(model) else None
        self.cache_path = _cache_path(model, self.fixed_hw)
        self.from_cache = False
        self._export: bytes | None = None  # an export not yet written to the cache
        #: The graph sessions are made from: the export (bytes or the cached file), or
        #: ONNX Runtime's optimised form of the cached file (loaded without optimising again).
        self._source: bytes | str | None = None
        self._optimized = False
        if self.cache_path.is_file():
            try:
                self.session = self._open_cached()
                self._sessions[1] = self.session
                self.from_cache = True
                self.verified = False
                return
            except Exception as exc:  # a damaged cache file: export again and replace it
                log.warning("ignoring unreadable ONNX cache file %s: %s", self.cache_path, exc)
        buf = io.BytesIO()
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), warnings.catch_warnings():
                # Tracing warns about shape checks turned into constants; they only validate input.
                warnings.simplefilter("ignore")
                # (a file object works; the stub says paths)
                torch.onnx.export(
                    model,
                    (example[:1].float().contiguous(),),
                    buf,  # type: ignore[arg-type]
                    input_names=["images"],
                    output_names=["descriptors"],
                    dynamic_axes={
                        "images": {0: "batch", 2: "height", 3: "width"},
                        "descriptors": {0: "batch"},
                    },
                    opset_version=OPSET,
                    dynamo=False,
                )
        finally:
            model.train(was_training)
        self._export = buf.getvalue()
        self._source = self._export
        self.session = ort.InferenceSession(self._export, options, providers=["CPUExecutionProvider"])
        self._sessions[1] = self.session
        self.verified = False

    @classmethod
    def from_graph(
        cls, path: Path, precision: str, fixed_hw: tuple[int, int] | None, cores: int | None = None
    ) -> OnnxRuntimeEngine:
        """An engine over an ONNX graph already on disk (the int8 form of an export,
        :mod:`vgloc.models.quantize`), with the same slicing and optimised-graph cache.

        Args:
            path: the graph; input ``images`` ``(B, 3, H, W)`` float32, output ``(B, D)``.
            precision: what it computes in (``"int8"``), for log lines.
            fixed_hw: the only (H, W) it takes, or None for any size.
            cores: CPU cores to use; default: :func:`cpu_cores`.
        """
        self = cls.__new__(cls)
        self.cores = max(1, int(cores) if cores is not None else cpu_cores())
        self._sessions = {}
        self._pool = None
        self.precision = precision
        self.fixed_hw = fixed_hw
        self.cache_path = Path(path)
        self.from_cache = True
        self._export = None
        self._source = None
        self._optimized = False
        self.session = self._open_cached()
        self._sessions[1] = self.session
        self.verified = False
        self.int8_forms = {}
        return self

    def _open_cached(self) -> Any:
        """A single-threaded session on the cached export, through its optimised form.

        ONNX Runtime optimises a graph each time a session is made (~0.25 s of start-up
        for a ResNet-18); its optimised form, saved beside the export on first use (per CPU
        kind, :func:`_optimized_path`), loads without that. An unreadable optimised file
        is replaced.
        """
        import onnxruntime as ort

        optimized = _optimized_path(self.cache_path)
        if optimized.is_file():
            try:
                session = ort.InferenceSession(
                    str(optimized), self._options(1, optimized=True), providers=["CPUExecutionProvider"]
                )
                self._source, self._optimized = str(optimized), True
                return session
            except Exception as exc:
                log.warning("ignoring unreadable optimised ONNX file %s: %s", optimized, exc)
        self._source = str(self.cache_path)
        options = self._options(1)
        try:
            with atomic_path(optimized) as tmp:
                options.optimized_model_filepath = str(tmp)
                session = ort.InferenceSession(self._source, options, providers=["CPUExecutionProvider"])
        except OSError as exc:  # a read-only cache: the session is still made below
            log.warning("could not cache the optimised ONNX graph at %s: %s", optimized, exc)
            session = ort.InferenceSession(self._source, self._options(1), providers=["CPUExecutionProvider"])
        return session

    @staticmethod
    def _options(threads: int, optimized: bool = False) -> Any:
        """Session options for ``threads`` intra-op threads.

        Graph optimisations: all (the default), or none for a graph ONNX Runtime already
        optimised (``optimized``).
        """
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        if optimized:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        # Spinning threads only burn the cores that the other slices (and decoding) need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return options

    def _session(self, threads: int) -> Any:
        """The session with ``threads`` intra-op threads (made on first use from the same graph)."""
        session = self._sessions.get(threads)
        if session is None:
            import onnxruntime as ort

            source = self._source if self._source is not None else str(self.cache_path)
            options = self._options(threads, optimized=self._optimized)
            session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
            self._sessions[threads] = session
        return session

    def save_to_cache(self) -> None:
        """Write the export to the disk cache (called once its output matched torch's).

        Only checked exports are cached, so a process that finds the file can trust
        it without running the model through torch again.
        """
        export = self._export
        if export is None:  # loaded from the cache: already there
            return
        try:
            with atomic_path(self.cache_path) as tmp:
                tmp.write_bytes(export)
            _prune(self.cache_path.parent, keep=CACHE_KEEP)
        except OSError as exc:  # a read-only cache only costs the export next time
            log.warning("could not cache the ONNX export at %s: %s", self.cache_path, exc)
            return  # (the graph stays in memory for sessions with other thread counts)
        self._export = None
        self._source = str(self.cache_path)

    def accepts(self, images: Tensor) -> bool:
        """Whether the exported graph takes a batch of this shape (any, unless traced at a fixed size)."""
        return self.fixed_hw is None or tuple(images.shape[-2:]) == self.fixed_hw

    def __call__(self, images: Tensor) -> Tensor:
        """Descriptors ``(B, D)`` of images ``(B, 3, H, W)`` (float32, on the CPU)."""
        array = np.ascontiguousarray(images.detach().float().cpu().numpy())
        n = int(array.shape[0])
        slices = max(1, min(n, self.cores))
        session = self._session(max(1, self.cores // slices))
        if slices == 1:
            (out,) = session.run(None, {"images": array})
            return torch.from_numpy(np.asarray(out, dtype=np.float32))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.cores, thread_name_prefix="vgloc-onnx")
        bounds = np.linspace(0, n, slices + 1).astype(int)  # near-equal slices
        parts = np.split(array, bounds[1:-1])  # views: no copy
        outs = list(self._pool.map(lambda part: session.run(None, {"images": part})[0], parts))
        return torch.from_numpy(np.concatenate(outs).astype(np.float32, copy=False))


def select_engine(
    model: nn.Module,
    engine: str,
    device: torch.device,
    amp: torch.dtype | None,
    example: Tensor,
    *,
    int8_calibration: Calibration | None = None,
) -> Any | None:
    """The engine to run ``model`` with, or None for torch itself.

    ``"auto"`` takes ONNX Runtime for fp32 on CPU when it is installed (faster there,
    same descriptors); ``"onnxruntime"`` asks for it (an error when it is not installed);
    ``"torch"`` never uses it. Autocast (bf16/fp16) and non-CPU devices always use torch.
    A failed conversion, or a first output that differs from torch's (cosine <
    :data:`MIN_COSINE`), falls back to torch with a warning.

    With ``int8_calibration`` (``precision="int8"``; the
    :class:`~vgloc.models.quantize.Calibration` set, normalised as the inputs are) the fp32 export is quantised
    to int8 (:mod:`vgloc.models.quantize`, once per model and cached) and the int8 engine
    is returned when its descriptors of the calibration images and of ``example`` (the
    caller's first image) are within cosine :data:`~vgloc.models.quantize.MIN_INT8_COSINE`
    of fp32's; otherwise the fp32 engine, with a warning.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if int8_calibration is not None:
        # (ExtractionOptions refuses these combinations first; this guards direct callers.)
        if engine == "torch" or device.type != "cpu" or amp is not None:
            raise ValueError(
                "precision 'int8' runs under ONNX Runtime on the CPU (engine auto or onnxruntime)"
            )
        if not onnxruntime_available():
            raise ImportError(
                "precision 'int8' needs the onnx and onnxruntime packages (pip install vgloc[onnx])"
            )
    if engine == "torch" or device.type != "cpu" or amp is not None:
        return None
    if not onnxruntime_available():
        if engine == "onnxruntime":
            raise ImportError("engine='onnxruntime' needs the onnx and onnxruntime packages")
        return None
    version = _weights_version(model)
    cached = _CACHE.get(model)
    if cached is not None and cached[0] == version:
        compiled = cached[1]
    else:
        try:
            compiled = OnnxRuntimeEngine(model, example)
            # A cached file was checked against torch before it was written (the key covers
            # the weights, the architecture and the versions): no second torch pass for it.
            if not compiled.from_cache:
                with torch.no_grad():
                    probe = example[:1].float()
                    ref = model.eval()(probe).float()
                    got = compiled(probe)
                cos = _min_cosine(ref, got)
                if not cos >= MIN_COSINE:
                    raise RuntimeError(f"ONNX Runtime output differs from torch (cosine {cos:.6f})")
                compiled.save_to_cache()
        except Exception as exc:
            if engine == "onnxruntime" or int8_calibration is not None:
                raise
            log.warning("ONNX Runtime engine unavailable for this model, using torch: %s", exc)
            return None
        compiled.verified = True
        _CACHE[model] = (version, compiled)
    if int8_calibration is None:
        return compiled
    return int8_of(compiled, int8_calibration, example)


def int8_of(fp32: OnnxRuntimeEngine, calibration: Calibration, example: Tensor) -> OnnxRuntimeEngine:
    """The int8 form of a checked fp32 engine, or ``fp32`` itself (with a warning) when refused.

    Quantised once per export (:func:`_int8_engine`, cached on disk) and kept only when
    its descriptor of ``example`` (the caller's first image, ``(B, 3, H, W)`` normalised)
    is within cosine :data:`~vgloc.models.quantize.MIN_INT8_COSINE` of fp32's. The answer
    is remembered on ``fp32`` per calibration set, so later calls repeat no check.
    """
    from vgloc.models.quantize import CALIBRATION_HW

    key = calibration.key(fp32.fixed_hw or CALIBRATION_HW)
    forms = fp32.int8_forms
    if key in forms:
        return forms[key]
    try:
        quantized = _int8_engine(fp32, calibration, key)
        with torch.no_grad():
            probe = example[:1].float()
            cos = _min_cosine(fp32(probe), quantized(probe))
        if not cos >= MIN_INT8_COSINE:
            raise RuntimeError(
                f"its descriptor of the first image is at cosine {cos:.5f} of fp32's (< {MIN_INT8_COSINE})"
            )
    except Exception as exc:
        log.warning("int8 engine refused, running fp32 under ONNX Runtime instead: %s", exc)
        quantized = fp32
    forms[key] = quantized
    return quantized


def _min_cosine(a: Tensor, b: Tensor) -> float:
    """The lowest row-wise cosine between two ``(B, D)`` outputs."""
    return float(
        torch.nn.functional.cosine_similarity(a.float().flatten(1), b.float().flatten(1), dim=1).min()
    )


def _int8_engine(fp32: OnnxRuntimeEngine, calibration: Calibration, key: str) -> OnnxRuntimeEngine:
    """The int8 engine of a verified fp32 engine: quantised once per export and cached on disk.

    A new quantisation is checked on its own calibration images (every descriptor within
    :data:`~vgloc.models.quantize.MIN_INT8_COSINE` of fp32's) before it is kept.
    """
    import tempfile

    from vgloc.models.quantize import CALIBRATION_HW, cpu_has_int8_dot, quantize_onnx, quantized_path

    hw = fp32.fixed_hw or CALIBRATION_HW
    reduce_range = not cpu_has_int8_dot()
    # (``key`` is ``calibration.key(hw)``, computed once by the caller; the views are
    # rendered only to quantise.)
    path = quantized_path(fp32.cache_path, key, reduce_range)
    if path.is_file():
        return OnnxRuntimeEngine.from_graph(path, "int8", fp32.fixed_hw, fp32.cores)
    views = calibration.batch(hw)
    log.info("quantising the network to int8 (once per model; calibrated on %d synthetic views)", len(views))
    if not fp32.cache_path.is_file():
        # The export could not be cached (a read-only cache): no place for the int8 graph either.
        raise RuntimeError(f"the ONNX cache {fp32.cache_path.parent} is not writable")
    source = fp32.cache_path
    with tempfile.TemporaryDirectory() as work:
        candidate = Path(work) / "int8.onnx"
        quantize_onnx(source, views, candidate, reduce_range=reduce_range)
        engine = OnnxRuntimeEngine.from_graph(candidate, "int8", fp32.fixed_hw, fp32.cores)
        batch = torch.from_numpy(views)
        cos = _min_cosine(fp32(batch), engine(batch))
        if not cos >= MIN_INT8_COSINE:
            raise RuntimeError(
                f"int8 calibration descriptors at cosine {cos:.5f} of fp32's (< {MIN_INT8_COSINE})"
            )
        log.info("int8 graph within cosine %.5f of fp32 on its calibration views", cos)
        with atomic_path(path) as tmp:
            tmp.write_bytes(candidate.read_bytes())
    return OnnxRuntimeEngine.from_graph(path, "int8", fp32.fixed_hw, fp32.cores)
