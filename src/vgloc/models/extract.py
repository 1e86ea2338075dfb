"""Batch descriptor extraction: dataset -> ``np.ndarray[N, D]`` in dataset order."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

__all__ = ["PRECISIONS", "autocast_dtype", "extract_descriptors"]

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision name on a device (``None``: plain fp32).

    Args:
        precision: ``"fp32"``, ``"bf16"``, ``"fp16"`` or ``"auto"`` (fp16 on CUDA,
            fp32 elsewhere).
        device: Where the model runs.

    Returns:
        ``torch.bfloat16``, ``torch.float16`` or ``None``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    return _DTYPES[precision]


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
def _inference_setup(model: nn.Module, channels_last: bool) -> Iterator[None]:
    """eval() and optional channels_last for the duration; both restored afterwards."""
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


def extract_descriptors(
    model: nn.Module,
    dataset: Dataset[Any],
    *,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    channels_last: bool = False,
    num_workers: int = 0,
    progress: bool = True,
    out_dtype: Any = np.float32,
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
            ``"auto"`` = fp16 autocast on CUDA, fp32 on CPU.
        channels_last: Run convolutions in NHWC (faster on recent GPUs and CPUs).
        num_workers: DataLoader worker processes.
        progress: Show a tqdm progress bar.
        out_dtype: ``np.float32`` or ``np.float16`` (halves the memory of large
            databases; descriptors are computed in float32 and cast at the end).

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
    amp = autocast_dtype(precision, dev)
    n = len(dataset)  # type: ignore[arg-type]
    dim = getattr(model, "descriptor_dim", None)
    out = np.empty((n, int(dim)), dtype=out_np) if dim is not None else None
    filled = np.zeros(n, dtype=bool)
    loader = DataLoader(
        dataset,
        batch_size=int(batch_size),
        shuffle=False,
        num_workers=num_workers,
        pin_memory=dev.type == "cuda",
    )
    model.to(dev)
    autocast = (
        torch.autocast(device_type=dev.type, dtype=amp) if amp is not None else contextlib.nullcontext()
    )
    position = 0
    with (
        _inference_setup(model, channels_last),
        torch.inference_mode(),
        tqdm(total=n, desc="descriptors", unit="img", disable=not progress) as bar,
    ):
        for batch in loader:
            images, idx = _split_batch(batch)
            if idx is None:
                idx = torch.arange(position, position + images.shape[0])
            position += images.shape[0]
            images = images.to(dev, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast:
                desc = model(images)
            rows = idx.cpu().numpy().astype(np.int64).reshape(-1)
            if rows.size != desc.shape[0]:
                raise ValueError(f"batch has {desc.shape[0]} images but {rows.size} indices")
            if rows.size and (rows.min() < 0 or rows.max() >= n):
                raise ValueError(f"dataset index out of range 0..{n - 1}: {rows.tolist()}")
            if filled[rows].any() or len(np.unique(rows)) != rows.size:
                raise ValueError(f"dataset index repeated: {rows.tolist()}")
            if out is None:
                out = np.empty((n, desc.shape[1]), dtype=out_np)
            out[rows] = desc.float().cpu().numpy()
            filled[rows] = True
            bar.update(rows.size)
    if out is None:  # empty dataset and a model without descriptor_dim
        return np.empty((0, 0), dtype=out_np)
    if not filled.all():
        missing = np.flatnonzero(~filled)[:10].tolist()
        raise ValueError(f"dataset never yielded indices {missing} (of 0..{n - 1})")
    return out
