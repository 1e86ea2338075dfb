"""What an evaluation produces: per-domain rankings, recalls and predicted positions.

:class:`EvalResult` is returned by :func:`vgloc.evaluate` and written by
``vgloc eval`` as ``results.json``, ``predictions.csv`` and the HTML report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from vgloc.data.records import GeoImageSet
    from vgloc.rerank.sweep import SweepPoint

__all__ = ["DomainResult", "EvalResult", "RerankedDomain"]


@dataclass
class RerankedDomain:
    """One query domain after re-ranking its top-``k`` retrieved candidates with local features.

    Attributes:
        spec: the re-ranker spec (``rootsift+mnn+ransac``, ...).
        k: how many leading candidates were re-ranked (clipped to the database size).
        fusion: None (inlier counts alone) or the fusion with the global similarity.
        recalls: ``{N: Recall@N}`` after re-ranking.
        predictions: (Q, W) database indices after re-ranking (beyond ``k``: retrieval order).
        similarities: (Q, W) global similarities aligned with ``predictions``.
        scores: (Q, W) ranking scores aligned with ``predictions`` (NaN beyond ``k``).
        inliers: (Q, W) inlier counts aligned with ``predictions`` (-1 beyond ``k``).
        ms_per_query: mean re-ranking time per query (query features + ``k`` verifications).
        database_ms_per_image: mean time to prepare one database image's local
            features before the timed part (extraction, or reading the HDF5 cache).
        sweep: Recall@N and ms/query for each K of a sweep (empty without one).
    """

    spec: str
    k: int
    fusion: str | None
    recalls: dict[int, float]
    predictions: np.ndarray = field(repr=False)
    similarities: np.ndarray = field(repr=False)
    scores: np.ndarray = field(repr=False)
    inliers: np.ndarray = field(repr=False)
    ms_per_query: float
    database_ms_per_image: float = float("nan")
    sweep: list[SweepPoint] = field(default_factory=list)

    @property
    def label(self) -> str:
        """How the re-ranking is named in tables, e.g. ``+ rootsift+mnn+ransac@100``."""
        return f"+ {self.spec}@{self.k}" + (f" ({self.fusion})" if self.fusion else "")


@dataclass
class DomainResult:
    """Recall of one query folder (domain) against the split's database.

    ``rerank`` holds the same domain after local re-ranking when ``evaluate`` was asked
    for it (``recalls``/``predictions`` here are always retrieval alone).
    """

    domain: str
    num_queries: int
    recalls: dict[int, float]
    queries_without_positives: int
    predictions: np.ndarray  # (Q, K) database indices
    similarities: np.ndarray  # (Q, K)
    positives: list[np.ndarray] = field(repr=False, default_factory=list)
    rerank: RerankedDomain | None = None
    #: Registered metrics other than Recall@N (``{"median_error_m": 31.2}``).
    metrics: dict[str, float] = field(default_factory=dict)
    #: (Q, 2) predicted positions in the database's metric frame (the predictor's output).
    predicted_xy: np.ndarray | None = field(repr=False, default=None)
    #: (Q, 2) predicted latitude/longitude (NaN where the data has none).
    predicted_latlon: np.ndarray | None = field(repr=False, default=None)
    #: (Q,) confidence of each predicted position, in (0, 1].
    confidence: np.ndarray | None = field(repr=False, default=None)
    #: (Q,) metres from each predicted position to the true one.
    error_m: np.ndarray | None = field(repr=False, default=None)


@dataclass
class EvalResult:
    """Recall@N of every evaluated query domain, with the settings that produced it."""

    split: str
    model_spec: str
    threshold_m: float
    recall_values: tuple[int, ...]
    num_database: int
    domains: dict[str, DomainResult]
    settings: dict[str, Any]
    seconds: float

    def table(self) -> str:
        """A Markdown table: one row per query domain, one column per R@N.

        With re-ranking, each domain gets a second row (``<domain> + <spec>@<K>``) with
        the re-ranked recalls, and a column with the re-ranking time per query.
        """
        reranked = any(d.rerank is not None for d in self.domains.values())
        # World-scale data adds its km accuracies (and median km) as columns after R@N.
        km = list(
            dict.fromkeys(
                k
                for d in self.domains.values()
                for k in d.metrics
                if (k.startswith("acc@") and k.endswith("km")) or k == "median_error_km"
            )
        )
        head = "| domain | queries | " + " | ".join(f"R@{n}" for n in self.recall_values) + " | no positive |"
        head += "".join(f" {k.removeprefix('acc@').replace('median_error_km', 'median km')} |" for k in km)
        rule = "|---|---:|" + "---:|" * len(self.recall_values) + "---:|" + "---:|" * len(km)
        if reranked:
            head += " re-rank ms/query |"
            rule += "---:|"
        rows = []
        for d in self.domains.values():
            row = (
                f"| {d.domain} | {d.num_queries} | "
                + " | ".join(f"{d.recalls[n]:.1f}" for n in self.recall_values)
                + f" | {d.queries_without_positives} |"
                + "".join(f" {d.metrics.get(k, float('nan')):.1f} |" for k in km)
            )
            rows.append(row + (" |" if reranked else ""))
            if d.rerank is not None:
                r = d.rerank
                rows.append(
                    f"| {d.domain} {r.label} | {d.num_queries} | "
                    + " | ".join(f"{r.recalls[n]:.1f}" for n in self.recall_values)
                    + f" | {d.queries_without_positives} |"
                    + " |" * len(km)
                    + f" {r.ms_per_query:.1f} |"
                )
        return "\n".join([head, rule, *rows])

    def to_dict(
        self, database: GeoImageSet | None = None, queries: dict[str, GeoImageSet] | None = None
    ) -> dict:
        """JSON-ready results, including each query's top-K predictions."""
        out: dict[str, Any] = {
            "split": self.split,
            "model_spec": self.model_spec,
            "threshold_m": self.threshold_m,
            "recall_values": list(self.recall_values),
            "num_database": self.num_database,
            "seconds": round(self.seconds, 2),
            "settings": self.settings,
            "domains": {},
        }
        for name, d in self.domains.items():
            per_query = []
            for q in range(d.num_queries):
                row: dict[str, Any] = {
                    "predictions": d.predictions[q].tolist(),
                    "similarities": [round(float(s), 5) for s in d.similarities[q]],
                    "positives": d.positives[q].tolist() if d.positives else None,
                }
                if queries is not None:
                    row["query"] = str(queries[name].paths[q])
                if database is not None:
                    row["prediction_paths"] = [str(database.paths[i]) for i in d.predictions[q] if i >= 0]
                if d.rerank is not None:
                    # The re-ranked top-K, with each candidate's inliers and ranking score.
                    rk = d.rerank.k
                    row["rerank"] = {
                        "predictions": d.rerank.predictions[q, :rk].tolist(),
                        "inliers": d.rerank.inliers[q, :rk].tolist(),
                        "scores": [None if s != s else round(float(s), 5) for s in d.rerank.scores[q, :rk]],
                    }
                per_query.append(row)
            domain: dict[str, Any] = {
                "num_queries": d.num_queries,
                "recalls": {str(n): v for n, v in d.recalls.items()},
                "queries_without_positives": d.queries_without_positives,
                "metrics": {k: (None if v != v else round(v, 3)) for k, v in d.metrics.items()},
            }
            acc = {k[4:-2]: v for k, v in d.metrics.items() if k.startswith("acc@") and k.endswith("km")}
            if acc:  # world-scale data: threshold in km -> percent of queries within it
                domain["accuracy_km"] = {t: (None if v != v else round(v, 3)) for t, v in acc.items()}
            if d.rerank is not None:
                r = d.rerank
                domain["rerank"] = {
                    "spec": r.spec,
                    "k": r.k,
                    "fusion": r.fusion,
                    "recalls": {str(n): v for n, v in r.recalls.items()},
                    "ms_per_query": round(r.ms_per_query, 3),
                    "database_ms_per_image": None
                    if r.database_ms_per_image != r.database_ms_per_image
                    else round(r.database_ms_per_image, 3),
                    "sweep": [p.to_dict() for p in r.sweep],
                }
            domain["queries"] = per_query
            out["domains"][name] = domain
        return out
