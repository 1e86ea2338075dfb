"""The describer resolver: spec (+ weights) -> describer, and what an index records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vgloc.describers import (
    ClassicalDescriber,
    Describer,
    ExtractionOptions,
    NetDescriber,
    describer_for_index,
    resolve_describer,
)
from vgloc.registry import DESCRIBERS

OPTIONS = ExtractionOptions(image_size=(32, 48), batch_size=4, progress=False)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("imgs")
    paths = []
    for i in range(6):
        pixels = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
        path = folder / f"{i}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def test_registry_lists_both_kinds_and_specs_resolve_to_them() -> None:
    assert {"net", "classical"} <= set(DESCRIBERS.names())
    assert isinstance(resolve_describer("tiny+gem"), NetDescriber)
    assert isinstance(resolve_describer("rootsift+vlad8"), ClassicalDescriber)


def test_a_describer_is_returned_as_is_and_refuses_a_checkpoint() -> None:
    d = resolve_describer("tiny+gem")
    assert resolve_describer(d) is d
    with pytest.raises(ValueError, match="does not apply"):
        resolve_describer(d, checkpoint="x.pt")


def test_networks_and_legacy_classical_objects_are_wrapped() -> None:
    from vgloc.models import create_model
    from vgloc.models.classical import ClassicalDescriber as ClassicalModel

    net = create_model("tiny+gem")
    wrapped = resolve_describer(net)
    assert isinstance(wrapped, Describer) and wrapped.model is net
    assert isinstance(resolve_describer(ClassicalModel("rootsift+vlad8")), ClassicalDescriber)
    with pytest.raises(TypeError, match="cannot describe"):
        resolve_describer(42)


def test_net_describer_gives_unit_rows_for_paths_and_in_memory_images(images: list[Path]) -> None:
    torch.manual_seed(0)
    d = resolve_describer("tiny+gem")
    from_paths = d.describe(images, OPTIONS)
    assert from_paths.shape == (6, d.descriptor_dim) and from_paths.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(from_paths, axis=1), 1.0, atol=1e-5)
    in_memory = [np.asarray(Image.open(images[0])), images[1].read_bytes(), Image.open(images[2])]
    np.testing.assert_allclose(d.describe(in_memory, OPTIONS), from_paths[:3], atol=1e-5)


def test_classical_describer_fits_on_prepare_and_describes_arrays_like_files(images: list[Path]) -> None:
    d = resolve_describer("rootsift+vlad4")
    assert d.prepare(images, OPTIONS) is True
    assert d.prepare(images, OPTIONS) is False  # already fitted
    rows = d.describe(images[:2], OPTIONS)
    same = d.describe([np.asarray(Image.open(images[0]).convert("RGB")), images[1].read_bytes()], OPTIONS)
    np.testing.assert_allclose(same, rows, atol=1e-5)


@pytest.mark.parametrize("spec", ["tiny+gem", "rootsift+vlad4"])
def test_an_index_rebuilds_the_describer_that_built_it(tmp_path: Path, images: list[Path], spec: str) -> None:
    from vgloc.data import GeoImageSet
    from vgloc.index import GeoIndex
    from vgloc.localizer import build_index

    latlon = np.column_stack([55.7 + np.arange(6) * 1e-4, np.full(6, 13.19)])
    from vgloc.geo import MetricFrame

    frame = MetricFrame.for_points(latlon[:, 0], latlon[:, 1])
    db = GeoImageSet(images, frame.to_utm(latlon[:, 0], latlon[:, 1]), latlon, np.full(6, np.nan), frame)
    torch.manual_seed(1)
    build_index(db, spec, tmp_path / "idx", options=OPTIONS)
    loaded = GeoIndex.load(tmp_path / "idx")
    assert loaded.metadata.extra["describer"]["kind"] == resolve_describer(spec).kind
    again = describer_for_index(loaded)
    assert type(again) is type(resolve_describer(spec))
    sims, ids = loaded.search(again.describe(images, OPTIONS), 1)
    np.testing.assert_array_equal(ids[:, 0], np.arange(6))  # each image finds itself
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-4)


def test_an_index_built_from_a_checkpoint_records_its_hash(tmp_path: Path, images: list[Path]) -> None:
    from vgloc.models import create_model, save_model

    torch.manual_seed(0)
    ckpt = save_model(create_model("tiny+gem"), tmp_path / "m.pt")
    d = resolve_describer("tiny+gem", ckpt)
    state = d.index_state()
    assert state.metadata["checkpoint"] == str(Path(ckpt).resolve()) and not state.files
    rebuilt = NetDescriber.load_from_index(None, state.metadata, "tiny+gem")
    np.testing.assert_allclose(rebuilt.describe(images, OPTIONS), d.describe(images, OPTIONS), atol=1e-6)
    Path(ckpt).write_bytes(Path(ckpt).read_bytes() + b"x")
    with pytest.raises(ValueError, match="changed since the index was built"):
        NetDescriber.load_from_index(None, state.metadata, "tiny+gem")


def test_a_checkpoint_of_another_architecture_is_refused(tmp_path: Path) -> None:
    from vgloc.models import create_model, save_model

    ckpt = save_model(create_model("tiny+gem"), tmp_path / "m.pt")
    with pytest.raises(ValueError, match="holds a tiny\\+gem model"):
        resolve_describer("tiny+avg", ckpt)
    with pytest.raises(FileNotFoundError):
        resolve_describer("tiny+gem", tmp_path / "missing.pt")
