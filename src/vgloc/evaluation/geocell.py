"""Evaluation by geo-cell classification: the positions of a ``vgloc train geocell`` run's classifiers.

The protocol stays the one of :func:`vgloc.evaluation.protocol.evaluate`: the run's
network describes database and queries and Recall@N is retrieval with that descriptor
(the study's point: a classification-trained network is also a retrieval descriptor).
Only the *position* of each query changes: instead of a predictor over the retrieved
neighbours, it is the most probable cell of the run's classifiers
(:class:`vgloc.predict.cells.GeoCellClassifier`), at the mean of the cell's training
images or its centre, optionally combined coarse-to-fine. Every metric that depends
on the position (``median_error_m``, ``accuracy_km``, ``median_error_km``) is computed
on those positions; ``predictions.csv`` carries them, and ``cells.csv`` the top-k
cells with probabilities. The queries are described once: a recording wrapper keeps
the descriptors the retrieval computed and the classifiers read them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vgloc.describers import Describer, ExtractionOptions, IndexState

if TYPE_CHECKING:
    from vgloc.data.images import ImageInput
    from vgloc.data.records import GeoImageSet
    from vgloc.evaluation.results import DomainResult, EvalResult
    from vgloc.predict.cells import CellPredictions

__all__ = ["CELLS_CSV", "CellSettings", "evaluate_geocell"]

#: The file with each query's top-k cells and their probabilities.
CELLS_CSV = "cells.csv"


@dataclass(frozen=True)
class CellSettings:
    """How a geocell run predicts.

    Attributes:
        run: the ``vgloc train geocell`` run folder (``best_model.pt``, ``best.pt``, ``cells.npz``).
        k: top cells kept per query (``cells.csv``).
        position: ``"mean"`` (of the cell's training images) or ``"centre"`` (of its rectangle).
        hierarchical: multiply each cell's probability by its coarser cells' (coarse to fine).
        partition: which partition predicts (index coarse to fine; -1 = the finest).
    """

    run: Path
    k: int = 5
    position: str = "mean"
    hierarchical: bool = False
    partition: int = -1

    def check(self) -> None:
        """Refuse bad settings before anything loads."""
        if self.position not in ("mean", "centre"):
            raise ValueError(f"cell position must be 'mean' or 'centre', got {self.position!r}")
        if self.k < 1:
            raise ValueError(f"top-k cells must be >= 1, got {self.k}")
        missing = [f for f in ("best.pt", "best_model.pt", "cells.npz") if not (Path(self.run) / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{self.run} is not a finished `vgloc train geocell` run: missing {', '.join(missing)}"
            )

    def predict_args(self) -> dict[str, Any]:
        """The keyword arguments of :meth:`GeoCellClassifier.predict` these settings stand for."""
        return {
            "k": self.k,
            "position": self.position,
            "hierarchical": self.hierarchical,
            "partition": self.partition,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (``results.json``)."""
        return {**asdict(self), "run": str(self.run)}


class _RecordingDescriber(Describer):
    """A describer that keeps the query descriptors it computes (keyed by the image paths)."""

    def __init__(self, inner: Describer) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.default_image_size = inner.default_image_size
        self.recorded: dict[tuple[str, ...], np.ndarray] = {}

    @property
    def spec(self) -> str:
        return self.inner.spec

    @property
    def descriptor_dim(self) -> int:
        return self.inner.descriptor_dim

    def resolve_options(self, options: ExtractionOptions) -> ExtractionOptions:
        return self.inner.resolve_options(options)

    def prepare(self, database: Sequence[Path], options: ExtractionOptions, seed: int = 0) -> bool:
        return self.inner.prepare(database, options, seed)

    def describe(
        self, images: Sequence[ImageInput], options: ExtractionOptions, *, queries: bool = False
    ) -> np.ndarray:
        desc = self.inner.describe(images, options, queries=queries)
        if queries:
            self.recorded[tuple(str(p) for p in images)] = desc
        return desc

    def index_state(self) -> IndexState:
        return self.inner.index_state()

    def close(self) -> None:
        self.inner.close()


def evaluate_geocell(
    dataset: str | Path | None = None,
    split: str = "test",
    model: Any = None,
    *,
    cells: CellSettings | str | Path,
    database: str | Path | GeoImageSet | None = None,
    queries: str | Path | GeoImageSet | Mapping[str, Any] | None = None,
    index: Any = None,
    checkpoint: str | Path | None = None,
    domains: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    report: bool = True,
    seed: int = 0,
    rerank_sweep: Sequence[int] | None = None,
    **evaluate_kwargs: Any,
) -> EvalResult:
    """:func:`vgloc.evaluation.protocol.evaluate` with positions from a geocell run's classifiers.

    Args:
        dataset, split, database, queries, domains: the data, as for ``evaluate``.
        model: None, or the run's own spec (checked).
        cells: the run folder or full :class:`CellSettings`.
        index: must be None (the run's network describes the database).
        checkpoint: None, or the run's own ``best_model.pt``.
        out_dir, report, seed: outputs as for ``evaluate``, plus ``cells.csv``.
        rerank_sweep: must be None (K sweeps are a retrieval study).
        **evaluate_kwargs: the other ``evaluate`` options (recall values, metrics, options...);
            ``method`` and ``kde`` are ignored (the classifiers predict).

    Returns:
        The :class:`EvalResult`; each domain's ``predicted_latlon`` (Q, 2), ``confidence``
        (Q,) (the top cell's probability), ``error_m`` (Q,) and position metrics come from
        the classifiers, its recalls from retrieval with the run's descriptor.
    """
    from vgloc.evaluation.checks import check_out_dir
    from vgloc.evaluation.metrics import DEFAULT_METRICS, check_metric_names
    from vgloc.evaluation.protocol import evaluate, load_sets
    from vgloc.predict.cells import GeoCellClassifier

    settings = cells if isinstance(cells, CellSettings) else CellSettings(Path(cells))
    settings.check()
    if index is not None:
        raise ValueError(
            "geocell evaluation describes the database with the run's network: leave --index out"
        )
    if rerank_sweep:
        raise ValueError("a re-ranking K sweep is a retrieval study: run it with --method nearest")
    run = Path(settings.run)
    if checkpoint is not None and Path(checkpoint).resolve() != (run / "best_model.pt").resolve():
        raise ValueError(f"--checkpoint {checkpoint} is not the run's own {run / 'best_model.pt'}")
    metrics = check_metric_names(evaluate_kwargs.pop("metrics", DEFAULT_METRICS))
    check_out_dir(out_dir)
    evaluate_kwargs.pop("method", None)
    evaluate_kwargs.pop("kde", None)
    clf = GeoCellClassifier.load(run)
    clf.predict_from_logits(
        [np.zeros((0, p.num_cells)) for p in clf.partitions], partition=settings.partition
    )
    if isinstance(model, str) and model.strip().lower() != clf.describer.spec.lower():
        raise ValueError(f"the run {run} trained {clf.describer.spec}, not {model}; leave --model out")
    db, all_queries, label = load_sets(dataset, split, database, queries)
    wanted = list(all_queries) if domains is None else list(domains)
    unknown = [d for d in wanted if d not in all_queries]
    if unknown:
        raise ValueError(f"query folder(s) {unknown} not found; found: {sorted(all_queries)}")
    used = {n: all_queries[n] for n in wanted}
    recording = _RecordingDescriber(clf.describer)
    result = evaluate(
        None, split, recording, database=db, queries=used, metrics=metrics, seed=seed, **evaluate_kwargs
    )
    result.split = label
    top = {}
    for name, d in result.domains.items():
        q_set = used[name]
        desc = recording.recorded[tuple(str(p) for p in q_set.paths)]
        pred = clf.predict_from_logits(clf.logits_of(desc), **settings.predict_args())
        _replace_positions(d, pred, db, q_set, metrics, result.recall_values, result.threshold_m)
        top[name] = pred
    result.settings.update(
        {
            "method": "geocell",
            "cells": settings.to_dict(),
            "checkpoint": str(run / "best_model.pt"),
            "dataset": None if dataset is None else str(dataset),
        }
    )
    if out_dir is not None:
        from vgloc.evaluation.writers import write_outputs
        from vgloc.io import write_text_atomic

        out = Path(out_dir)
        write_outputs(result, db, used, out, report=report, seed=seed)
        write_text_atomic(out / CELLS_CSV, cells_csv(top, used))
    return result


def _replace_positions(
    d: DomainResult,
    pred: CellPredictions,
    database: GeoImageSet,
    q_set: GeoImageSet,
    metrics: Sequence[str],
    recall_values: Sequence[int],
    threshold_m: float,
) -> None:
    """Put the classifier's positions into a domain's result and recompute its metrics."""
    from vgloc.evaluation.metrics import MetricInputs, compute_metrics, metrics_for
    from vgloc.predict import PositionEstimates

    latlon = np.asarray(pred.latlon, dtype=np.float64)
    planar = database.frame is not None and bool(np.all(np.isfinite(database.utm)))
    utm = (
        np.asarray(database.frame.to_utm(latlon[:, 0], latlon[:, 1]), dtype=np.float64)
        if planar and database.frame is not None
        else np.full_like(latlon, np.nan)
    )
    confidence = np.asarray(pred.probabilities[:, 0], dtype=np.float64)
    est = PositionEstimates(
        latlon=latlon, utm=utm, confidence=confidence, frame=database.frame, planar=planar
    )
    error_m = est.errors_m(q_set)
    names = metrics_for(metrics, database, q_set)
    values = compute_metrics(
        names, MetricInputs(d.predictions, d.positives, error_m, tuple(recall_values), float(threshold_m))
    )
    d.metrics = {k: v for k, v in values.items() if not k.startswith("R@")}
    d.predicted_latlon, d.predicted_xy, d.confidence, d.error_m = latlon, utm, confidence, error_m


def cells_csv(predictions: Mapping[str, CellPredictions], queries: Mapping[str, GeoImageSet]) -> str:
    """One row per query: its top-k cells (``cell<r>``) and their probabilities (``prob<r>``), then the domain.

    Args:
        predictions: domain -> the classifier's (Q, k) cells and probabilities.
        queries: domain -> its Q query images.

    Returns:
        The CSV text, header first.
    """
    k = max((p.cells.shape[1] for p in predictions.values()), default=0)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["query", *(f"{c}{r}" for r in range(1, k + 1) for c in ("cell", "prob")), "domain"])
    for name, p in predictions.items():
        for q, path in enumerate(queries[name].paths):
            cols = [
                v for c, pr in zip(p.cells[q], p.probabilities[q], strict=True) for v in (int(c), f"{pr:.5f}")
            ]
            writer.writerow([str(path), *cols, name])
    return out.getvalue()
