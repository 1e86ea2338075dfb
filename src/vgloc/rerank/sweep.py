"""Recall and cost against the number of re-ranked candidates K (a K sweep), and its files.

Built on :func:`vgloc.rerank.run.score_candidates`: the top K are scored once at the
largest K, and each smaller K re-orders only its first K candidates with their own
scores (:meth:`~vgloc.rerank.run.CandidateScores.rerank`), exactly as if only K had been
retrieved and verified. The time at K is the measured cost of K candidates.

Example:
    >>> scores = score_candidates(q_paths, db_paths, preds, sims, "rootsift+mnn+ransac", k=100)
    >>> curve = rerank_sweep(scores, [1, 5, 10, 20, 50, 100], positives)
    >>> write_sweep({"queries": curve}, "runs/sweep")
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vgloc.io import atomic_path, write_text_atomic

if TYPE_CHECKING:
    from vgloc.rerank.run import CandidateScores

__all__ = [
    "DEFAULT_SWEEP_KS",
    "SWEEP_STEM",
    "SweepPoint",
    "check_sweep_ks",
    "rerank_sweep",
    "sweep_table",
    "write_sweep",
]

#: The K values of a default sweep (Patch-NetVLAD's n_values, PROTOCOLS 5).
DEFAULT_SWEEP_KS: tuple[int, ...] = (1, 5, 10, 20, 50, 100)
#: File stem of the sweep outputs (``rerank_sweep.csv``, ``.md``, ``.png``).
SWEEP_STEM = "rerank_sweep"


@dataclass(frozen=True)
class SweepPoint:
    """Recall and cost of re-ranking the top ``k`` candidates.

    Attributes:
        k: the number of re-ranked candidates.
        recalls: ``{N: Recall@N in percent}`` after re-ranking the top ``k``.
        ms_per_query: mean time to re-rank ``k`` candidates of one query (ms).
    """

    k: int
    recalls: dict[int, float]
    ms_per_query: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "k": self.k,
            "recalls": {str(n): v for n, v in self.recalls.items()},
            "ms_per_query": round(self.ms_per_query, 3),
        }


def check_sweep_ks(ks: Sequence[int], limit: int | None = None) -> list[int]:
    """Validate sweep K values: sorted, distinct, >= 1, optionally clipped to ``limit``.

    Args:
        ks: the K values.
        limit: clip each K to at most this (e.g. the database size); duplicates that
            clipping creates are merged.

    Returns:
        The sorted distinct K values.

    Raises:
        ValueError: naming a value that is not a positive integer, or an empty list.
    """
    values = list(ks)
    if not values:
        raise ValueError("the K sweep needs at least one K value")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"sweep K values must be positive integers, got {v!r}")
    if limit is not None:
        values = [min(int(v), int(limit)) for v in values]
    return sorted({int(v) for v in values})


def rerank_sweep(
    scores: CandidateScores,
    ks: Sequence[int],
    positives: Sequence[np.ndarray],
    recall_values: Sequence[int] = (1,),
) -> list[SweepPoint]:
    """Recall and time per query as a function of the number of re-ranked candidates.

    Each K re-orders only the first K candidates with their own scores (the scoring
    itself ran once, at ``scores.k``); the time is the measured time of scoring K
    candidates (see :meth:`CandidateScores.ms_per_query`).

    Args:
        scores: the candidates scored by :func:`score_candidates`.
        ks: the K values (each ``<= scores.k``).
        positives: Q arrays of positive database indices.
        recall_values: the N of Recall@N to report at each K.

    Returns:
        One :class:`SweepPoint` per K, in increasing K.
    """
    from vgloc.evaluation.recall import recall_at_n

    if len(positives) != scores.num_queries:
        raise ValueError(f"{len(positives)} positive lists but {scores.num_queries} queries")
    points = []
    for k in check_sweep_ks(ks):
        rr = scores.rerank(k)
        points.append(SweepPoint(k, recall_at_n(rr.predictions, positives, recall_values), rr.ms_per_query))
    return points


def _recall_columns(curves: Mapping[str, Sequence[SweepPoint]]) -> list[int]:
    ns: set[int] = set()
    for points in curves.values():
        for p in points:
            ns.update(p.recalls)
    return sorted(ns)


def sweep_table(
    curves: Mapping[str, Sequence[SweepPoint]], baseline: Mapping[str, Mapping[int, float]] | None = None
) -> str:
    """A Markdown table of sweep curves: one row per (domain, K).

    Args:
        curves: ``{domain: points}``.
        baseline: ``{domain: {N: Recall@N}}`` of retrieval alone, written as a ``K = 0`` row.

    Returns:
        The Markdown text.
    """
    ns = _recall_columns(curves)
    lines = [
        "| domain | K | " + " | ".join(f"R@{n}" for n in ns) + " | ms/query |",
        "|---|---:|" + "---:|" * len(ns) + "---:|",
    ]
    for domain, points in curves.items():
        if baseline and domain in baseline:
            base = baseline[domain]
            cells = " | ".join(f"{base[n]:.1f}" if n in base else "" for n in ns)
            lines.append(f"| {domain} | 0 (retrieval) | {cells} | 0 |")
        for p in points:
            cells = " | ".join(f"{p.recalls[n]:.1f}" if n in p.recalls else "" for n in ns)
            lines.append(f"| {domain} | {p.k} | {cells} | {p.ms_per_query:.1f} |")
    return "\n".join(lines)


def write_sweep(
    curves: Mapping[str, Sequence[SweepPoint]],
    out_dir: str | os.PathLike[str],
    *,
    title: str = "re-ranking sweep",
    baseline: Mapping[str, Mapping[int, float]] | None = None,
    stem: str = SWEEP_STEM,
) -> dict[str, Path]:
    """Write a sweep as CSV, Markdown and a PNG plot of Recall@1 and ms/query against K.

    Args:
        curves: ``{domain: points}`` (points from :func:`rerank_sweep`).
        out_dir: the output folder (created).
        title: the plot title.
        baseline: ``{domain: {N: Recall@N}}`` of retrieval alone: a ``K = 0`` row in the
            tables and a dashed line in the plot.
        stem: the file name stem.

    Returns:
        ``{"csv": path, "md": path, "png": path}``.
    """
    if not curves or not any(curves.values()):
        raise ValueError("no sweep points to write")
    out = Path(out_dir)
    ns = _recall_columns(curves)

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["domain", "k", *(f"recall@{n}" for n in ns), "ms_per_query"])
    for domain, points in curves.items():
        if baseline and domain in baseline:
            writer.writerow([domain, 0, *(baseline[domain].get(n, "") for n in ns), 0.0])
        for p in points:
            writer.writerow([domain, p.k, *(p.recalls.get(n, "") for n in ns), round(p.ms_per_query, 3)])
    paths = {
        "csv": write_text_atomic(out / f"{stem}.csv", buf.getvalue()),
        "md": write_text_atomic(out / f"{stem}.md", f"# {title}\n\n" + sweep_table(curves, baseline) + "\n"),
    }

    # A bare Figure (no pyplot) renders with Agg and leaves the global backend state alone.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_r, ax_t = fig.subplots(1, 2)
    for i, (domain, points) in enumerate(curves.items()):
        if not points:
            continue
        colour = f"C{i % 10}"
        ks = [p.k for p in points]
        ax_r.plot(ks, [p.recalls.get(1, np.nan) for p in points], "o-", c=colour, label=domain)
        if baseline and domain in baseline and 1 in baseline[domain]:
            ax_r.axhline(baseline[domain][1], c=colour, ls="--", lw=1, label=f"{domain}, retrieval only")
        ax_t.plot(ks, [p.ms_per_query for p in points], "o-", c=colour, label=domain)
    all_ks = sorted({p.k for points in curves.values() for p in points})
    for ax in (ax_r, ax_t):
        ax.set_xscale("log")
        # Label the swept K values themselves (1, 5, 10, ...) rather than powers of ten.
        ax.set_xticks(all_ks, [str(k) for k in all_ks])
        ax.minorticks_off()
        ax.set_xlabel("K (re-ranked candidates)")
        ax.grid(True, alpha=0.3)
    ax_r.set_ylabel("Recall@1 (%)")
    ax_r.set_ylim(-2, 102)
    ax_r.legend(fontsize=7)
    ax_t.set_ylabel("re-ranking time per query (ms)")
    ax_t.legend(fontsize=7)
    fig.suptitle(title)
    with atomic_path(out / f"{stem}.png", suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    paths["png"] = out / f"{stem}.png"
    return paths
