"""CosPlace settings that follow the data: cells, groups, batch and epoch length on small datasets.

CosPlace's values (M=10 m cells, classes of >= 10 images, N=5, L=2, 8 groups, batch
32, 10,000 steps per epoch) are made for SF-XL, where a 10 m cell holds images of
many years. On a dataset whose cells hold one or two images (the synthetic city: one
panorama every 7.5-24 m) no class survives ``min_images_per_class=10``, and even
with smaller classes a group of ``N*N*L = 50`` holds too few classes for a batch of
32 (one image per class). :func:`plan_cosplace` then changes, among the keys the user
did not set, in this order:

1. **Classes** (``M``, ``min_images_per_class``), when the configured cells keep fewer
   classes than ``groups_num`` groups of ``batch_size`` classes need: the pair that
   keeps the most classes, with ``M`` from the configured value up to 5 times it and
   at least 2 images per class (a class of one image teaches no change of view).
2. **Groups and batch** (``N``, ``L``, ``groups_num``, ``batch_size``), when the groups
   cannot fill a batch, or when step 1 changed the cells and the trained groups hold
   less than half of the classes: the largest batch (halving from the configured one, at least
   4), then the largest group period ``N*N*L`` (classes of a group stay farthest
   apart), whose first groups (in training order, up to the configured
   ``groups_num``) each have a batch of classes and together hold at least half of
   all classes (a small dataset should not leave most of its classes untrained).
3. **Epoch length** (``iterations_per_epoch``), when 1 or 2 changed something: an epoch
   draws each class of a group (of the mean size) about 10 times, so that validation and
   the rotation to the next group's classifier come at a pace set by the data.

When the configured values work (every trained group has a batch of classes) nothing
changes: on data the size of SF-XL the published recipe is used as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from vgloc.config import TrainConfig
from vgloc.data.records import GeoImageSet
from vgloc.training.adapt import Adaptation, AdaptationPlan
from vgloc.training.methods.cosplace.groups import cosplace_class_and_group

__all__ = ["DRAWS_PER_CLASS", "GroupLayout", "group_layout", "plan_cosplace"]

#: Times an adapted epoch draws each class of its group (vgloc choice, see the module docstring).
DRAWS_PER_CLASS = 10
#: Cell sides tried, as multiples of the configured ``M``.
M_FACTORS = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
#: The smallest batch the adaptation chooses.
MIN_BATCH = 4
#: Share of all classes the trained groups must hold when groups are adapted.
MIN_COVERAGE = 0.5


@dataclass(frozen=True)
class GroupLayout:
    """Classes per group, in the order training takes the groups.

    Attributes:
        classes: Kept classes (of at least ``min_images_per_class`` images).
        images: Images in kept classes.
        largest_class: Images in the largest class (kept or not).
        group_sizes: Classes of each group, in training order (all groups).
    """

    classes: int
    images: int
    largest_class: int
    group_sizes: tuple[int, ...]


def group_layout(
    images: GeoImageSet,
    M: float,
    alpha: float,
    N: int,
    L: int,
    min_images_per_class: int,
    heading: bool,
    order: str = "cosplace",
) -> GroupLayout:
    """Count classes and group sizes as :func:`~.groups.build_cosplace_groups` would form them.

    Vectorised (no per-image Python loop), so that many settings can be tried on a
    large database.

    Args:
        images: The training database.
        M, alpha, N, L, min_images_per_class: The CosPlace settings.
        heading: Whether classes use the heading (``heading_policy="error"``).
        order: ``"cosplace"`` (first appearance in the image list) or ``"sorted"``.

    Returns:
        The :class:`GroupLayout`.
    """
    class_ids, group_ids = cosplace_class_and_group(
        images.utm, images.heading if heading else None, M, alpha, N, L
    )
    _, inverse, counts = np.unique(class_ids, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    kept_img = counts[inverse] >= min_images_per_class
    if not kept_img.any():
        return GroupLayout(0, 0, int(counts.max(initial=0)), ())
    g_kept = group_ids[kept_img]
    c_kept = inverse[kept_img]
    g_uniq, g_first, g_inv = np.unique(g_kept, axis=0, return_index=True, return_inverse=True)
    g_inv = g_inv.reshape(-1)
    # Classes per group: distinct (group, class) pairs.
    pairs = np.unique(np.stack([g_inv, c_kept], 1), axis=0)
    per_group = np.bincount(pairs[:, 0], minlength=len(g_uniq))
    # np.unique sorts group ids ("sorted" order); CosPlace takes them by first appearance.
    ranks = np.argsort(g_first, kind="stable") if order == "cosplace" else np.arange(len(g_uniq))
    return GroupLayout(
        classes=int((counts >= min_images_per_class).sum()),
        images=int(kept_img.sum()),
        largest_class=int(counts.max()),
        group_sizes=tuple(int(per_group[i]) for i in ranks),
    )


def _usable_groups(sizes: tuple[int, ...], batch: int, limit: int) -> int:
    """Length of the longest prefix of groups (at most ``limit``) that each fill a batch."""
    n = 0
    for s in sizes[:limit]:
        if s < max(batch, 2):
            break
        n += 1
    return n


def plan_cosplace(cfg: TrainConfig, images: GeoImageSet, world_size: int = 1) -> AdaptationPlan:
    """Propose CosPlace settings for ``images`` (see the module docstring).

    Args:
        cfg: The configuration (explicit keys are never proposed).
        images: The training database.
        world_size: Processes; the batch stays a multiple of it.

    Returns:
        The proposals and a summary of the groups training will use.
    """
    c = cfg.cosplace

    def free(key: str) -> bool:
        return not cfg.is_explicit(f"cosplace.{key}")

    heading = c.heading_policy == "error"
    if heading and not np.isfinite(images.heading).all():
        return AdaptationPlan()  # the trainer's error about missing headings says what to do
    if len(images) == 0 or not np.isfinite(images.utm).all():
        return AdaptationPlan()

    def layout(M: float, k: int, N: int, L: int) -> GroupLayout:
        return group_layout(images, M, c.alpha, N, L, k, heading, c.group_order)

    M, k, N, L, g, B = c.M, c.min_images_per_class, c.N, c.L, c.groups_num, c.batch_size
    current = layout(M, k, N, L)
    if _usable_groups(current.group_sizes, B, g) == g:
        return AdaptationPlan(summary=_describe(current, g, B, "as configured"))

    changes: list[Adaptation] = []
    # 1. Classes: enough for groups_num groups of a batch each?
    if current.classes < g * B and (free("M") or free("min_images_per_class")):
        ms = [M * f for f in M_FACTORS] if free("M") else [M]
        ks = list(range(k, 1, -1)) if free("min_images_per_class") and k > 2 else [k]
        best = max(
            ((layout(m, kk, N, L), m, kk) for m in ms for kk in ks),
            # most classes; then the smaller cell, then the larger classes
            key=lambda t: (t[0].classes, -t[1], t[2]),
        )
        if best[0].classes > current.classes:
            lay, M2, k2 = best
            before = (
                f"with M={M:g} m and min_images_per_class={k} "
                + (f"only {current.classes} classes are kept" if current.classes else "no class is kept")
                + f" (the largest has {current.largest_class} image{'s' if current.largest_class != 1 else ''})"
            )
            tried = f"{ms[0]:g}-{ms[-1]:g} m" if len(ms) > 1 else f"{M:g} m"
            share = lay.images / len(images)
            why = (
                f"{before}; M={M2:g} m with classes of >= {k2} images keeps {lay.classes} classes "
                f"({share:.0%} of the images), the most for cells of {tried}"
            )
            for key, old, new in (("M", M, M2), ("min_images_per_class", k, k2)):
                if new != old:
                    changes.append(Adaptation(f"cosplace.{key}", new, why))
            M, k, current = M2, k2, lay

    # 2. Groups and batch: when they cannot fill batches, or (once the cells were adapted, i.e.
    # the data is far smaller than the recipe's) when the trained groups leave most classes out.
    usable = _usable_groups(current.group_sizes, B, g)
    coverage = sum(current.group_sizes[:usable]) / max(current.classes, 1)
    if current.classes and (usable < g or (changes and coverage < MIN_COVERAGE)):
        choice = _choose_groups(current.classes, lambda n, ll: layout(M, k, n, ll), c, free, world_size)
        if choice is not None:
            N2, L2, g2, B2, lay = choice
            sizes = lay.group_sizes[:g2]
            problem = (
                f"do not give {g} groups of batch_size={B} classes"
                if usable < g
                else f"leave {1 - coverage:.0%} of the classes out of the {g} trained groups"
            )
            why = (
                f"{current.classes} classes in N*N*L={N * N * L} groups {problem}; N={N2}, L={L2} gives {g2} group(s) of "
                f"{'/'.join(map(str, sizes))} classes ({sum(sizes) / current.classes:.0%} of the classes)"
            )
            for key, old, new in (("N", N, N2), ("L", L, L2), ("groups_num", g, g2), ("batch_size", B, B2)):
                if new != old:
                    changes.append(Adaptation(f"cosplace.{key}", new, why))
            N, L, g, B, current = N2, L2, g2, B2, lay

    # 3. Epoch length, once the recipe did not fit as it was.
    if changes and free("iterations_per_epoch") and current.group_sizes[:g]:
        mean = sum(current.group_sizes[:g]) / len(current.group_sizes[:g])
        steps = max(1, math.ceil(DRAWS_PER_CLASS * mean / B))
        if steps < c.iterations_per_epoch:
            draws = c.iterations_per_epoch * B / mean
            why = (
                f"an epoch draws each class of a group of {mean:.0f} classes (the mean) about "
                f"{DRAWS_PER_CLASS} times; {c.iterations_per_epoch} steps would draw each ~{draws:,.0f} times"
            )
            changes.append(Adaptation("cosplace.iterations_per_epoch", steps, why))
    return AdaptationPlan(changes, _describe(current, g, B, "after adaptation"))


def _choose_groups(
    classes: int, layout: Any, c: Any, free: Any, world_size: int
) -> tuple[int, int, int, int, GroupLayout] | None:
    """``(N, L, groups_num, batch_size, layout)`` by the rule of the module docstring, or None."""
    batches = [c.batch_size]
    if free("batch_size"):
        b = c.batch_size // 2
        while b >= MIN_BATCH:
            batches.append(b)
            b //= 2
    batches = [b for b in batches if b % world_size == 0] or [c.batch_size]
    ns = range(c.N, 1, -1) if free("N") else [c.N]
    ls = range(c.L, 0, -1) if free("L") and c.heading_policy == "error" else [c.L]
    periods = sorted(((n, ll) for n in ns for ll in ls), key=lambda p: (-(p[0] ** 2) * p[1], -p[0]))
    layouts = {p: layout(*p) for p in periods}
    fallback: tuple[float, tuple[int, int, int, int, GroupLayout]] | None = None
    for b in batches:
        for n, ll in periods:
            lay = layouts[(n, ll)]
            g = _usable_groups(lay.group_sizes, b, c.groups_num)
            if g == 0 or (not free("groups_num") and g < c.groups_num):
                continue
            coverage = sum(lay.group_sizes[:g]) / classes
            if coverage >= MIN_COVERAGE:
                return n, ll, g, b, lay
            if fallback is None or coverage > fallback[0]:
                fallback = (coverage, (n, ll, g, b, lay))
    return None if fallback is None else fallback[1]


def _describe(lay: GroupLayout, g: int, batch: int, how: str) -> str:
    sizes = lay.group_sizes[:g]
    if not sizes:
        return f"{lay.classes} classes ({how})"
    lo, hi = min(sizes), max(sizes)
    span = f"{lo}" if lo == hi else f"{lo}-{hi}"
    return f"{len(sizes)} group(s) of {span} classes, batch {batch}, {lay.classes} classes in all ({how})"
