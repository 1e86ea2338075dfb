"""CosPlace classes and groups: hand-derived ids, CosPlace's ordering, clear errors, the sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vgloc.data.records import GeoImageSet
from vgloc.training.methods.cosplace.groups import (
    ClassGroup,
    ClassImageSampler,
    build_cosplace_groups,
    cosplace_class_and_group,
)


def _images(utm: np.ndarray, heading: np.ndarray, name: str = "train") -> GeoImageSet:
    n = len(utm)
    return GeoImageSet(
        paths=[Path(f"/data/@{e:.2f}@{no:.2f}@img{i:04d}.jpg") for i, (e, no) in enumerate(utm)],
        utm=utm,
        latlon=np.full((n, 2), np.nan),
        heading=heading,
        frame=None,
        name=name,
    )


def _grid_city(per_class: int = 12, cells: int = 12, seed: int = 0) -> GeoImageSet:
    """`cells` x `cells` 10 m cells, two heading sectors (0-30, 30-60) each with `per_class` images."""
    rng = np.random.default_rng(seed)
    utm, heading = [], []
    for i in range(cells):
        for j in range(cells):
            for sector in (0, 30):
                for _ in range(per_class):
                    utm.append(
                        (550_000 + 10 * i + rng.uniform(0.1, 9.9), 4_170_000 + 10 * j + rng.uniform(0.1, 9.9))
                    )
                    heading.append(sector + rng.uniform(0.1, 29.9))
    order = rng.permutation(len(utm))  # images arrive in no particular order
    return _images(np.array(utm)[order], np.array(heading)[order])


def test_class_and_group_ids_by_hand() -> None:
    utm = np.array([[553_017.3, 4_178_452.9], [553_017.3, 4_178_452.9], [553_049.99, 4_178_460.0]])
    heading = np.array([47.0, -10.0, 359.0])
    cls, grp = cosplace_class_and_group(utm, heading)
    # floor(e/10)*10, floor(n/10)*10, floor(h/30)*30
    assert cls.tolist() == [[553_010, 4_178_450, 30], [553_010, 4_178_450, -30], [553_040, 4_178_460, 330]]
    # (553010 mod 50)//10 = 1, (4178450 mod 50)//10 = 0, (30 mod 60)//30 = 1; -30 mod 60 = 30 -> 1
    assert grp.tolist() == [[1, 0, 1], [1, 0, 1], [4, 1, 1]]
    cls2, grp2 = cosplace_class_and_group(utm, None, M=20, N=3)
    assert cls2.tolist() == [[553_000, 4_178_440], [553_000, 4_178_440], [553_040, 4_178_460]]
    # 553000 mod 60 = 40 -> 2, 4178440 mod 60 = 40 -> 2; 553040 mod 60 = 20 -> 1, 4178460 mod 60 = 0 -> 0
    assert grp2.tolist() == [[2, 2], [2, 2], [1, 0]]


def _cosplace_reference(
    images: GeoImageSet, M: int, alpha: int, N: int, L: int, mipc: int
) -> list[list[tuple]]:
    """A plain restatement of CosPlace's grouping loop (CP train_dataset.py:106-163)."""
    ids = []
    for (e, n), h in zip(images.utm, images.heading, strict=True):
        re, rn, rh = int(e // M * M), int(n // M * M), int(h // alpha * alpha)
        ids.append(((re, rn, rh), (re % (M * N) // M, rn % (M * N) // M, rh % (alpha * L) // alpha)))
    per_class: dict[tuple, list[int]] = {}
    for i, (c, _) in enumerate(ids):
        per_class.setdefault(c, []).append(i)
    per_class = {c: v for c, v in per_class.items() if len(v) >= mipc}
    per_group: dict[tuple, set] = {}
    for c, g in ids:
        if c in per_class:
            per_group.setdefault(g, set()).add(c)
    return [list(s) for s in per_group.values()]


def test_cosplace_order_reproduces_cosplace() -> None:
    images = _grid_city()
    groups = build_cosplace_groups(images, groups_num=None)
    ref = _cosplace_reference(images, 10, 30, 5, 2, 10)
    assert [list(g.class_ids) for g in groups] == ref
    assert len(groups) == 50  # N*N*L
    first = build_cosplace_groups(images)  # groups_num=8: the first 8 in appearance order
    assert [g.group_id for g in first] == [g.group_id for g in groups[:8]]


def test_groups_partition_the_kept_images_and_separate_neighbours() -> None:
    images = _grid_city()
    groups = build_cosplace_groups(images, groups_num=0)
    all_idx = np.concatenate([np.concatenate(g.images_per_class) for g in groups])
    assert sorted(all_idx.tolist()) == list(range(len(images)))  # every class has 12 >= 10 images
    cls, _ = cosplace_class_and_group(images.utm, images.heading)
    for g in groups:
        for c, idx in zip(g.class_ids, g.images_per_class, strict=True):
            assert np.all(cls[idx] == np.array(c))
            assert np.all(np.diff(idx) > 0)  # image order within a class
        arr = np.array(g.class_ids)
        # Two classes of one group are >= M*N = 50 m apart on some axis or differ in sector period.
        for a in range(len(arr)):
            for b in range(a + 1, len(arr)):
                d = np.abs(arr[a] - arr[b])
                assert d[0] >= 50 or d[1] >= 50 or d[2] >= 60
        idx, labels = g.labels()
        assert len(idx) == g.num_images and labels.max() == g.num_classes - 1


def test_sorted_order_is_independent_of_image_order() -> None:
    images = _grid_city()
    shuffled = images.subset(np.random.default_rng(1).permutation(len(images)))
    a = build_cosplace_groups(images, order="sorted")
    b = build_cosplace_groups(shuffled, order="sorted")
    assert [g.group_id for g in a] == sorted(g.group_id for g in a)
    assert [g.group_id for g in a] == [g.group_id for g in b]
    assert [g.class_ids for g in a] == [g.class_ids for g in b]
    for g in a:
        assert list(g.class_ids) == sorted(g.class_ids)


def test_min_images_per_class_drops_small_classes() -> None:
    images = _grid_city(per_class=12)
    # Remove 5 images from one class so it has 7 (< 10).
    cls, _ = cosplace_class_and_group(images.utm, images.heading)
    victim = tuple(cls[0])
    idx = np.flatnonzero(np.all(cls == np.array(victim), axis=1))
    keep = np.setdiff1d(np.arange(len(images)), idx[:5])
    groups = build_cosplace_groups(images.subset(keep), groups_num=0)
    assert all(victim not in g.class_ids for g in groups)
    assert sum(g.num_classes for g in groups) == 12 * 12 * 2 - 1


def test_missing_heading_errors_by_default_and_names_files() -> None:
    images = _grid_city()
    images.heading[[3, 7, 11, 20]] = np.nan
    with pytest.raises(
        ValueError,
        match=r"4 of 3456 images have no heading.*img\d{4}\.jpg.*\(\+1 more\).*heading_policy='ignore'",
    ):
        build_cosplace_groups(images)


def test_heading_policy_ignore_uses_utm_cells_and_keeps_every_image() -> None:
    images = _grid_city()
    images.heading[: len(images) // 2] = np.nan  # half the headings missing
    groups = build_cosplace_groups(images, heading_policy="ignore", groups_num=0)
    assert len(groups) == 25  # N*N, L = 1
    assert all(len(g.group_id) == 2 and all(len(c) == 2 for c in g.class_ids) for g in groups)
    assert sum(g.num_images for g in groups) == len(images)
    assert sum(g.num_classes for g in groups) == 144


def test_empty_after_filtering_suggests_smaller_thresholds() -> None:
    images = _grid_city(per_class=3)
    with pytest.raises(
        ValueError,
        match=r"no class has min_images_per_class=10.*at most 3 images.*smaller min_images_per_class",
    ):
        build_cosplace_groups(images)


def test_too_few_groups_or_classes() -> None:
    images = _grid_city(cells=3)  # east/north residues 0..2 only: 3*3*2 = 18 groups
    with pytest.raises(ValueError, match=r"only 18 group\(s\) exist.*groups_num=20"):
        build_cosplace_groups(images, groups_num=20)
    # With 3x3 cells every group holds exactly one class.
    with pytest.raises(ValueError, match=r"group \(\d, \d, \d\) has 1 class\(es\).*smaller M"):
        build_cosplace_groups(images)
    assert len(build_cosplace_groups(images, min_classes_per_group=1)) == 8


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"heading_policy": "drop"}, "heading_policy"),
        ({"order": "random"}, "order"),
        ({"M": 0}, "M must be > 0"),
        ({"min_images_per_class": 0}, "min_images_per_class"),
    ],
)
def test_bad_arguments(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_cosplace_groups(_grid_city(cells=2), **kw)


def test_non_finite_utm_is_named() -> None:
    images = _grid_city(cells=2)
    images.utm[5] = np.nan
    with pytest.raises(ValueError, match=r"1 image\(s\) have no finite UTM"):
        build_cosplace_groups(images)


def test_sampler_is_seeded_uniform_and_stays_in_class() -> None:
    group = ClassGroup(
        group_id=(0, 0, 0),
        class_ids=((0, 0, 0), (100, 0, 0)),
        images_per_class=(np.array([1, 4, 9]), np.array([2, 3])),
    )
    a, b = ClassImageSampler(group, seed=5), ClassImageSampler(group, seed=5)
    draws = [a[0] for _ in range(3000)]
    assert draws[:50] == [b[0] for _ in range(50)]
    assert {lab for _, lab in draws} == {0}
    counts = np.bincount([img for img, _ in draws], minlength=10)[[1, 4, 9]]
    assert counts.sum() == 3000 and counts.min() > 900  # ~1000 each
    assert set(img for img, _ in (a[1] for _ in range(100))) == {2, 3}
    assert len(a) == 2
    with pytest.raises(IndexError, match="class index 2"):
        a[2]
    c = ClassImageSampler(group, seed=6)
    assert [c[0][0] for _ in range(50)] != [ClassImageSampler(group, seed=5)[0][0] for _ in range(50)]
