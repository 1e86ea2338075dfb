"""Positions from geo-cell classifier outputs: top-k cells with probabilities, and a lat/lon.

A classifier trained on a partition (:mod:`vgloc.geo.cells`,
``vgloc train geocell``) gives each query one logit per cell. The prediction is
the most probable cell's position: its rectangle's centre (PlaNet) or the mean
position of its training images (``"mean"``, the default: it sits where the photos
are, not in the sea next to a coastal city). With several partitions,
:func:`combine_partitions` multiplies each fine cell's probability by those of the
coarser cells containing it (GeoEstimation's hierarchy; PROTOCOLS.md section 8 marks
the exact scheme unverified).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vgloc.geo.cells import CellPartition

__all__ = ["CellPredictions", "GeoCellClassifier", "cell_predictions", "combine_partitions"]


@dataclass
class CellPredictions:
    """Per-query classifier predictions.

    Attributes:
        latlon: (Q, 2) degrees, the position of each query's most probable cell.
        cells: (Q, k) cell indices, most probable first.
        probabilities: (Q, k) their softmax probabilities.
    """

    latlon: np.ndarray
    cells: np.ndarray
    probabilities: np.ndarray


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(1, keepdims=True))


def cell_predictions(
    logits: np.ndarray, partition: CellPartition, k: int = 5, position: str = "mean"
) -> CellPredictions:
    """Top-``k`` cells with probabilities and the position of the best one.

    Args:
        logits: (Q, C) classifier outputs for the partition's C cells (or probabilities
            already, see :func:`combine_partitions`: pass their log).
        partition: the partition the classifier was trained on.
        k: cells to keep per query (clipped to C).
        position: ``"mean"`` (mean of the cell's training images) or ``"centre"``.

    Returns:
        The :class:`CellPredictions`.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] != partition.num_cells:
        raise ValueError(f"logits of shape {z.shape} for a partition of {partition.num_cells} cells")
    targets = partition.cell_latlon(position)
    prob = _softmax(z)
    k = max(1, min(int(k), partition.num_cells))
    top = np.argsort(-prob, axis=1, kind="stable")[:, :k]
    return CellPredictions(
        latlon=targets[top[:, 0]].copy(),
        cells=top,
        probabilities=np.take_along_axis(prob, top, 1),
    )


def combine_partitions(logits: Sequence[np.ndarray], partitions: Sequence[CellPartition]) -> np.ndarray:
    """Hierarchical log-probabilities of the finest partition's cells.

    Each fine cell's probability is multiplied by the probability of the cell
    containing its centre in every coarser partition (coarse cells dropped for
    sparseness contribute nothing).

    Args:
        logits: one (Q, C_p) array per partition, coarse to fine (the last is the finest).
        partitions: the partitions, same order.

    Returns:
        (Q, C_last) log-probabilities (pass them to :func:`cell_predictions` as logits).
    """
    if len(logits) != len(partitions) or not partitions:
        raise ValueError(f"{len(logits)} logit arrays for {len(partitions)} partitions")
    fine = partitions[-1]
    out = np.log(np.clip(_softmax(logits[-1]), 1e-300, None))
    for z, part in zip(logits[:-1], partitions[:-1], strict=True):
        parent = part.lookup(fine.centres)  # (C_last,) coarse cell of each fine cell
        prob = np.clip(_softmax(z), 1e-300, None)
        keep = parent >= 0
        out[:, keep] += np.log(prob[:, parent[keep]])
    return np.asarray(out)


@dataclass
class GeoCellClassifier:
    """A trained ``vgloc train geocell`` run: describer, one classifier per partition, the partitions.

    Attributes:
        describer: the trained network (its descriptors feed the classifiers).
        heads: one ``MarginHead`` (cosine classifier) per partition, coarse to fine.
        partitions: the :class:`~vgloc.geo.cells.CellPartition` s they classify into.
    """

    describer: Any
    heads: list[Any]
    partitions: list[CellPartition]

    @classmethod
    def load(cls, run_dir: str | Path) -> GeoCellClassifier:
        """Load a run folder: the best epoch's network (``best_model.pt``) and classifiers (``best.pt``), ``cells.npz``.

        Raises:
            FileNotFoundError: a file of the run is missing (``best.pt`` exists once an epoch was validated).
            ValueError: not a geocell run, or its classifiers do not match the partitions file.
        """
        import torch

        from vgloc.describers import resolve_describer
        from vgloc.geo.cells import load_partitions
        from vgloc.losses.margin import MarginHead

        run = Path(run_dir)
        ckpt = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
        if ckpt.get("method") != "geocell":
            raise ValueError(f"{run / 'best.pt'} is a {ckpt.get('method')!r} run, not geocell")
        partitions = load_partitions(run / "cells.npz")
        state = ckpt["method_state"]
        if state["num_cells"] != [p.num_cells for p in partitions]:
            raise ValueError(
                f"{run}: the classifiers have {state['num_cells']} cells, cells.npz {[p.num_cells for p in partitions]}"
            )
        describer = resolve_describer(ckpt["model_spec"], run / "best_model.pt")
        heads = torch.nn.ModuleList(
            [
                MarginHead(int(describer.descriptor_dim), p.num_cells, s=float(state.get("scale", 30.0)))
                for p in partitions
            ]
        )
        heads.load_state_dict(state["heads"])
        heads.eval()
        return cls(describer=describer, heads=list(heads), partitions=partitions)

    def logits(self, images: Sequence[Any], options: Any = None) -> list[np.ndarray]:
        """One (N, C_p) logit array per partition for N images (files or in-memory images)."""
        from vgloc.describers import ExtractionOptions

        desc = self.describer.describe(images, options or ExtractionOptions(progress=False), queries=True)
        return self.logits_of(desc)

    def logits_of(self, descriptors: np.ndarray) -> list[np.ndarray]:
        """One (N, C_p) logit array per partition for (N, D) descriptors of this run's network.

        Lets a caller that already described the images (an evaluation's retrieval) classify
        them without describing them again.
        """
        import torch

        x = np.asarray(descriptors, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != int(self.describer.descriptor_dim):
            raise ValueError(
                f"descriptors of shape {x.shape} for a {self.describer.descriptor_dim}-D network"
            )
        with torch.no_grad():
            t = torch.from_numpy(x)
            return [h(t).numpy().astype(np.float64) for h in self.heads]

    def predict(
        self,
        images: Sequence[Any],
        *,
        k: int = 5,
        position: str = "mean",
        hierarchical: bool = False,
        partition: int = -1,
        options: Any = None,
    ) -> CellPredictions:
        """Top-``k`` cells of one partition (the finest by default) and the predicted lat/lon of each image.

        Args:
            images: N image files or in-memory images.
            k: cells kept per image.
            position: ``"mean"`` (of the cell's training images) or ``"centre"``.
            hierarchical: combine with the coarser partitions (:func:`combine_partitions`).
            partition: which partition predicts (index, coarse to fine; -1 = the finest).
            options: extraction options (default: the describer's size, no progress bar).
        """
        return self.predict_from_logits(
            self.logits(images, options),
            k=k,
            position=position,
            hierarchical=hierarchical,
            partition=partition,
        )

    def predict_from_logits(
        self,
        logits: Sequence[np.ndarray],
        *,
        k: int = 5,
        position: str = "mean",
        hierarchical: bool = False,
        partition: int = -1,
    ) -> CellPredictions:
        """:meth:`predict` from the per-partition logits of :meth:`logits` / :meth:`logits_of`.

        Args:
            logits: one (N, C_p) array per partition, coarse to fine.
            k, position, hierarchical, partition: as in :meth:`predict`; with ``hierarchical``
                the chosen partition is combined with every coarser one.

        Raises:
            ValueError: ``partition`` out of range, or ``position`` unknown.
        """
        n = len(self.partitions)
        if not -n <= partition < n:
            raise ValueError(
                f"partition {partition} of a run with {n} partition(s) (0..{n - 1}, -1 = finest)"
            )
        last = partition % n
        z, parts = list(logits[: last + 1]), self.partitions[: last + 1]
        fine = combine_partitions(z, parts) if hierarchical and last > 0 else z[-1]
        return cell_predictions(fine, parts[-1], k=k, position=position)
