"""Validation recall after each epoch, with the recall code of ``vgloc eval``.

The descriptors of the val database and query folders are computed in memory with
:func:`vgloc.models.extract_descriptors`, searched exactly (inner product on
L2-normalised descriptors, :func:`vgloc.index.exact_search`, the oracle behind a
``Flat`` index), and scored with :func:`vgloc.geo.positives_within` and
:func:`vgloc.evaluation.recall.recall_at_n`, the same functions
:func:`vgloc.api.evaluate` uses. Images are resized as in :func:`vgloc.data.build_transform`,
so ``vgloc eval --resize H,W`` on the exported model gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from vgloc.data.layouts import BenchmarkSplit
from vgloc.evaluation.recall import recall_at_n
from vgloc.geo import positives_within

__all__ = ["metric_value", "validation_recalls"]


def validation_recalls(
    model: nn.Module,
    split: BenchmarkSplit,
    dataset_factory: Any,
    *,
    domains: Sequence[str],
    recall_values: Sequence[int],
    threshold_m: float,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
    channels_last: bool = False,
    num_workers: int = 0,
    progress: bool = False,
) -> dict[str, dict[int, float]]:
    """Recall@N of each validation query folder against the split's database.

    Args:
        model: Maps images to L2-normalised descriptors (left in its original mode).
        split: The validation split.
        dataset_factory: ``f(paths) -> Dataset`` yielding ``(image, index)``,
            e.g. ``lambda p: ImageDataset(p, build_transform(size))``.
        domains: Query folders to score.
        recall_values: The N of R@N.
        threshold_m: Positive radius in metres.
        batch_size: Inference batch size.
        device: Where the model runs.
        precision: ``fp32``, ``bf16`` or ``fp16`` autocast.
        channels_last: NHWC inference.
        num_workers: DataLoader workers.
        progress: Progress bars.

    Returns:
        ``{domain: {N: recall %}}``; ``{"mean": ...}`` is not included (see
        :func:`metric_value`).
    """
    from vgloc.index import exact_search
    from vgloc.models import extract_descriptors

    kw: dict[str, Any] = dict(
        batch_size=batch_size,
        device=device,
        precision=precision,
        channels_last=channels_last,
        num_workers=num_workers,
        progress=progress,
    )
    db_desc = extract_descriptors(model, dataset_factory(split.database.paths), **kw)
    k = max(recall_values)
    out: dict[str, dict[int, float]] = {}
    for name in domains:
        queries = split.queries[name]
        q_desc = extract_descriptors(model, dataset_factory(queries.paths), **kw)
        _, ids = exact_search(db_desc, q_desc, k)
        if ids.shape[1] < k:  # a database smaller than max(N): empty slots never match
            ids = np.pad(ids, ((0, 0), (0, k - ids.shape[1])), constant_values=-1)
        positives = positives_within(split.database.utm, queries.utm, threshold_m)
        out[name] = recall_at_n(ids, positives, recall_values)
    return out


def metric_value(recalls: dict[str, dict[int, float]], metric: str) -> float:
    """The selection metric ``R@N`` averaged over domains.

    Args:
        recalls: From :func:`validation_recalls`.
        metric: ``"R@N"``.

    Returns:
        The mean recall in percent.
    """
    n = int(metric.strip().upper().removeprefix("R@"))
    return float(np.mean([r[n] for r in recalls.values()]))
