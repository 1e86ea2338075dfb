"""What an evaluation evaluates: its describer and index, its query domains, its recorded settings.

Shared by :func:`vgloc.evaluation.protocol.evaluate` (one model) and
:func:`vgloc.evaluation.ensemble.evaluate_ensemble` (one call per model), so that a
model is resolved, checked against the database and recorded the same way in both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgloc.describers import Describer, ExtractionOptions, describer_for_index, resolve_describer
from vgloc.describers.multiscale import apply_scales
from vgloc.evaluation.checks import check_factory

if TYPE_CHECKING:
    from vgloc.data.records import GeoImageSet
    from vgloc.index import GeoIndex

__all__ = ["resolve_evaluated", "run_settings", "select_domains"]


def resolve_evaluated(
    model: Any,
    checkpoint: str | Path | None,
    index: str | Path | GeoIndex | None,
    database: GeoImageSet,
    *,
    pretrained: bool = False,
    factory: str = "Flat",
    options: ExtractionOptions,
    seed: int = 0,
    where: str = "the database",
) -> tuple[Describer, GeoIndex | None]:
    """The describer an evaluation runs, and the prebuilt index of ``database`` if one is given.

    With ``index``: its own describer (a bare spec must name the index's), or
    ``model``/``checkpoint`` checked against it; the index must hold exactly
    ``database``'s images (else ValueError naming ``where``). Without: the describer of
    ``model`` + ``checkpoint``, prepared on the database (a classical vocabulary).
    """
    from vgloc.index import GeoIndex

    if index is None:
        # --scales is checked (a classical describer refused) before a vocabulary is fitted.
        describer = apply_scales(resolve_describer(model, checkpoint, pretrained=pretrained), options)
        check_factory(describer.descriptor_dim, factory)
        describer.prepare(database.paths, options, seed)
        return describer, None
    idx = index if isinstance(index, GeoIndex) else GeoIndex.load(index)
    if isinstance(model, str) and checkpoint is None:
        # A spec alone names the architecture: the weights are the index's own.
        describer = describer_for_index(idx)
        if model.strip().lower() != describer.spec.lower():
            raise ValueError(
                f"the index was built with {describer.spec}, not {model}; leave the model out to use "
                "the index's own describer, or pass a checkpoint"
            )
    else:
        describer = describer_for_index(idx, model, checkpoint)
    if [str(p) for p in idx.images.paths] != [str(p) for p in database.paths]:
        raise ValueError(
            f"the index holds {len(idx.images)} images that are not this split's {len(database)} "
            f"database images ({where})"
        )
    return describer, idx


def select_domains(all_queries: Mapping[str, Any], domains: Sequence[str] | None, where: str) -> list[str]:
    """The query domains to evaluate: ``domains`` (all when None), each checked to exist in ``where``."""
    wanted = list(all_queries) if domains is None else list(domains)
    unknown = [d for d in wanted if d not in all_queries]
    if unknown:
        raise ValueError(f"query folder(s) {unknown} not in {where}; found: {sorted(all_queries)}")
    return wanted


def run_settings(
    dataset: str | Path | None,
    database: Any,
    checkpoint: str | Path | None,
    pretrained: bool,
    options: ExtractionOptions,
    factory: str,
    search_params: str | None,
    seed: int,
    method: str,
) -> dict[str, Any]:
    """The settings an :class:`EvalResult` records (``results.json``'s ``settings``)."""
    return {
        "dataset": None if dataset is None else str(dataset),
        "database": None if database is None else str(getattr(database, "name", "") or database),
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "pretrained": pretrained,
        "image_size": options.image_size,
        "precision": options.precision,
        "factory": factory,
        "search_params": search_params,
        "test_brightness": options.brightness,
        "test_contrast": options.contrast,
        "test_saturation": options.saturation,
        "seed": seed,
        "method": method,
    }
