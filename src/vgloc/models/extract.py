"""Batch descriptor extraction: dataset -> ``np.ndarray[N, D]`` in dataset order."""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

__all__ = [
    "PRECISIONS",
    "auto_num_workers",
    "autocast_dtype",
    "cpu_has_fast_bf16",
    "extract_descriptors",
    "last_extraction",
    "resolve_fast_path",
]

log = logging.getLogger(__name__)

_LAST = "no extraction yet"


def last_extraction() -> str:
    """How the latest :func:`extract_descriptors` call went, for a log line.

    E.g. ``"96 images in 9.80 s (9.8 img/s; onnxruntime fp32, 2 decoding workers)"``:
    the time covers decoding and the network (from the first batch to the last).
    """
    return _LAST


PRECISIONS = ("fp32", "bf16", "fp16", "int8", "auto")
# int8 is not an autocast dtype: the network runs as a quantised ONNX Runtime graph
# (vgloc.models.quantize), and torch (where the engine does not apply) in fp32.
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": None}


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU runs bf16 convolutions natively (AVX-512 BF16 or AMX).

    There bf16 autocast with channels-last is 2-2.5x faster than fp32 for a ResNet;
    on AVX2-only CPUs bf16 is emulated and about 4x *slower* than fp32.
    """
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision name on a device (``None``: plain fp32).

    Args:
        precision: ``"fp32"``, ``"bf16"``, ``"fp16"``, ``"int8"`` (CPU only; no autocast:
            the engine runs a quantised graph) or ``"auto"``: fp16 on CUDA; on CPU bf16
            where the CPU has native bf16 (:func:`cpu_has_fast_bf16`), else fp32.
        device: Where the model runs.

    Returns:
        ``torch.bfloat16``, ``torch.float16`` or ``None``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "int8" and device.type != "cpu":
        raise ValueError(f"precision 'int8' runs on the CPU only (ONNX Runtime), not on {device.type}")
    if precision == "auto":
        if device.type == "cuda":
            precision = "fp16"
        else:
            precision = "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"
    return _DTYPES[precision]


def resolve_fast_path(
    precision: str, channels_last: bool | None, device: torch.device
) -> tuple[torch.dtype | None, bool]:
    """The autocast dtype and memory format extraction uses.

    ``precision="auto"`` picks the hardware's fast path: fp16 on CUDA; on CPU, bf16
    where bf16 is native (AVX-512 BF16 / AMX), fp32 elsewhere (emulated bf16 is ~4x
    slower than fp32 on AVX2 CPUs), in both cases channels_last (NHWC: 2-2.5x with
    bf16, ~1.4x in fp32 on an AVX-512 Xeon, same descriptors).
    ``"auto"`` on CPU always runs channels_last; otherwise ``channels_last=None``
    means "as the fast path says" (with autocast on CUDA; never for an explicit CPU
    precision: ``"fp32"`` is the plain reference path) and True/False force it.

    Returns:
        ``(autocast dtype or None, channels_last)``.
    """
    amp = autocast_dtype(precision, device)
    if precision == "auto" and device.type == "cpu":
        channels_last = True
    elif channels_last is None:
        channels_last = device.type == "cuda" and amp is not None
    return amp, bool(channels_last)


def auto_num_workers(n_images: int, batch_size: int, device: str | torch.device = "cpu") -> int:
    """Decoding worker processes, none for a dataset of two batches or less.

    On CPU ``min(4, CPUs)``: the network shares the cores with decoding, so more
    workers only take cores from it. On a GPU the cores have nothing else to do and
    decoding is the limit (a 16-core machine decodes about 4,000 480x640 JPEGs/s with
    PIL in 16 processes, faster than nvJPEG's 2,600 img/s there, while the network
    alone runs 4,000-10,000 img/s), so every core but one decodes, up to 16.
    Worker start-up (about 0.1-0.3 s each) is not worth it for a handful of images,
    nor on a single CPU.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cpus < 2 or n_images <= 2 * max(1, batch_size):
        return 0
    if torch.device(device).type == "cuda":
        return max(1, min(16, cpus - 1))
    return min(4, cpus)


@contextlib.contextmanager
def _cudnn_autotune(device: torch.device) -> Iterator[None]:
    """cuDNN picks the fastest convolution algorithm per input shape, for the extraction only.

    A global flag, so it is set here (not at import) and restored afterwards.
    """
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


_COMPILED: Any = None


def _compiled(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """``torch.compile(model)``, kept per model so a second extraction does not recompile."""
    global _COMPILED
    import weakref

    if _COMPILED is None:
        _COMPILED = weakref.WeakKeyDictionary()
    fn = _COMPILED.get(model)
    if fn is None:
        fn = torch.compile(model, dynamic=False)
        _COMPILED[model] = fn
    return fn


def _split_batch(batch: Any) -> tuple[Tensor, Tensor | None]:
    if isinstance(batch, Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)) and len(batch) >= 2 and isinstance(batch[0], Tensor):
        idx = batch[1]
        return batch[0], (idx if isinstance(idx, Tensor) else torch.as_tensor(idx))
    raise TypeError(
        "the dataset must yield (image_tensor[3, H, W], index) pairs (or bare image "
        f"tensors); a batch came as {type(batch).__name__}"
    )


@contextlib.contextmanager
def _inference_setup(model: nn.Module | None, channels_last: bool) -> Iterator[None]:
    """eval() and optional channels_last for the duration; both restored afterwards."""
    if model is None:  # (an engine alone runs the batches)
        yield
        return
    was_training = model.training
    conv_weights = [p for p in model.parameters() if p.ndim == 4]
    was_cl = bool(conv_weights) and all(
        p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in conv_weights
    )
    model.eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        model.train(was_training)
        if channels_last and not was_cl:
            model.to(memory_format=torch.contiguous_format)


def _int8_calibration(preprocess: Callable[[Tensor], Tensor]) -> Any:
    """The :class:`~vgloc.models.quantize.Calibration` of an int8 graph, normalised as ``preprocess`` does.

    Query-only photometric changes (test-time brightness, contrast, saturation) are left
    out, so database and queries get the same int8 graph.
    """
    from vgloc.data.transforms import NormalizeUint8
    from vgloc.models.quantize import Calibration

    if isinstance(preprocess, NormalizeUint8):
        plain = NormalizeUint8(mean=preprocess.mean, std=preprocess.std)  # type: ignore[arg-type]
        return Calibration(plain, f"mean={plain.mean} std={plain.std}")
    return Calibration(preprocess)


def extract_descriptors(
    model: nn.Module | None,
    dataset: Dataset[Any],
    *,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    channels_last: bool | None = False,
    num_workers: int | None = 0,
    progress: bool = True,
    out_dtype: Any = np.float32,
    batches: Sequence[Sequence[int]] | None = None,
    preprocess: Callable[[Tensor], Tensor] | None = None,
    engine: str = "torch",
    compile: bool = False,
    collate_fn: Callable[[Any], Any] | None = None,
    decode_batch: Callable[[Any], tuple[Tensor, Tensor]] | None = None,
    runner: Any = None,
) -> np.ndarray:
    """Compute one descriptor per dataset item.

    The model runs in eval mode under ``torch.inference_mode()`` (its train/eval mode
    and memory format are restored afterwards; it is left on ``device``). Rows are
    placed by the index each item reports, so the result is in dataset order
    whatever the loading order.

    Args:
        model: Maps ``(B, 3, H, W)`` images to ``(B, D)`` descriptors (e.g. a
            :class:`~vgloc.models.GeoLocalizationModel`).
        dataset: Yields ``(image_tensor[3, H, W], index)``; indices must be
            ``0..len(dataset)-1``, each once. Items of one batch must share H and W.
        batch_size: Images per forward pass.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        precision: ``"fp32"``; ``"bf16"`` / ``"fp16"`` autocast on the model's device;
            ``"int8"``: a quantised ONNX Runtime graph on the CPU (about 2.9x fp32 on a
            VNNI CPU, descriptors within cosine 0.999 of fp32's, checked at run time,
            see :mod:`vgloc.models.quantize`); ``"auto"`` = the hardware's fast path
            (:func:`resolve_fast_path`): fp16 on CUDA; on CPU bf16 where bf16 is native,
            else fp32, both channels_last.
        channels_last: Run convolutions in NHWC (faster on recent GPUs and CPUs);
            None = as the fast path says (see :func:`resolve_fast_path`).
        num_workers: DataLoader worker processes; None = :func:`auto_num_workers`.
        progress: Show a tqdm progress bar.
        out_dtype: ``np.float32`` or ``np.float16`` (halves the memory of large
            databases; descriptors are computed in float32 and cast at the end).
        batches: Lists of dataset indices to run as batches (e.g. images grouped by
            size, :func:`vgloc.data.datasets.batches_by_size`); replaces ``batch_size``.
        preprocess: Applied to each batch on ``device`` before the model (e.g.
            :class:`vgloc.data.transforms.NormalizeUint8` for uint8 datasets). Default:
            uint8 batches get ImageNet normalisation, float batches pass unchanged.
        engine: ``"torch"``; ``"onnxruntime"``; or ``"auto"``: with ``precision="auto"``,
            ONNX Runtime for the fp32 CPU path where it is installed (about 2x faster
            there, same descriptors), torch otherwise (and with an explicit precision)
            (see :func:`vgloc.models.engines.select_engine`; it falls back to torch when
            a model does not convert).
        compile: Run the torch path through ``torch.compile`` (once per model and
            process; pays off on GPUs for large databases, not for a few images).
            Ignored when an engine other than torch runs the model.
        collate_fn: the DataLoader's ``collate_fn`` (default: stacking); with
            ``decode_batch``, e.g. :func:`vgloc.data.device_decode.collate_encoded`.
        decode_batch: turns each collated batch into ``(uint8 images (B, 3, H, W) on
            device, indices)`` in the main process (e.g. nvJPEG decoding,
            :class:`vgloc.data.device_decode.DeviceDecoder`).
        runner: an engine to run instead of choosing one (e.g. an
            :class:`~vgloc.models.engines.OnnxRuntimeEngine` over a cached export); ``model``
            may then be None, and the engine must take every batch. With ``precision="int8"``
            an fp32 engine is quantised (:func:`vgloc.models.engines.int8_of`).

    Returns:
        Descriptors, row ``i`` for dataset item ``i``.

    Shape:
        - Output: ``(len(dataset), D)``

    Raises:
        ValueError: Bad ``precision``/``out_dtype``/``batch_size``, or indices that are
            out of range, repeated or missing.
    """
    out_np = np.dtype(out_dtype)
    if out_np not in (np.dtype(np.float32), np.dtype(np.float16)):
        raise ValueError(f"out_dtype must be float32 or float16, got {out_np}")
    if int(batch_size) <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size!r}")
    dev = torch.device(device)
    amp, channels_last = resolve_fast_path(precision, channels_last, dev)
    n = len(dataset)  # type: ignore[arg-type]
    if num_workers is None:
        num_workers = auto_num_workers(n, int(batch_size), dev)
    if preprocess is None:
        from vgloc.data.transforms import NormalizeUint8

        preprocess = NormalizeUint8()
    if model is None and runner is None:
        raise ValueError("extract_descriptors needs a model or a runner")
    dim = getattr(model, "descriptor_dim", None)
    out = np.empty((n, int(dim)), dtype=out_np) if dim is not None else None
    filled = np.zeros(n, dtype=bool)
    # (A custom batch type is not pinned: the encoded bytes of device decoding are small.)
    loader_args: dict[str, Any] = {
        "num_workers": num_workers,
        "pin_memory": dev.type == "cuda" and collate_fn is None,
    }
    if collate_fn is not None:
        loader_args["collate_fn"] = collate_fn
    if num_workers > 0:
        loader_args["prefetch_factor"] = 2
    if batches is not None:
        loader = DataLoader(dataset, batch_sampler=[list(b) for b in batches], **loader_args)
    else:
        loader = DataLoader(dataset, batch_size=int(batch_size), shuffle=False, **loader_args)
    if model is not None:
        model.to(dev)
    autocast = (
        torch.autocast(device_type=dev.type, dtype=amp) if amp is not None else contextlib.nullcontext()
    )
    from vgloc.models.engines import ENGINES, select_engine

    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    position = 0
    started = time.perf_counter()
    batch_iter: Iterator[Any] = iter(loader)
    if decode_batch is not None:
        batch_iter = map(decode_batch, batch_iter)
    first = next(batch_iter, None)
    # A given fp32 engine (a deferred model's export, vgloc.describers.net) still needs its
    # int8 form when int8 is asked for.
    quantize_runner = precision == "int8" and getattr(runner, "precision", None) == "fp32"
    if first is not None and (runner is None or quantize_runner):
        # The engine is chosen (and checked against torch) on the first batch's size.
        example = preprocess(_split_batch(first)[0][:1].to(dev))
        if runner is not None:  # (quantize_runner: precision is int8)
            from vgloc.models.engines import int8_of

            runner = int8_of(runner, _int8_calibration(preprocess), example)
        else:
            assert model is not None  # (checked above: no runner means a model)
            was_training = model.training
            try:
                # An "auto" engine is part of the automatic fast path: an explicit precision
                # ("fp32") asks for the plain torch reference path.
                chosen = engine if (engine != "auto" or precision in ("auto", "int8")) else "torch"
                calibration = _int8_calibration(preprocess) if precision == "int8" else None
                runner = select_engine(model.eval(), chosen, dev, amp, example, int8_calibration=calibration)
            finally:
                model.train(was_training)
    if runner is not None:
        channels_last = False  # the engine has its own layout
    forward: Callable[[Tensor], Tensor] | None = (
        _compiled(model) if compile and runner is None and model is not None else model
    )
    # On a GPU the rows stay there until the end: copying each batch to the host would
    # wait for the device after every batch and leave it idle while the next is queued.
    on_device: Tensor | None = None
    with (
        _cudnn_autotune(dev),
        _inference_setup(model, channels_last),
        torch.inference_mode(),
        tqdm(total=n, desc="descriptors", unit="img", disable=not progress) as bar,
    ):
        for batch in itertools.chain([first] if first is not None else [], batch_iter):
            images, idx = _split_batch(batch)
            if idx is None:
                idx = torch.arange(position, position + images.shape[0])
            position += images.shape[0]
            images = preprocess(images.to(dev, non_blocking=True))
            if runner is not None and runner.accepts(images):
                desc = runner(images)
            else:  # torch: no engine, or one traced at another image size
                if forward is None:
                    raise ValueError(f"the engine does not take batches of shape {tuple(images.shape)}")
                if channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                with autocast:
                    desc = forward(images)
            rows = idx.cpu().numpy().astype(np.int64).reshape(-1)
            if rows.size != desc.shape[0]:
                raise ValueError(f"batch has {desc.shape[0]} images but {rows.size} indices")
            if rows.size and (rows.min() < 0 or rows.max() >= n):
                raise ValueError(f"dataset index out of range 0..{n - 1}: {rows.tolist()}")
            if filled[rows].any() or len(np.unique(rows)) != rows.size:
                raise ValueError(f"dataset index repeated: {rows.tolist()}")
            if dev.type == "cuda":
                if on_device is None:
                    on_device = torch.empty((n, desc.shape[1]), dtype=torch.float32, device=dev)
                on_device[torch.from_numpy(rows).to(dev, non_blocking=True)] = desc.float()
            else:
                if out is None:
                    out = np.empty((n, desc.shape[1]), dtype=out_np)
                out[rows] = desc.float().cpu().numpy()
            filled[rows] = True
            bar.update(rows.size)
        if on_device is not None:
            out = on_device.cpu().numpy().astype(out_np, copy=False)
    elapsed = time.perf_counter() - started
    global _LAST
    _LAST = (
        f"{n} images in {elapsed:.2f} s ({n / max(elapsed, 1e-9):.1f} img/s; "
        f"{'onnxruntime' if runner is not None else 'torch'} "
        f"{runner.precision if runner is not None else 'fp32' if amp is None else str(amp).replace('torch.', '')}"
        f"{', channels_last' if channels_last else ''}, {num_workers} decoding workers)"
    )
    log.debug("extracted %s", _LAST)
    if out is None:  # empty dataset and a model without descriptor_dim
        return np.empty((0, 0), dtype=out_np)
    if not filled.all():
        missing = np.flatnonzero(~filled)[:10].tolist()
        raise ValueError(f"dataset never yielded indices {missing} (of 0..{n - 1})")
    return out
