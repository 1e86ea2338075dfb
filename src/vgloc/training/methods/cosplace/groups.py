"""CosPlace geo-cell classes and groups (PROTOCOLS §2.1, CP datasets/train_dataset.py:106-163).

CosPlace turns geo-localization into classification. The map is cut into square
cells of side ``M`` metres and the compass into sectors of ``alpha`` degrees; one
class is one (cell, sector)::

    class_id = (floor(e/M)*M, floor(n/M)*M, floor(h/alpha)*alpha)

Neighbouring classes look alike, so they must never meet in one classifier. Classes
are therefore split into ``N*N*L`` *groups* by their position modulo ``N`` cells (and
``L`` sectors); two classes of one group are at least ``M*(N-1)`` metres or
``alpha*(L-1)`` degrees apart::

    group_id = ((e_r mod M*N) // M, (n_r mod M*N) // M, (h_r mod alpha*L) // alpha)

with ``e_r, n_r, h_r`` the rounded class coordinates. Defaults ``M=10, alpha=30, N=5,
L=2``; classes with fewer than ``min_images_per_class=10`` images are dropped before
grouping, and only ``groups_num=8`` groups are trained (one per epoch, cyclically).

Ordering. CosPlace keeps the *first* ``groups_num`` groups in the order in which a
group id first appears in the image list (a dict's insertion order, counting only
images of kept classes: CP train_dataset.py:139-142 [QUIRK]), and the classes of a
group in the iteration order of a Python ``set`` (hence the class labels).
``order="cosplace"`` (default) reproduces both exactly; ``order="sorted"`` sorts groups
by group id and classes by class id instead, which does not depend on the order of
the image list.

Headings. The class needs the camera heading (CosPlace reads it from field 9 of the
``@``-separated file name). With ``heading_policy="error"`` (default) any image without
one is an error; ``"ignore"`` builds classes from UTM cells only, ``(e_r, n_r)`` with
groups ``(g_e, g_n)`` (``alpha`` and ``L`` are not used: ``L = 1``), as EigenPlaces does.
No image is ever dropped for lacking a heading.

Deviation: CosPlace rounds with ``int(x // M * M)``; the same truncation is applied
here, so results match for the integer ``M`` and ``alpha`` CosPlace accepts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from vgloc.data.records import GeoImageSet

__all__ = ["ClassGroup", "ClassImageSampler", "build_cosplace_groups", "cosplace_class_and_group"]

log = logging.getLogger(__name__)

HeadingPolicy = Literal["error", "ignore"]
GroupOrder = Literal["cosplace", "sorted"]


@dataclass(frozen=True)
class ClassGroup:
    """One CosPlace group: classes that can share a classifier.

    The label of a class is its position in ``class_ids``.

    Attributes:
        group_id: ``(g_e, g_n, g_h)``, or ``(g_e, g_n)`` when headings are ignored.
        class_ids: Per class, its rounded ``(east, north, heading)`` (or ``(east, north)``).
        images_per_class: Per class, int64 indices into the :class:`GeoImageSet`, in
            image order.
    """

    group_id: tuple[int, ...]
    class_ids: tuple[tuple[int, ...], ...]
    images_per_class: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(self.class_ids)

    @property
    def num_classes(self) -> int:
        """Number of classes (the classifier's output size)."""
        return len(self.class_ids)

    @property
    def num_images(self) -> int:
        """Total number of images over the group's classes."""
        return int(sum(len(i) for i in self.images_per_class))

    def labels(self) -> tuple[np.ndarray, np.ndarray]:
        """All images of the group with their class labels.

        Returns:
            ``(image_indices, labels)``, two int64 arrays of length ``num_images``.
        """
        if not self.images_per_class:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        idx = np.concatenate(self.images_per_class)
        lab = np.repeat(np.arange(len(self.class_ids)), [len(i) for i in self.images_per_class])
        return idx.astype(np.int64), lab.astype(np.int64)


def cosplace_class_and_group(
    utm: np.ndarray,
    heading: np.ndarray | None,
    M: float = 10,
    alpha: float = 30,
    N: int = 5,
    L: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Class and group ids of each image (CP train_dataset.py:147-163).

    Args:
        utm: Easting/northing in metres.
        heading: Heading in degrees, or None for UTM cells only (then ``alpha`` and
            ``L`` are unused).
        M: Cell side in metres.
        alpha: Heading sector in degrees.
        N: Cells per group period along east and north.
        L: Sectors per group period.

    Returns:
        ``(class_ids, group_ids)``, int64 arrays with 3 columns (2 without heading).

    Shape:
        - Input: ``utm`` ``(K, 2)``, ``heading`` ``(K,)``
        - Output: ``(K, 3)`` and ``(K, 3)`` (``(K, 2)`` each without heading)
    """
    _check_positive(M=M, alpha=alpha, N=N, L=L)
    utm = np.asarray(utm, dtype=np.float64).reshape(-1, 2)
    cols = [utm[:, 0], utm[:, 1]]
    steps: list[float] = [M, M]
    periods: list[float] = [N, N]
    if heading is not None:
        cols.append(np.asarray(heading, dtype=np.float64).reshape(-1))
        steps.append(alpha)
        periods.append(L)
    classes, groups = [], []
    for x, step, period in zip(cols, steps, periods, strict=True):
        # int(x // M * M) in CosPlace: Python float floor division, then truncation.
        rounded = np.trunc(np.floor_divide(x, step) * step)
        classes.append(rounded)
        groups.append(np.floor_divide(np.mod(rounded, step * period), step))
    return np.stack(classes, 1).astype(np.int64), np.stack(groups, 1).astype(np.int64)


def build_cosplace_groups(
    images: GeoImageSet,
    M: float = 10,
    alpha: float = 30,
    N: int = 5,
    L: int = 2,
    min_images_per_class: int = 10,
    groups_num: int | None = 8,
    heading_policy: HeadingPolicy = "error",
    *,
    order: GroupOrder = "cosplace",
    min_classes_per_group: int = 2,
) -> list[ClassGroup]:
    """Split a training set into CosPlace classes and groups.

    Args:
        images: The training images (UTM and heading are used).
        M: Cell side in metres (CosPlace 10).
        alpha: Heading sector in degrees (CosPlace 30).
        N: Cells per group period (CosPlace 5).
        L: Heading sectors per group period (CosPlace 2).
        min_images_per_class: Classes with fewer images are dropped (CosPlace 10).
        groups_num: Number of groups to return (CosPlace 8); None or 0 returns all.
        heading_policy: ``"error"``: every image must have a heading; ``"ignore"``:
            classes are UTM cells only (see the module docstring).
        order: ``"cosplace"`` (first-appearance groups, set-ordered classes) or
            ``"sorted"``.
        min_classes_per_group: A returned group with fewer classes is an error (a
            one-class classifier learns nothing).

    Returns:
        ``groups_num`` groups (all when None/0), in the chosen order.

    Raises:
        ValueError: Missing headings under ``"error"``, non-finite UTM coordinates, no
            class with ``min_images_per_class`` images, fewer groups than
            ``groups_num``, or a group with fewer than ``min_classes_per_group``
            classes. The messages give counts and suggest smaller ``M`` or
            ``min_images_per_class``.
    """
    if heading_policy not in ("error", "ignore"):
        raise ValueError(f"heading_policy must be 'error' or 'ignore', got {heading_policy!r}")
    if order not in ("cosplace", "sorted"):
        raise ValueError(f"order must be 'cosplace' or 'sorted', got {order!r}")
    if min_images_per_class < 1:
        raise ValueError(f"min_images_per_class must be >= 1, got {min_images_per_class}")
    if groups_num is not None and groups_num < 0:
        raise ValueError(f"groups_num must be >= 0 (0 or None: all groups), got {groups_num}")
    name = images.name or "training set"
    if len(images) == 0:
        raise ValueError(f"{name}: no images to build CosPlace classes from")
    bad_utm = ~np.all(np.isfinite(images.utm), axis=1)
    if bad_utm.any():
        raise ValueError(
            f"{name}: {int(bad_utm.sum())} image(s) have no finite UTM coordinates, e.g. "
            f"{_few(images.paths, bad_utm)}"
        )
    heading: np.ndarray | None = None
    if heading_policy == "error":
        missing = ~np.isfinite(images.heading)
        if missing.any():
            raise ValueError(
                f"{name}: {int(missing.sum())} of {len(images)} images have no heading, e.g. "
                f"{_few(images.paths, missing)}. CosPlace classes need the camera heading "
                "(field 9 of an @-separated file name); pass heading_policy='ignore' to build "
                "classes from UTM cells only."
            )
        heading = images.heading
    elif np.isfinite(images.heading).any():
        log.info("%s: heading_policy='ignore': classes are UTM cells only, headings unused", name)

    class_arr, group_arr = cosplace_class_and_group(images.utm, heading, M, alpha, N, L)
    class_ids = [tuple(int(v) for v in row) for row in class_arr]
    group_ids = [tuple(int(v) for v in row) for row in group_arr]

    images_per_class: dict[tuple[int, ...], list[int]] = {}
    for i, c in enumerate(class_ids):
        images_per_class.setdefault(c, []).append(i)
    n_all = len(images_per_class)
    kept = {c: v for c, v in images_per_class.items() if len(v) >= min_images_per_class}
    if not kept:
        largest = max(len(v) for v in images_per_class.values())
        raise ValueError(
            f"{name}: no class has min_images_per_class={min_images_per_class} images "
            f"({n_all} classes of at most {largest} images with M={M} m"
            + (f", alpha={alpha} deg" if heading is not None else "")
            + "). Use a smaller min_images_per_class or a larger cell (M) / sector (alpha)."
        )
    log.info(
        "%s: %d of %d classes have >= %d images (%d of %d images kept)",
        name,
        len(kept),
        n_all,
        min_images_per_class,
        sum(len(v) for v in kept.values()),
        len(images),
    )

    # The same loop as CosPlace (image order, only kept classes) so that the dict's
    # insertion order and each set's iteration order are CosPlace's.
    classes_per_group: dict[tuple[int, ...], set[tuple[int, ...]]] = {}
    for c, g in zip(class_ids, group_ids, strict=True):
        if c in kept:
            classes_per_group.setdefault(g, set()).add(c)
    if order == "cosplace":
        ordered = [(g, list(cs)) for g, cs in classes_per_group.items()]
    else:
        ordered = [(g, sorted(classes_per_group[g])) for g in sorted(classes_per_group)]

    n_groups = len(ordered)
    want = n_groups if not groups_num else int(groups_num)
    if want > n_groups:
        raise ValueError(
            f"{name}: only {n_groups} group(s) exist with M={M}, N={N}"
            + (f", alpha={alpha}, L={L}" if heading is not None else "")
            + f" and min_images_per_class={min_images_per_class}, but groups_num={groups_num}. "
            f"Set groups_num <= {n_groups}, or use a smaller min_images_per_class / M."
        )
    result = []
    for g, cs in ordered[:want]:
        if len(cs) < min_classes_per_group:
            raise ValueError(
                f"{name}: group {g} has {len(cs)} class(es), fewer than min_classes_per_group="
                f"{min_classes_per_group}: a classifier needs several classes. Use a smaller "
                "min_images_per_class or a smaller M, a smaller groups_num, or more data."
            )
        result.append(
            ClassGroup(
                group_id=g,
                class_ids=tuple(cs),
                images_per_class=tuple(np.asarray(kept[c], dtype=np.int64) for c in cs),
            )
        )
    return result


class ClassImageSampler:
    """Map-style sampler over one group: item ``i`` is class ``i``.

    CosPlace's dataset index is the class, and each access returns a uniformly chosen
    image of that class (CP train_dataset.py:74-95); with a shuffling DataLoader every
    class is seen once per pass over the group.

    Args:
        group: The group to sample from.
        seed: Seed of the image draws.

    Note:
        DataLoader workers each get a copy of this object, with the same random state;
        call :meth:`reseed` in ``worker_init_fn`` (e.g. with
        ``torch.utils.data.get_worker_info().seed``) so workers draw different images.

    Example:
        >>> sampler = ClassImageSampler(groups[0], seed=0)  # doctest: +SKIP
        >>> image_index, label = sampler[3]  # doctest: +SKIP
    """

    def __init__(self, group: ClassGroup, seed: int = 0) -> None:
        if len(group) == 0:
            raise ValueError(f"group {group.group_id} has no classes to sample from")
        self.group = group
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the image draws from ``seed``.

        Args:
            seed: New seed.
        """
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.group)

    def __getitem__(self, class_index: int) -> tuple[int, int]:
        """Draw one image of a class.

        Args:
            class_index: Label of the class, in ``[0, len(self))``.

        Returns:
            ``(image_index, class_index)``: an index into the :class:`GeoImageSet` and
            the label.
        """
        n = len(self.group)
        if not 0 <= class_index < n:
            raise IndexError(f"class index {class_index} out of range for a group of {n} classes")
        imgs = self.group.images_per_class[class_index]
        return int(imgs[self.rng.integers(len(imgs))]), int(class_index)


def _check_positive(**values: float) -> None:
    for k, v in values.items():
        if not v > 0:
            raise ValueError(f"{k} must be > 0, got {v}")


def _few(paths: Sequence[object], mask: np.ndarray, k: int = 3) -> str:
    names = [getattr(paths[i], "name", str(paths[i])) for i in np.flatnonzero(mask)[:k]]
    more = int(mask.sum()) - len(names)
    return ", ".join(names) + (f" (+{more} more)" if more > 0 else "")
