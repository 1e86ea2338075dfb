"""Multi-scale testing: fusion rules, the wrapper over a describer, and what an index records."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vgloc.describers import (
    Describer,
    ExtractionOptions,
    IndexState,
    MultiScaleDescriber,
    resolve_describer,
)
from vgloc.describers.multiscale import (
    ScaleFusion,
    apply_scales,
    check_fusion,
    check_scales,
    fuse_descriptors,
    recorded_scales,
    scale_settings,
    scaled_size,
)
from vgloc.models.published import Preprocessing

OPTIONS = ExtractionOptions(image_size=(32, 48), batch_size=4, progress=False)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Five random PNGs: three of 48x64 and two of 40x56 (two native sizes)."""
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("imgs")
    paths = []
    for i, (h, w) in enumerate([(48, 64), (40, 56), (48, 64), (40, 56), (48, 64)]):
        path = folder / f"{i}.png"
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def net() -> Describer:
    import torch

    torch.manual_seed(0)
    return resolve_describer("tiny+gem")


# -- fusion on hand-made descriptors ----------------------------------------------------

# Two scales of two images, D = 3; the expected rows are worked out by hand below.
A = [[0.6, 0.8, 0.0], [-1.0, 0.0, 0.0]]
B = [[0.0, 0.6, 0.8], [0.0, 1.0, 0.0]]
R = math.sqrt(0.5)
EXPECTED = {
    # row 0: mean (0.3, 0.7, 0.4), norm sqrt(0.74); row 1: mean (-0.5, 0.5, 0), norm sqrt(0.5)
    "avg": [[0.3 / math.sqrt(0.74), 0.7 / math.sqrt(0.74), 0.4 / math.sqrt(0.74)], [-R, R, 0.0]],
    # the sum is twice the mean: the same direction
    "sum": [[0.6 / math.sqrt(2.96), 1.4 / math.sqrt(2.96), 0.8 / math.sqrt(2.96)], [-R, R, 0.0]],
    # row 0: max (0.6, 0.8, 0.8), norm sqrt(1.64); row 1: (0, 1, 0)
    "max": [[0.6 / math.sqrt(1.64), 0.8 / math.sqrt(1.64), 0.8 / math.sqrt(1.64)], [0.0, 1.0, 0.0]],
    # row 0: min (0, 0.6, 0) -> (0, 1, 0); row 1: (-1, 0, 0)
    "min": [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]],
}


@pytest.mark.parametrize("fusion", ["avg", "sum", "max", "min"])
def test_each_fusion_matches_the_hand_computed_rows(fusion: str) -> None:
    fused = fuse_descriptors(np.array([A, B]), fusion)
    assert fused.shape == (2, 3) and fused.dtype == np.float32
    np.testing.assert_allclose(fused, EXPECTED[fusion], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-6)


def test_avg_and_sum_give_the_same_descriptors_after_renormalisation() -> None:
    stack = np.random.default_rng(1).normal(size=(3, 10, 16)).astype(np.float32)
    np.testing.assert_allclose(fuse_descriptors(stack, "avg"), fuse_descriptors(stack, "sum"), atol=1e-6)
    assert not np.allclose(fuse_descriptors(stack, "max"), fuse_descriptors(stack, "avg"), atol=1e-3)


def test_a_row_that_fuses_to_zero_stays_zero_and_one_scale_passes_through() -> None:
    fused = fuse_descriptors(np.array([[[1.0, 0.0]], [[0.0, 1.0]]]), "min")
    np.testing.assert_array_equal(fused, [[0.0, 0.0]])
    one = np.array([[[0.6, 0.8]]], dtype=np.float32)
    np.testing.assert_array_equal(fuse_descriptors(one, "max"), one[0])
    with pytest.raises(ValueError, match=r"\(S, N, D\)"):
        fuse_descriptors(np.ones((2, 3)), "avg")
    fuser = ScaleFusion("avg")
    fuser.add(np.ones((2, 3)))
    with pytest.raises(ValueError, match="scale 2 gave shape"):
        fuser.add(np.ones((3, 3)))


def test_bad_scales_and_fusions_are_refused_clearly() -> None:
    assert check_scales([0.5, 1, 1.5]) == (0.5, 1.0, 1.5)
    for bad, message in [
        ([], "at least one scale"),
        ([0.5, 0], "positive"),
        ([-1], "positive"),
        ([float("nan")], "positive"),
        ([1, 0.5, 1], "given more than once"),
        ("0.5,1", "string"),
        (["a"], "must be numbers"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_scales(bad)  # type: ignore[arg-type]
    assert check_fusion("MAX") == "max"
    with pytest.raises(ValueError, match="avg, sum, max, min"):
        check_fusion("mean")
    # Options refuse them when they are made, before any model is loaded.
    assert ExtractionOptions(scales=[2, 0.5], scale_fusion="Min").scales == (2.0, 0.5)
    with pytest.raises(ValueError, match="positive"):
        ExtractionOptions(scales=(0.5, 0.0))
    with pytest.raises(ValueError, match="unknown scale fusion"):
        ExtractionOptions(scales=(0.5, 1.0), scale_fusion="median")


def test_scaled_sizes_round_and_respect_the_networks_multiple() -> None:
    assert scaled_size((480, 640), 0.5) == (240, 320)
    assert scaled_size((480, 640), 1.7) == (816, 1088)
    # DINOv2: 322 * 0.7 = 225.4 -> 16 patches of 14 = 224; 322 * 1.9 = 611.8 -> 44 * 14 = 616
    assert scaled_size((322, 322), 0.7, 14) == (224, 224)
    assert scaled_size((322, 322), 1.9, 14) == (616, 616)
    with pytest.raises(ValueError, match="below 16 px"):
        scaled_size((32, 48), 0.25)


# -- the wrapper ---------------------------------------------------------------------------


class SizeEcho(Describer):
    """A fake network: records the sizes it is asked for, and encodes them in its output."""

    kind = "net"

    def __init__(self, multiple: int = 1) -> None:
        self.preprocessing = Preprocessing(image_size=(322, 322), multiple_of=multiple)
        self.default_image_size = self.preprocessing.image_size
        self.calls: list[tuple[int, int] | None] = []

    @property
    def spec(self) -> str:
        return "echo"

    @property
    def descriptor_dim(self) -> int:
        return 2

    def describe(
        self, images: Sequence[Any], options: ExtractionOptions, *, queries: bool = False
    ) -> np.ndarray:
        size = self.resolve_options(options).image_size
        assert isinstance(size, tuple)
        self.calls.append(size)
        row = np.array(size, dtype=np.float32) / np.linalg.norm(size)
        return np.tile(row, (len(images), 1))

    def index_state(self) -> IndexState:
        return IndexState({"kind": self.kind}, {})


def test_the_wrapper_asks_for_each_scaled_size_rounded_to_the_multiple() -> None:
    inner = SizeEcho(multiple=14)
    wrapper = MultiScaleDescriber(inner, (0.7, 1, 1.9), "avg")
    out = wrapper.describe(["a", "b"], ExtractionOptions(progress=False))  # "auto": 322x322
    assert inner.calls == [(224, 224), (322, 322), (616, 616)]
    assert out.shape == (2, 2) and wrapper.spec == "echo" and wrapper.descriptor_dim == 2
    with pytest.raises(ValueError, match="below 16 px"):
        MultiScaleDescriber(SizeEcho(), (0.01, 1)).resolve_options(OPTIONS)


def test_a_dinov2_spec_gets_sizes_in_multiples_of_14(monkeypatch: pytest.MonkeyPatch) -> None:
    net = resolve_describer("dinov2_vits14+gem")  # built from a spec: its preprocessing says 1
    asked: list[Any] = []

    def describe(images: Sequence[Any], options: ExtractionOptions, *, queries: bool = False) -> np.ndarray:
        asked.append(options.image_size)
        return np.ones((len(images), net.descriptor_dim), dtype=np.float32)

    monkeypatch.setattr(net, "describe", describe)
    MultiScaleDescriber(net, (0.5, 1.0), "avg").describe(
        ["a.jpg"], dataclasses.replace(OPTIONS, image_size=(322, 322))
    )
    assert asked == [(168, 168), (322, 322)]  # 161 -> 12 patches of 14


def test_one_scale_of_one_equals_the_plain_describer_exactly(net: Describer, images: list[Path]) -> None:
    wrapper = MultiScaleDescriber(net, (1,), "max")
    np.testing.assert_array_equal(wrapper.describe(images, OPTIONS), net.describe(images, OPTIONS))
    native = dataclasses.replace(OPTIONS, image_size=None)
    np.testing.assert_array_equal(wrapper.describe(images, native), net.describe(images, native))


def test_two_scales_fuse_the_two_single_scale_descriptors(net: Describer, images: list[Path]) -> None:
    half = net.describe(images, dataclasses.replace(OPTIONS, image_size=(16, 24)))
    full = net.describe(images, OPTIONS)
    fused = MultiScaleDescriber(net, (0.5, 1), "avg").describe(images, OPTIONS)
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-5)
    assert np.abs(fused - full).max() > 1e-3 and np.abs(fused - half).max() > 1e-3
    np.testing.assert_allclose(fused, fuse_descriptors(np.stack([half, full]), "avg"), atol=1e-6)


def test_native_size_scales_each_images_own_size(net: Describer, images: list[Path]) -> None:
    native = dataclasses.replace(OPTIONS, image_size=None)
    fused = MultiScaleDescriber(net, (0.5, 1), "max").describe(images, native)
    for row, path in enumerate(images):
        h, w = Image.open(path).size[::-1]
        per_scale = [
            net.describe([path], dataclasses.replace(OPTIONS, image_size=size))
            for size in ((round(h / 2), round(w / 2)), (h, w))
        ]
        np.testing.assert_allclose(fused[row], fuse_descriptors(np.stack(per_scale), "max")[0], atol=1e-5)


def test_a_describer_at_its_own_resolution_is_refused() -> None:
    with pytest.raises(ValueError, match="networks only"):
        MultiScaleDescriber(resolve_describer("rootsift+vlad8"), (0.5, 1))
    with pytest.raises(ValueError, match="already multi-scale"):
        MultiScaleDescriber(MultiScaleDescriber(SizeEcho(), (0.5, 1)), (1, 2))


def test_apply_scales_wraps_only_when_asked_and_refuses_conflicts() -> None:
    plain = SizeEcho()
    assert apply_scales(plain, ExtractionOptions()) is plain
    assert apply_scales(plain, ExtractionOptions(scales=(1.0,), scale_fusion="max")) is plain
    wrapped = apply_scales(plain, ExtractionOptions(scales=(0.5, 1), scale_fusion="min"))
    assert isinstance(wrapped, MultiScaleDescriber) and wrapped.inner is plain
    assert (wrapped.scales, wrapped.fusion) == ((0.5, 1.0), "min")
    assert scale_settings(wrapped) == {"scales": [0.5, 1.0], "scale_fusion": "min"}
    assert scale_settings(plain) == {"scales": [1.0], "scale_fusion": None}
    assert apply_scales(wrapped, ExtractionOptions()) is wrapped
    with pytest.raises(ValueError, match=re.escape("options ask for scale 1, but scales 0.5,1 fused by min")):
        apply_scales(wrapped, ExtractionOptions(scales=(1.0,)))
    with pytest.raises(ValueError, match="without scales"):
        apply_scales(plain, ExtractionOptions(scale_fusion="max"))
    with pytest.raises(ValueError, match="options ask for"):
        wrapped.describe(["a"], ExtractionOptions(scales=(2.0,), progress=False))


# -- what an index records -----------------------------------------------------------------


def test_an_index_records_its_scales_and_locating_reuses_them(tiny_city_root: Path, tmp_path: Path) -> None:
    from vgloc.data import load_split
    from vgloc.index import GeoIndex
    from vgloc.indexing import add_to_index, build_index
    from vgloc.localizer import Localizer

    db = load_split(tiny_city_root, "test").database
    options = dataclasses.replace(OPTIONS, scales=(0.5, 1.0), scale_fusion="max")
    build_index(db.subset(range(6)), "tiny+gem", tmp_path / "idx", options=options)
    meta = GeoIndex.read_metadata(tmp_path / "idx")
    assert recorded_scales(meta.extra) == ((0.5, 1.0), "max")
    assert meta.extra["describer"]["inner_kind"] == "net" and meta.model_spec == "tiny+gem"

    with Localizer.load(tmp_path / "idx", top_k=1) as localizer:
        assert isinstance(localizer.describer, MultiScaleDescriber)
        assert (localizer.describer.scales, localizer.describer.fusion) == ((0.5, 1.0), "max")
        # A database photo, described as the database was, finds itself at similarity 1.
        [pred] = localizer.locate([db.paths[3]])
        assert Path(pred.matches[0].path) == db.paths[3]
        assert pred.matches[0].similarity == pytest.approx(1.0, abs=1e-4)
    # Given explicitly, other scales (or fusion) are refused, before any photo is described.
    for asked in [{"scales": (1.0,)}, {"scales": (0.5, 1.0), "scale_fusion": "avg"}, {"scale_fusion": "min"}]:
        with pytest.raises(
            ValueError, match=re.escape("the index was described at scales 0.5,1 fused by max")
        ):
            Localizer.load(tmp_path / "idx", options=dataclasses.replace(OPTIONS, **asked))
    with pytest.raises(ValueError, match="the index was described at"):
        add_to_index(
            tmp_path / "idx", db.subset(range(6, 8)), options=dataclasses.replace(OPTIONS, scales=(2.0,))
        )
    # Adding with the index's own scales keeps the recorded describer.
    updated, added = add_to_index(tmp_path / "idx", db.subset(range(6, 8)), options=OPTIONS)
    assert added == 2 and recorded_scales(updated.metadata.extra) == ((0.5, 1.0), "max")


def test_scales_with_a_classical_describer_are_refused_before_its_vocabulary_is_fitted(
    tiny_city_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vgloc.describers import ClassicalDescriber
    from vgloc.evaluation import evaluate
    from vgloc.indexing import build_index

    def fit(*args: object, **kwargs: object) -> bool:
        raise AssertionError("the vocabulary was fitted before the scales were checked")

    monkeypatch.setattr(ClassicalDescriber, "prepare", fit)
    options = ExtractionOptions(scales=(0.5, 1.0), progress=False)
    with pytest.raises(ValueError, match="networks only"):
        evaluate(tiny_city_root, model="rootsift+vlad8", options=options)
    with pytest.raises(ValueError, match="networks only"):
        build_index(tiny_city_root / "images" / "test" / "database", "rootsift+vlad8", options=options)
