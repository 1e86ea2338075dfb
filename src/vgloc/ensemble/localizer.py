"""Locating photos with an ensemble: each model searches its own index, a fusion merges the lists.

:class:`EnsembleLocalizer` holds one :class:`~vgloc.localizer.Localizer` per model;
every index must hold the same database image list (in the same order), so that the
fused ids name the same photos. Positions, confidences and matches come from the
first model's :meth:`~vgloc.localizer.Localizer.predictions_from` on the fused list,
the same code that turns one model's list into predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgloc.ensemble.members import ensemble_members
from vgloc.ensemble.rules import RRF_K, check_ensemble, fuse

if TYPE_CHECKING:
    from vgloc.data.images import ImageInput
    from vgloc.index import GeoIndex
    from vgloc.localizer import Localizer
    from vgloc.predict import Prediction

__all__ = ["EnsembleLocalizer", "locate_ensemble"]


class EnsembleLocalizer:
    """Several localizers over one database, their ranked lists fused by a registered rule.

    Args:
        members: one :class:`~vgloc.localizer.Localizer` per model; the first one's
            ``method``, ``kde`` and ``top_k`` make the predictions.
        ensemble: ``nif``, ``sif``, ``rrf`` (:data:`vgloc.registry.ENSEMBLES`).
        lead: 0-based lead model of ``sif``.
        rrf_k: the RRF constant.
    """

    def __init__(
        self, members: Sequence[Localizer], ensemble: str = "nif", *, lead: int = 0, rrf_k: int = RRF_K
    ) -> None:
        check_ensemble(ensemble, len(members), lead)
        if any(loc.reranker is not None for loc in members):
            raise ValueError("an ensemble does not re-rank (yet): build its localizers without rerank")
        first = [str(p) for p in members[0].index.images.paths]
        for m, loc in enumerate(members[1:], start=2):
            if [str(p) for p in loc.index.images.paths] != first:
                raise ValueError(
                    f"ensemble model {m}: its index holds {len(loc.index.images)} images that are not model "
                    f"1's {len(first)} (every model must index the same database, in the same order)"
                )
        self.members = list(members)
        self.ensemble = ensemble
        self.lead = lead
        self.rrf_k = rrf_k

    @classmethod
    def load(
        cls,
        indexes: Sequence[str | Path | GeoIndex],
        *,
        models: Sequence[Any] | Any = None,
        checkpoints: Sequence[str | Path | None] | str | Path | None = None,
        ensemble: str = "nif",
        lead: int = 0,
        rrf_k: int = RRF_K,
        **kwargs: Any,
    ) -> EnsembleLocalizer:
        """Open every index with its recorded describer (or the paired ``models``/``checkpoints``).

        Args:
            indexes: one index (directory or loaded) per model.
            models, checkpoints: overrides paired by position (see
                :func:`vgloc.ensemble.members.ensemble_members`).
            ensemble, lead, rrf_k: see the class.
            **kwargs: the :class:`~vgloc.localizer.Localizer` arguments every model shares
                (``method``, ``kde``, ``top_k``, ``search_params``, ``options``).
        """
        from vgloc.localizer import Localizer

        members = ensemble_members(models, checkpoints, indexes)
        check_ensemble(ensemble, len(members), lead)
        if any(m.index is None for m in members):
            raise ValueError("locating with an ensemble needs one --index per model")
        localizers: list[Localizer] = []
        try:
            for m in members:
                assert m.index is not None
                localizers.append(Localizer.load(m.index, model=m.model, checkpoint=m.checkpoint, **kwargs))
            return cls(localizers, ensemble, lead=lead, rrf_k=rrf_k)
        except Exception:
            for loc in localizers:
                loc.close()
            raise

    def locate(self, photos: Sequence[ImageInput]) -> list[Prediction]:
        """Predict the GPS position of each of N photos (paths, PIL images, arrays or bytes)."""
        from vgloc.data.images import describe_input
        from vgloc.localizer import check_photo_files

        items = list(photos)
        if not items:
            return []
        check_photo_files(items)
        names = [describe_input(p, i) for i, p in enumerate(items)]
        k = max(loc.search_k for loc in self.members)
        ids, sims = [], []
        for loc in self.members:
            desc = loc.describer.describe(items, loc.options, queries=True)
            s, i = loc.index.search(desc, k, loc.search_params, device=loc.options.device)
            ids.append(i)
            sims.append(s)
        fused_sims, fused_ids = fuse(self.ensemble, ids, sims, k, lead=self.lead, rrf_k=self.rrf_k)
        return self.members[0].predictions_from(names, fused_sims, fused_ids)

    def close(self) -> None:
        """Release every model."""
        for loc in self.members:
            loc.close()

    def __enter__(self) -> EnsembleLocalizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        specs = ", ".join(loc.describer.spec for loc in self.members)
        return f"EnsembleLocalizer({self.ensemble}: {specs})"


def locate_ensemble(
    photos: Sequence[ImageInput],
    indexes: Sequence[str | Path | GeoIndex],
    *,
    ensemble: str = "nif",
    models: Sequence[Any] | Any = None,
    checkpoints: Sequence[str | Path | None] | str | Path | None = None,
    lead: int = 0,
    rrf_k: int = RRF_K,
    **kwargs: Any,
) -> list[Prediction]:
    """:func:`vgloc.locate` with several models: one index per model, lists fused by ``ensemble``.

    Args:
        photos: query photos (paths, PIL images, ``(H, W, 3)`` uint8 arrays or bytes).
        indexes: one index per model, all of the same database.
        ensemble, models, checkpoints, lead, rrf_k, **kwargs: see :meth:`EnsembleLocalizer.load`.

    Returns:
        One :class:`~vgloc.predict.Prediction` per photo.
    """
    from vgloc.localizer import check_photo_files

    check_photo_files(photos)
    with EnsembleLocalizer.load(
        indexes, models=models, checkpoints=checkpoints, ensemble=ensemble, lead=lead, rrf_k=rrf_k, **kwargs
    ) as localizer:
        return localizer.locate(photos)
