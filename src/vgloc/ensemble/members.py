"""The models of an ensemble: a spec (or describer), weights and/or a built index each.

``--model``, ``--checkpoint`` and ``--index`` are paired by position
(:func:`ensemble_members`), the same way in ``vgloc eval`` and ``vgloc locate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vgloc.index import GeoIndex

__all__ = ["EnsembleMember", "ensemble_members"]


@dataclass(frozen=True)
class EnsembleMember:
    """One model of an ensemble: a spec/name (or describer), its weights, and/or a built index."""

    model: Any = None
    checkpoint: str | Path | None = None
    index: str | Path | GeoIndex | None = None

    def label(self) -> dict[str, Any]:
        """JSON-ready description (for ``results.json``)."""
        from vgloc.index import GeoIndex

        index = self.index
        if isinstance(index, GeoIndex):
            index = index.path
        return {
            "model": None if self.model is None else str(getattr(self.model, "spec", self.model)),
            "checkpoint": None if self.checkpoint is None else str(self.checkpoint),
            "index": None if index is None else str(index),
        }


def ensemble_members(
    models: Sequence[Any] | Any = None,
    checkpoints: Sequence[str | Path | None] | str | Path | None = None,
    indexes: Sequence[str | Path | GeoIndex | None] | str | Path | None = None,
) -> list[EnsembleMember]:
    """Pair models, checkpoints and indexes by position into ensemble members.

    Each of the three is given 0 times, once (then shared by every member: one
    architecture with several checkpoints, say) or once per member; the number of
    members is the longest list. ``--model A --checkpoint a.pt --checkpoint b.pt``
    is two members of architecture A; ``--index I1 --index I2`` two members with
    their indexes' own networks.

    Returns:
        The members, in order (the first is the lead of ``sif`` by default).
    """

    def as_list(x: Any) -> list[Any]:
        if x is None:
            return []
        return [x] if isinstance(x, (str, Path)) or not isinstance(x, Sequence) else list(x)

    lists = {"--model": as_list(models), "--checkpoint": as_list(checkpoints), "--index": as_list(indexes)}
    n = max(len(v) for v in lists.values())
    for name, values in lists.items():
        if len(values) not in (0, 1, n):
            counts = ", ".join(f"{k} x{len(v)}" for k, v in lists.items() if v)
            raise ValueError(
                f"{name} is given {len(values)} times for {n} models ({counts}): give it once per "
                "model, in the same order, or once for all"
            )
    if n and len(lists["--checkpoint"]) == 1 and n > 1 and len(lists["--model"]) == n:
        specs = {str(m).strip().lower() for m in lists["--model"]}
        if len(specs) > 1:
            raise ValueError(
                "one --checkpoint cannot serve models of different architectures; give one per --model"
            )

    def at(values: list[Any], m: int) -> Any:
        return None if not values else values[0] if len(values) == 1 else values[m]

    return [
        EnsembleMember(at(lists["--model"], m), at(lists["--checkpoint"], m), at(lists["--index"], m))
        for m in range(n)
    ]
