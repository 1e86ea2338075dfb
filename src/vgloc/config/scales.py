"""Validation of multi-scale settings: the scales and the fusion's name.

Kept apart from :mod:`vgloc.describers.multiscale` (and outside the numpy-importing
``vgloc.describers`` package, so that building the CLI parser stays light) so that
:class:`~vgloc.describers.ExtractionOptions` can check its ``scales`` and
``scale_fusion`` when it is made, with no import cycle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["DEFAULT_FUSION", "FUSIONS", "check_fusion", "check_scales"]

#: The fusions of the VG studies' ``--multi_scale_method``.
FUSIONS: tuple[str, ...] = ("avg", "sum", "max", "min")
DEFAULT_FUSION = "avg"


def check_scales(scales: Sequence[float]) -> tuple[float, ...]:
    """``scales`` as a tuple of floats, or a ValueError saying what is wrong.

    Scales must be finite numbers > 0, at least one, none repeated (a repeated scale
    would only weigh that size twice in ``avg``/``sum`` at the price of another pass).
    """
    if isinstance(scales, (str, bytes)):
        raise ValueError(f"scales must be a sequence of numbers, got the string {scales!r}")
    try:
        values = tuple(float(s) for s in scales)
    except (TypeError, ValueError):
        raise ValueError(f"scales must be numbers, got {scales!r}") from None
    if not values:
        raise ValueError("give at least one scale (e.g. 0.5,1,1.5)")
    bad = [s for s in values if not (math.isfinite(s) and s > 0)]
    if bad:
        raise ValueError(f"scales must be positive numbers, got {', '.join(map(str, bad))}")
    repeated = sorted({s for s in values if values.count(s) > 1})
    if repeated:
        raise ValueError(f"scale {', '.join(f'{s:g}' for s in repeated)} given more than once")
    return values


def check_fusion(fusion: str) -> str:
    """``fusion`` lower-cased, or a ValueError naming the four fusions."""
    name = str(fusion).strip().lower()
    if name not in FUSIONS:
        raise ValueError(f"unknown scale fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
    return name
