"""Validation recall after each epoch, computed by the evaluation protocol itself.

:func:`validation_recalls` wraps the network being trained (with the trainer's
cached image loader) in a :class:`~vgloc.describers.Describer` and runs
:func:`vgloc.evaluation.evaluate_sets`, the code behind ``vgloc eval``: exact search
(a ``Flat`` index), positives within the threshold, Recall@N over all queries.
Images are resized as in :func:`vgloc.data.build_transform`, so ``vgloc eval
--image-size H,W`` on the exported model gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vgloc.data.layouts import BenchmarkSplit
from vgloc.describers import Describer, ExtractionOptions, IndexState

__all__ = ["TrainingDescriber", "metric_value", "validation_recalls"]


class TrainingDescriber(Describer):
    """The network being trained, reading images through the trainer's datasets.

    Args:
        model: maps images to L2-normalised descriptors (left in its original mode).
        dataset_factory: ``f(paths) -> Dataset`` yielding ``(image, index)``.
        extract_kwargs: keyword arguments of :func:`vgloc.models.extract_descriptors`.
    """

    kind = "training"

    def __init__(
        self, model: nn.Module, dataset_factory: Callable[[Sequence[Path]], Any], **extract_kwargs: Any
    ):
        self.model = model
        self.dataset_factory = dataset_factory
        self.extract_kwargs = extract_kwargs

    @property
    def spec(self) -> str:
        return str(getattr(self.model, "spec", type(self.model).__name__))

    @property
    def descriptor_dim(self) -> int:
        return int(getattr(self.model, "descriptor_dim", 0))

    def describe(
        self, images: Sequence[Any], options: ExtractionOptions, *, queries: bool = False
    ) -> np.ndarray:
        from vgloc.models import extract_descriptors

        return extract_descriptors(self.model, self.dataset_factory(list(images)), **self.extract_kwargs)

    def index_state(self) -> IndexState:
        # Validation searches in memory; an index of a network mid-training would be stale.
        raise TypeError(
            "a network under training is not indexed: export it (best_model.pt) and build an index from that"
        )


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
    from vgloc.evaluation import evaluate_sets

    describer = TrainingDescriber(
        model,
        dataset_factory,
        batch_size=batch_size,
        device=device,
        precision=precision,
        channels_last=channels_last,
        num_workers=num_workers,
        progress=progress,
    )
    results = evaluate_sets(
        describer,
        split.database,
        {name: split.queries[name] for name in domains},
        options=ExtractionOptions(progress=progress),
        recall_values=tuple(sorted({int(n) for n in recall_values})),
        threshold_m=threshold_m,
        metrics=("recall",),
    )
    return {name: d.recalls for name, d in results.items()}


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
