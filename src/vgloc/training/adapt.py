"""Settings that follow the data: what a method's recipe cannot do on this dataset, changed and logged.

The published recipes assume large datasets (CosPlace: SF-XL, millions of images; the
VG benchmark: thousands of training queries). On a small one some of their values
cannot work (no CosPlace class has 10 images; a cache refresh asks for more queries
than exist). Once the training data is loaded, each method proposes changes
(:class:`Adaptation`, with the reason), and :func:`apply_adaptations` applies those
whose key the user did not set explicitly (file or ``--set``) and logs one line
saying what was chosen and why. Values that work are never touched, so on data large
enough for the recipe nothing changes. ``data.adapt=false`` turns it off.

Shared rule (:func:`image_size_adaptation`): a ``data.image_size`` larger than the
training images in both dimensions becomes the images' own size (upsampling adds no
detail and costs time: the synthetic city's 192x256 views would be trained at
512x512 under CosPlace's preset, 14 times slower per step).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vgloc.config import TrainConfig

__all__ = ["Adaptation", "AdaptationPlan", "apply_adaptations", "image_size_adaptation", "size_multiple"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Adaptation:
    """One proposed change.

    Attributes:
        key: Dotted config key.
        value: The new value.
        reason: Why, for the log line (short: "the 9 training queries with a positive").
    """

    key: str
    value: Any
    reason: str


@dataclass
class AdaptationPlan:
    """A method's proposals and a one-phrase summary of the resulting setup.

    Attributes:
        changes: Proposed changes (only keys the user did not set).
        summary: What training will use, e.g. "8 groups of 52-61 classes, batch 32".
    """

    changes: list[Adaptation] = field(default_factory=list)
    summary: str = ""


def apply_adaptations(cfg: TrainConfig, plan: AdaptationPlan, *, what: str) -> list[tuple[str, Any, Any]]:
    """Apply ``plan`` to ``cfg`` in place (explicit keys are skipped) and log one line.

    Args:
        cfg: The run's configuration (changed in place; the keys' source becomes
            ``adapted``).
        plan: The proposals.
        what: Whose settings, for the log line (``"cosplace"``).

    Returns:
        ``[(key, old value, new value), ...]`` applied.
    """
    applied: list[tuple[str, Any, Any]] = []
    by_reason: dict[str, list[str]] = {}  # changes made for one reason are listed together
    for change in plan.changes:
        if cfg.is_explicit(change.key):
            continue  # the rules only propose free keys; this guards against a rule that forgets
        old = cfg.get(change.key)
        cfg.set(change.key, change.value, source="adapted")
        new = cfg.get(change.key)
        if new == old:
            continue
        applied.append((change.key, old, new))
        by_reason.setdefault(change.reason, []).append(f"{change.key} {_show(old)} -> {_show(new)}")
    reasons = [f"{', '.join(keys)} ({why})" for why, keys in by_reason.items()]
    summary = f": {plan.summary}" if plan.summary else ""
    if applied:
        log.info(
            "%s settings adapted to the data%s. Changed: %s. Keys set explicitly are never changed; "
            "data.adapt=false turns this off",
            what,
            summary,
            "; ".join(reasons),
        )
    else:
        log.info("%s settings fit the data as configured%s", what, summary)
    return applied


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def size_multiple(spec: str) -> int:
    """The number input sides must be multiples of for ``spec``'s backbone (14 for DINOv2, else 1).

    ``spec`` may be a spec string or a published model's name (its spec is used).
    """
    import vgloc.models  # noqa: F401  (registers the backbones and published models)
    from vgloc.models.spec import ModelSpec
    from vgloc.registry import BACKBONES, PUBLISHED_MODELS

    name = spec.strip().lower()
    if name in PUBLISHED_MODELS:
        name = PUBLISHED_MODELS.get(name).spec
    try:
        parsed = ModelSpec.parse(name)
    except ValueError:  # not a spec (the model check reports it); no constraint here
        return 1
    return int(BACKBONES.metadata(parsed.backbone).get("multiple_of", 1))


def image_size_adaptation(
    cfg: TrainConfig, paths: Sequence[str | Path], samples: int = 5
) -> list[Adaptation]:
    """``data.image_size`` -> the images' size when it is larger than them in both dimensions,
    rounded down to the multiple the backbone needs (14 for DINOv2).

    Args:
        cfg: The configuration.
        paths: Training images; up to ``samples`` evenly spaced ones are measured (header
            only) and the largest height and width count.
        samples: How many images to measure.

    Returns:
        Zero or one :class:`Adaptation`.

    Raises:
        ValueError: an explicitly set ``data.image_size`` the backbone cannot take.
    """
    k = size_multiple(cfg.model.spec)
    ch, cw = cfg.data.image_size
    if cfg.is_explicit("data.image_size"):
        if k > 1 and (ch % k or cw % k):
            raise ValueError(
                f"data.image_size {ch}x{cw} does not fit {cfg.model.spec}: its sides must be multiples "
                f"of {k} (e.g. {max(k, ch // k * k)}x{max(k, cw // k * k)})"
            )
        return []
    target, reason = (ch, cw), ""
    if paths:
        from PIL import Image

        step = max(1, len(paths) // samples)
        heights, widths = [], []
        for p in list(paths)[::step][:samples]:
            with Image.open(p) as im:
                widths.append(im.width)
                heights.append(im.height)
        h, w = max(heights), max(widths)
        if h <= ch and w <= cw and (h, w) != (ch, cw):
            target = (h, w)
            reason = f"the training images are {h}x{w}, smaller than {ch}x{cw}: upsampling adds no detail"
    rounded = (max(k, target[0] // k * k), max(k, target[1] // k * k))
    if rounded != target:
        why = f"{cfg.model.spec} takes sides that are multiples of {k}"
        reason = f"{reason}; {why}" if reason else why
    if rounded == (ch, cw):
        return []
    return [Adaptation("data.image_size", rounded, reason)]
