"""The evaluation protocol: describe, search, score every query domain — one code path.

``vgloc eval``, ``vgloc demo``, :func:`vgloc.evaluate` and training validation all run
:func:`evaluate_sets`: positives are database images within ``threshold_m`` of a
query (UTM metres for data in one zone, as the field's benchmarks; great-circle
metres otherwise), a query is correct at N when any of its top N is a positive, and
the denominator is all queries (:mod:`vgloc.evaluation.recall`). Every registered
metric (:mod:`vgloc.evaluation.metrics`) is computed per domain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vgloc.describers import Describer, ExtractionOptions
from vgloc.describers.multiscale import apply_scales, scale_settings
from vgloc.evaluation.checks import check_out_dir, clip_recall_values
from vgloc.evaluation.members import resolve_evaluated, run_settings, select_domains
from vgloc.evaluation.metrics import (
    DEFAULT_METRICS,
    MetricInputs,
    check_metric_names,
    compute_metrics,
    metrics_for,
)
from vgloc.evaluation.recall import DEFAULT_RECALL_VALUES, DEFAULT_THRESHOLD_M, count_without_positives
from vgloc.evaluation.rerank import RerankSettings, rerank_domain
from vgloc.evaluation.results import DomainResult, EvalResult
from vgloc.predict import DEFAULT_KDE, KDEParams, kde_params_for

if TYPE_CHECKING:
    from vgloc.data.records import GeoImageSet
    from vgloc.index import GeoIndex
    from vgloc.local import FeatureCache

__all__ = [
    "DEFAULT_MODEL",
    "build_memory_index",
    "evaluate",
    "evaluate_rankings",
    "evaluate_sets",
    "load_sets",
]

#: The network evaluated when neither a model nor an index is given (CosPlace's architecture).
DEFAULT_MODEL = "resnet18+gem+fc512"

log = logging.getLogger(__name__)


def load_sets(
    dataset: str | Path | None,
    split: str,
    database: str | Path | GeoImageSet | None,
    queries: str | Path | GeoImageSet | Mapping[str, Any] | None,
    *,
    progress: bool = False,
) -> tuple[GeoImageSet, dict[str, GeoImageSet], str]:
    """The database and query domains of an evaluation, and a label for them.

    Either ``dataset`` (the benchmark tree: ``images/<split>/database`` and
    ``queries*`` folders) or both ``database`` and ``queries`` (any layout: @UTM@
    folders, EXIF folders, CSV/Parquet manifests, or loaded sets; ``queries`` may map
    domain names to any of those). Queries are brought into the database's frame.
    """
    from vgloc.data import GeoImageSet, load_image_set, load_split

    if dataset is not None:
        if database is not None or queries is not None:
            raise ValueError("give either a dataset root or --database/--queries, not both")
        bench = load_split(dataset, split, progress=progress)
        return bench.database, dict(bench.queries), split
    if database is None or queries is None:
        raise ValueError("evaluation needs a dataset root, or both a database and queries")

    def load(item: Any) -> GeoImageSet:
        if isinstance(item, GeoImageSet):
            return item
        return load_image_set(item, validate=True, progress=progress)

    db = load(database)
    if isinstance(queries, Mapping):
        domains = {str(name): load(q) for name, q in queries.items()}
    else:
        q_set = load(queries)
        name = "queries" if isinstance(queries, GeoImageSet) else Path(queries).stem or "queries"
        domains = {name: q_set}
    if len(db) == 0:
        raise ValueError("the database has no images")
    for name, q in domains.items():
        if len(q) == 0:
            raise ValueError(f"query set {name!r} has no images")
    # One frame for all: the database's UTM zone when every set fits it, else the sphere.
    from vgloc.data.records import align_frames

    db, aligned = align_frames(db, list(domains.values()))
    return db, dict(zip(domains, aligned, strict=True)), "custom"


def evaluate_sets(
    describer: Describer,
    database: GeoImageSet,
    queries: Mapping[str, GeoImageSet],
    *,
    options: ExtractionOptions,
    recall_values: Sequence[int] = DEFAULT_RECALL_VALUES,
    threshold_m: float = DEFAULT_THRESHOLD_M,
    index: GeoIndex | None = None,
    factory: str = "Flat",
    search_params: str | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    method: str = "nearest",
    kde: KDEParams = DEFAULT_KDE,
    rerank: RerankSettings | None = None,
) -> dict[str, DomainResult]:
    """Score every query domain against one database (the protocol's core).

    Args:
        describer: describes database (unless ``index`` holds them) and queries.
        database: M geotagged database images.
        queries: domain name -> Q_d geotagged query images, in the database's frame.
        options: extraction options.
        recall_values: the N of R@N (already clipped to the database size).
        threshold_m: the positive radius in metres.
        index: a prebuilt index of exactly ``database``; None builds one in memory.
        factory, search_params: the FAISS index searched (``Flat`` = exact).
        metrics: registered metric names.
        method, kde: the position predictor behind ``error_m`` and the confidence.
        rerank: local re-ranking settings, or None.

    Returns:
        domain -> :class:`DomainResult` (rankings ``(Q, K)``, recalls, metrics, positions).
    """

    options = describer.resolve_options(options)  # "auto" size -> the describer's own
    if index is None:
        index = build_memory_index(describer, database, options, factory, search_params)
    idx: GeoIndex = index

    def search(name: str, q_set: GeoImageSet, k: int) -> tuple[np.ndarray, np.ndarray]:
        q_desc = describer.describe(q_set.paths, options, queries=True)
        return idx.search(q_desc, k, search_params, device=options.device)

    return evaluate_rankings(
        database,
        queries,
        search,
        recall_values=recall_values,
        threshold_m=threshold_m,
        metrics=metrics,
        method=method,
        kde=kde,
        rerank=rerank,
    )


def build_memory_index(
    describer: Describer,
    database: GeoImageSet,
    options: ExtractionOptions,
    factory: str = "Flat",
    search_params: str | None = None,
) -> GeoIndex:
    """Describe the M database images and index them in memory (``factory``, ``Flat`` = exact)."""
    from vgloc.index import GeoIndex
    from vgloc.indexing import default_search_params

    options = describer.resolve_options(options)
    db_desc = describer.describe(database.paths, options)
    return GeoIndex.build(
        db_desc,
        database,
        model_spec=describer.spec,
        image_size=options.image_size,
        factory=factory,
        search_params=default_search_params(factory, search_params),
    )


def evaluate_rankings(
    database: GeoImageSet,
    queries: Mapping[str, GeoImageSet],
    search: Callable[[str, GeoImageSet, int], tuple[np.ndarray, np.ndarray]],
    *,
    recall_values: Sequence[int] = DEFAULT_RECALL_VALUES,
    threshold_m: float = DEFAULT_THRESHOLD_M,
    metrics: Sequence[str] = DEFAULT_METRICS,
    method: str = "nearest",
    kde: KDEParams = DEFAULT_KDE,
    rerank: RerankSettings | None = None,
) -> dict[str, DomainResult]:
    """Score every query domain from the rankings ``search`` returns (the protocol's scoring half).

    :func:`evaluate_sets` searches one describer's index; an ensemble
    (:mod:`vgloc.evaluation.ensemble`) searches each model's and fuses the lists.

    Args:
        database: M geotagged database images (the ids index it).
        queries: domain name -> Q_d geotagged query images, in the database's frame.
        search: ``(domain, query set, K) -> (similarities (Q_d, K'), ids (Q_d, K'))``, best
            first, ``K' <= K``, ids -1 for empty slots.
        recall_values, threshold_m, metrics, method, kde, rerank: see :func:`evaluate_sets`.

    Returns:
        domain -> :class:`DomainResult`.
    """
    from dataclasses import asdict

    from vgloc.geo import positives
    from vgloc.predict import estimate_positions

    recall_values = tuple(recall_values)
    metrics = metrics_for(metrics, database, *queries.values())  # + km accuracies on world-wide data
    kde = kde_params_for(kde, database)  # k=100, m=10, sigma=4 km on world-wide data left at defaults
    k = max(max(recall_values), kde.k if method == "kde" else 1)
    if rerank is not None:
        k = max(k, rerank.score_k)
    results: dict[str, DomainResult] = {}
    for name, q_set in queries.items():
        sims, ids = search(name, q_set, k)
        if ids.shape[1] < k:  # a database smaller than K: empty slots never match
            pad = ((0, 0), (0, k - ids.shape[1]))
            ids = np.pad(ids, pad, constant_values=-1)
            sims = np.pad(sims, pad, constant_values=np.nan)
        # UTM metres when database and queries share a zone (the field's protocol), else great circles.
        positive_ids = positives(database, q_set, threshold_m)
        est = estimate_positions(sims, ids, database, method, **asdict(kde))
        error_m = est.errors_m(q_set)
        values = compute_metrics(
            metrics, MetricInputs(ids, positive_ids, error_m, recall_values, float(threshold_m))
        )
        recalls = {n: values.pop(f"R@{n}") for n in recall_values if f"R@{n}" in values}
        result = DomainResult(
            domain=name,
            num_queries=len(q_set),
            recalls=recalls,
            queries_without_positives=count_without_positives(positive_ids),
            predictions=ids,
            similarities=sims,
            positives=positive_ids,
            metrics=values,
            predicted_xy=est.utm,
            predicted_latlon=est.latlon,
            confidence=est.confidence,
            error_m=error_m,
        )
        log.info("%s: %s", name, {f"R@{n}": round(v, 1) for n, v in recalls.items()})
        if rerank is not None:
            result.rerank = rerank_domain(rerank, q_set.paths, database.paths, result, recall_values)
            log.info(
                "%s %s: %s",
                name,
                result.rerank.label,
                {f"R@{n}": round(v, 1) for n, v in result.rerank.recalls.items()},
            )
        results[name] = result
    return results


def evaluate(
    dataset: str | Path | None = None,
    split: str = "test",
    model: Any = None,
    *,
    database: str | Path | GeoImageSet | None = None,
    queries: str | Path | GeoImageSet | Mapping[str, Any] | None = None,
    checkpoint: str | Path | None = None,
    pretrained: bool = False,
    recall_values: Sequence[int] = DEFAULT_RECALL_VALUES,
    threshold_m: float = DEFAULT_THRESHOLD_M,
    domains: Sequence[str] | None = None,
    factory: str = "Flat",
    search_params: str | None = None,
    options: ExtractionOptions | None = None,
    out_dir: str | Path | None = None,
    seed: int = 0,
    index: str | Path | GeoIndex | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    method: str = "nearest",
    kde: KDEParams = DEFAULT_KDE,
    report: bool = True,
    rerank: str | None = None,
    rerank_k: int = 100,
    rerank_cache: str | Path | FeatureCache | None = None,
    rerank_fusion: str | None = None,
    rerank_fusion_weight: float = 0.5,
    rerank_sweep: Sequence[int] | None = None,
) -> EvalResult:
    """Recall@N (and every requested metric) with the field's protocol.

    Args:
        dataset: a benchmark root holding ``images/<split>/database`` and ``queries*``
            folders; or None with ``database`` and ``queries``.
        split: ``train``, ``val`` or ``test`` (with ``dataset``).
        model, checkpoint, pretrained: the describer (see
            :func:`vgloc.describers.resolve_describer`); default ``resnet18+gem+fc512``
            without an index, the index's own describer with one.
        database, queries: any supported layout (@UTM@ / EXIF folder, CSV/Parquet
            manifest, a loaded set; ``queries`` may map domain names to those):
            distances come from the photos' own coordinates.
        recall_values: the N of R@N (N above the database size is clipped, with a warning).
        threshold_m: the positive radius in metres.
        domains: query folders to evaluate (default: all).
        factory, search_params: FAISS index to search with (``Flat`` = exact).
        options: extraction options (image size, batch size, device, precision...).
        out_dir: when given, ``results.json``, ``predictions.csv`` and ``report.html``
            (with ``report``) are written there.
        seed: seeds random initialisation.
        index: a prebuilt index of this database (path or object): the database is not
            described again; its describer is used unless ``model``/``checkpoint`` are
            passed explicitly.
        metrics: registered metric names (``vgloc.registry.METRICS``).
        method, kde: the position predictor for ``predictions.csv`` and ``error_m``.
        report: write ``report.html`` into ``out_dir``.
        rerank, rerank_k, rerank_cache, rerank_fusion, rerank_fusion_weight, rerank_sweep:
            local re-ranking of each domain's top ``rerank_k`` (see
            :class:`vgloc.evaluation.rerank.RerankSettings`).

    Returns:
        An :class:`EvalResult`.
    """
    import torch

    options = options or ExtractionOptions()
    t_start = time.perf_counter()
    # Everything that can be checked is checked before a single image is described.
    from vgloc.rerank import check_rerank_options

    check_rerank_options(rerank, rerank_k, rerank_cache, rerank_fusion, rerank_sweep, rerank_fusion_weight)
    metrics = check_metric_names(metrics)
    check_out_dir(out_dir)
    if index is None and model is None:
        model = DEFAULT_MODEL
    db, all_queries, split_label = load_sets(dataset, split, database, queries, progress=options.progress)
    wanted = select_domains(
        all_queries, domains, f"{dataset}/images/{split}" if dataset is not None else "the queries"
    )
    recall_values = clip_recall_values(recall_values, len(db))
    torch.manual_seed(seed)
    where = f"{dataset}, {split}" if dataset is not None else str(database)
    describer, idx = resolve_evaluated(
        model,
        checkpoint,
        index,
        db,
        pretrained=pretrained,
        factory=factory,
        options=options,
        seed=seed,
        where=where,
    )
    describer = apply_scales(describer, options, idx)  # --scales: multi-scale testing (or the index's)
    options = describer.resolve_options(options)  # "auto" size -> the model's / index's own
    rerank_settings = None
    if rerank is not None:
        rerank_settings = RerankSettings.create(
            rerank,
            num_database=len(db),
            k=rerank_k,
            cache=rerank_cache,
            fusion=rerank_fusion,
            fusion_weight=rerank_fusion_weight,
            sweep=rerank_sweep,
            progress=options.progress,
        )
    try:
        results = evaluate_sets(
            describer,
            db,
            {name: all_queries[name] for name in wanted},
            options=options,
            recall_values=recall_values,
            threshold_m=threshold_m,
            index=idx,
            factory=factory,
            search_params=search_params,
            metrics=metrics,
            method=method,
            kde=kde,
            rerank=rerank_settings,
        )
    finally:
        if rerank_settings is not None:
            rerank_settings.close()
    result = EvalResult(
        split=split_label,
        model_spec=describer.spec,
        threshold_m=threshold_m,
        recall_values=recall_values,
        num_database=len(db),
        domains=results,
        settings={
            **run_settings(
                dataset, database, checkpoint, pretrained, options, factory, search_params, seed, method
            ),
            **scale_settings(describer),
        },
        seconds=time.perf_counter() - t_start,
    )
    if rerank_settings is not None:
        result.settings["rerank"] = rerank_settings.to_dict()
    if out_dir is not None:
        from vgloc.evaluation.writers import write_outputs

        write_outputs(
            result,
            db,
            {n: all_queries[n] for n in wanted},
            Path(out_dir),
            rerank=rerank_settings,
            report=report,
            seed=seed,
        )
    return result
