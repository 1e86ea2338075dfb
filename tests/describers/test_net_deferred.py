"""A checkpoint whose checked ONNX export is cached runs without building the torch model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from vgloc.describers import ExtractionOptions
from vgloc.describers.net import NetDescriber
from vgloc.models import create_model, save_model
from vgloc.models.extract import cpu_has_fast_bf16

OPTIONS = ExtractionOptions(image_size=(64, 96), batch_size=4, progress=False, num_workers=0)

pytestmark = pytest.mark.skipif(cpu_has_fast_bf16(), reason="the automatic CPU path is bf16 torch here")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VGLOC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    save_model(create_model("tiny+gem+fc32"), path)
    return path


@pytest.fixture
def photos(lund_dir: Path) -> list[Path]:
    return sorted(lund_dir.glob("*.jpg"))[:6]


def test_the_second_load_skips_the_model_and_gives_the_same_descriptors(
    cache: Path, checkpoint: Path, photos: list[Path]
) -> None:
    first = NetDescriber.from_spec("", checkpoint)
    assert first._model is not None  # nothing recorded yet: loaded now
    expected = first.describe(photos, OPTIONS)
    assert list(cache.glob("onnx/checkpoint-*.json"))  # recorded after the extraction

    second = NetDescriber.from_spec("", checkpoint)
    assert second._model is None
    assert (second.spec, second.descriptor_dim) == (first.spec, first.descriptor_dim)
    assert not second.prepare(photos, OPTIONS)  # (a GeM needs no clusters: still not built)
    got = second.describe(photos, OPTIONS)
    assert second._model is None
    np.testing.assert_array_equal(got, expected)


def test_int8_quantises_the_recorded_export_without_the_model(
    cache: Path, checkpoint: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from vgloc.models import quantize

    monkeypatch.setattr(quantize, "CALIBRATION_HW", (96, 128))  # (small views: a fast suite)
    int8 = ExtractionOptions(image_size=(64, 96), batch_size=4, precision="int8", progress=False)
    built = NetDescriber.from_spec("", checkpoint)
    fp32 = built.describe(photos, OPTIONS)  # records the export
    expected = built.describe(photos, int8)
    assert built._model is not None

    deferred = NetDescriber.from_spec("", checkpoint)
    assert deferred._model is None
    got = deferred.describe(photos, int8)
    assert deferred._model is None  # quantised from the export, never built
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert (got != fp32).any()  # (really the int8 graph, not fp32's)
    assert deferred._export_engine.int8_forms  # the quantised form is kept for the next call


def test_paths_the_export_cannot_serve_build_the_model(
    cache: Path, checkpoint: Path, photos: list[Path]
) -> None:
    reference = NetDescriber.from_spec("", checkpoint)
    reference.describe(photos, OPTIONS)
    torch_path = NetDescriber.from_spec("", checkpoint)
    assert torch_path._model is None
    # An explicit fp32 precision asks for the torch reference path: the model is built.
    out = torch_path.describe(
        photos, ExtractionOptions(image_size=(64, 96), precision="fp32", progress=False)
    )
    assert torch_path._model is not None
    np.testing.assert_allclose(out, reference.describe(photos, OPTIONS), atol=1e-5)


def test_a_changed_file_or_a_lost_export_is_loaded_again(
    cache: Path, checkpoint: Path, photos: list[Path]
) -> None:
    NetDescriber.from_spec("", checkpoint).describe(photos, OPTIONS)
    # Other weights in the same file: a different key, so the file is loaded.
    torch.manual_seed(1)
    save_model(create_model("tiny+gem+fc32"), checkpoint)
    changed = NetDescriber.from_spec("", checkpoint)
    assert changed._model is not None
    changed.describe(photos, OPTIONS)
    # The export evicted from the cache: its record no longer counts.
    for export in cache.glob("onnx/*.onnx"):
        export.unlink()
    assert NetDescriber.from_spec("", checkpoint)._model is not None


def test_a_spec_that_does_not_match_the_file_is_still_refused(cache: Path, checkpoint: Path, photos) -> None:  # type: ignore[no-untyped-def]
    NetDescriber.from_spec("tiny+gem+fc32", checkpoint).describe(photos, OPTIONS)
    assert NetDescriber.from_spec("tiny+gem+fc32", checkpoint)._model is None
    with pytest.raises(ValueError, match="tiny\\+gem\\+fc32"):
        NetDescriber.from_spec("tiny+avg", checkpoint)


def test_locate_from_an_index_does_not_import_torchvision_the_second_time(
    cache: Path, tmp_path: Path, tiny_city_root: Path
) -> None:
    """The point of it all: a fresh process locating a photo never imports torchvision."""
    import vgloc
    from vgloc.data import load_split

    split = load_split(tiny_city_root, "test", progress=False)
    index = tmp_path / "idx"
    vgloc.build_index(split.database, "resnet18+gem", index, options=OPTIONS, validate=False)
    photo = str(split.queries["queries"].paths[0])
    script = (
        "import sys, vgloc\n"
        f"with vgloc.Localizer.load({str(index)!r}) as loc:\n"
        f"    p = loc.locate_one({photo!r})\n"
        "print(p.matches[0].index, 'torchvision' in sys.modules)\n"
    )
    env = {"VGLOC_CACHE": str(cache), "PATH": "/usr/bin:/bin"}
    runs = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
        for _ in range(2)
    ]
    first, second = (run.stdout.split() for run in runs)
    assert first[0] == second[0]  # the same best match
    assert first[1] == "True"  # the first process built the model (torchvision)
    assert second[1] == "False"  # the second ran the recorded export alone
