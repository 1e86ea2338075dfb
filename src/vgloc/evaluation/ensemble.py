"""Evaluating an ensemble: each model retrieves from its own index, a fusion rule merges the lists.

The protocol is :func:`vgloc.evaluation.protocol.evaluate`'s: same sets, positives,
metrics, predictors, ``results.json``, ``predictions.csv`` and report. Only the
ranking differs: each member (a model + its weights, or a built index) describes
the database (unless its index holds it) and the queries, searches its top K, and
:func:`vgloc.ensemble.fuse` merges the K-lists into one (``nif``, ``sif``, ``rrf``; see
:mod:`vgloc.ensemble.rules`). Every member must index the same database image list.
``results.json`` records the fusion and each member with its own Recall@N.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vgloc.describers import ExtractionOptions
from vgloc.describers.multiscale import apply_scales, scale_settings
from vgloc.ensemble import RRF_K, check_ensemble, fuse
from vgloc.ensemble.members import EnsembleMember, ensemble_members
from vgloc.evaluation.checks import check_out_dir, clip_recall_values
from vgloc.evaluation.members import resolve_evaluated, run_settings, select_domains
from vgloc.evaluation.metrics import DEFAULT_METRICS, check_metric_names
from vgloc.evaluation.protocol import DEFAULT_MODEL, build_memory_index, evaluate_rankings, load_sets
from vgloc.evaluation.recall import DEFAULT_RECALL_VALUES, DEFAULT_THRESHOLD_M, recall_at_n
from vgloc.evaluation.results import EvalResult
from vgloc.predict import DEFAULT_KDE, KDEParams

if TYPE_CHECKING:
    from vgloc.data.records import GeoImageSet
    from vgloc.index import GeoIndex

__all__ = ["EnsembleMember", "ensemble_members", "evaluate_ensemble"]


def evaluate_ensemble(
    dataset: str | Path | None = None,
    split: str = "test",
    models: Sequence[Any] | Any = None,
    *,
    ensemble: str = "nif",
    checkpoints: Sequence[str | Path | None] | str | Path | None = None,
    indexes: Sequence[str | Path | GeoIndex | None] | str | Path | None = None,
    lead: int = 0,
    rrf_k: int = RRF_K,
    database: str | Path | GeoImageSet | None = None,
    queries: str | Path | GeoImageSet | Mapping[str, Any] | None = None,
    pretrained: bool = False,
    recall_values: Sequence[int] = DEFAULT_RECALL_VALUES,
    threshold_m: float = DEFAULT_THRESHOLD_M,
    domains: Sequence[str] | None = None,
    factory: str = "Flat",
    search_params: str | None = None,
    options: ExtractionOptions | None = None,
    out_dir: str | Path | None = None,
    seed: int = 0,
    metrics: Sequence[str] = DEFAULT_METRICS,
    method: str = "nearest",
    kde: KDEParams = DEFAULT_KDE,
    report: bool = True,
) -> EvalResult:
    """Recall@N (and every metric) of an ensemble of models with the field's protocol.

    Args:
        dataset, split, database, queries, domains: the sets, as in
            :func:`vgloc.evaluation.evaluate`.
        models, checkpoints, indexes: the members, paired by position (see
            :func:`ensemble_members`); a member without index describes the database.
        ensemble: the fusion: ``nif``, ``sif`` or ``rrf`` (:data:`vgloc.registry.ENSEMBLES`).
        lead: 0-based lead ("stronger") model of ``sif`` (default: the first).
        rrf_k: the RRF constant (60, Cormack et al. 2009).
        pretrained, recall_values, threshold_m, factory, search_params, options, out_dir,
            seed, metrics, method, kde, report: as in :func:`vgloc.evaluation.evaluate`.
            Every member retrieves the top ``K = max(recall_values)`` (``kde.k`` with
            ``kde``) and the fused list keeps K.

    Returns:
        An :class:`EvalResult` whose ``model_spec`` reads ``nif(A, B)`` and whose
        ``settings["ensemble"]`` records the fusion and each member's Recall@N.
    """
    import torch

    options = options or ExtractionOptions()
    t_start = time.perf_counter()
    # Everything that can be checked is checked before a single image is described.
    members = ensemble_members(models, checkpoints, indexes)
    check_ensemble(ensemble, len(members), lead)
    metrics = check_metric_names(metrics)
    check_out_dir(out_dir)
    db, all_queries, split_label = load_sets(dataset, split, database, queries, progress=options.progress)
    where = f"{dataset}/images/{split}" if dataset is not None else "the queries"
    wanted = select_domains(all_queries, domains, where)
    recall_values = clip_recall_values(recall_values, len(db))
    db_where = f"{dataset}, {split}" if dataset is not None else str(database)
    resolved = []
    for m, member in enumerate(members):
        torch.manual_seed(seed)  # each member as it would be evaluated alone
        model = DEFAULT_MODEL if member.index is None and member.model is None else member.model
        try:
            describer, idx = resolve_evaluated(
                model,
                member.checkpoint,
                member.index,
                db,
                pretrained=pretrained,
                factory=factory,
                options=options,
                seed=seed,
                where=db_where,
            )
            describer = apply_scales(describer, options, idx)  # --scales: each model describes at them
        except ValueError as e:
            raise ValueError(f"ensemble model {m + 1} of {len(members)}: {e}") from e
        resolved.append((describer, idx, describer.resolve_options(options)))
    indexes_built = [
        idx if idx is not None else build_memory_index(d, db, opts, factory, search_params)
        for d, idx, opts in resolved
    ]
    member_ids: dict[str, list[np.ndarray]] = {}

    def search(name: str, q_set: GeoImageSet, k: int) -> tuple[np.ndarray, np.ndarray]:
        ids, sims = [], []
        for (describer, _, opts), index in zip(resolved, indexes_built, strict=True):
            q_desc = describer.describe(q_set.paths, opts, queries=True)
            s, i = index.search(q_desc, k, search_params, device=opts.device)
            ids.append(i)
            sims.append(s)
        member_ids[name] = ids
        return fuse(ensemble, ids, sims, k, lead=lead, rrf_k=rrf_k)

    selected = {n: all_queries[n] for n in wanted}
    results = evaluate_rankings(
        db,
        selected,
        search,
        recall_values=recall_values,
        threshold_m=threshold_m,
        metrics=metrics,
        method=method,
        kde=kde,
    )
    specs = [d.spec for d, _, _ in resolved]
    member_info = []
    for m, member in enumerate(members):
        info = member.label()
        info["model"] = specs[m]
        info["image_size"] = resolved[m][2].image_size  # each model's own ("auto" resolved per model)
        info.update(scale_settings(resolved[m][0]))
        info["recalls"] = {
            name: {
                f"R@{n}": v
                for n, v in recall_at_n(
                    _padded(member_ids[name][m], max(recall_values)), results[name].positives, recall_values
                ).items()
            }
            for name in wanted
        }
        member_info.append(info)
    checkpoints_used = [str(i["checkpoint"]) for i in member_info if i["checkpoint"]]
    result = EvalResult(
        split=split_label,
        model_spec=f"{ensemble}({', '.join(specs)})",
        threshold_m=threshold_m,
        recall_values=recall_values,
        num_database=len(db),
        domains=results,
        settings={
            **run_settings(
                dataset,
                database,
                ", ".join(checkpoints_used) or None,
                pretrained,
                resolved[0][2],
                factory,
                search_params,
                seed,
                method,
            ),
            "ensemble": {
                "fusion": ensemble,
                "lead": lead + 1 if ensemble == "sif" else None,
                "rrf_k": rrf_k if ensemble == "rrf" else None,
                "models": member_info,
            },
        },
        seconds=time.perf_counter() - t_start,
    )
    if out_dir is not None:
        from vgloc.evaluation.writers import write_outputs

        write_outputs(result, db, selected, Path(out_dir), report=report, seed=seed)
    return result


def _padded(ids: np.ndarray, k: int) -> np.ndarray:
    """(Q, K') -> (Q, max(K', k)), -1 padded (a database smaller than k)."""
    return ids if ids.shape[1] >= k else np.pad(ids, ((0, 0), (0, k - ids.shape[1])), constant_values=-1)
