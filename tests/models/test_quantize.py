"""precision="int8": a quantised ONNX Runtime graph, checked against fp32, cached, refused safely."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from vgloc.describers import ExtractionOptions
from vgloc.models import create_model, extract_descriptors
from vgloc.models import quantize as quantize_module
from vgloc.models.quantize import calibration_images


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VGLOC_CACHE", str(tmp_path))
    # Small calibration views keep the default suite fast (the real size: 480x640).
    monkeypatch.setattr(quantize_module, "CALIBRATION_HW", (96, 128))
    return tmp_path


@pytest.fixture
def street_views(tiny_city_root: Path):  # type: ignore[no-untyped-def]
    """``n`` -> street views of the tiny city's test split (not the calibration views), as uint8."""
    from vgloc.data.datasets import DecodedImageDataset

    paths = sorted((tiny_city_root / "images" / "test").rglob("*.jpg"))
    paths = [p for p in paths if p.parent.name != "aerial"]

    def make(n: int) -> DecodedImageDataset:
        return DecodedImageDataset(paths[:: max(1, len(paths) // n)][:n], (96, 128))

    return make


def _describe(model: torch.nn.Module, dataset, precision: str, engine: str = "onnxruntime") -> np.ndarray:
    return extract_descriptors(
        model, dataset, batch_size=4, precision=precision, engine=engine, progress=False
    )


def test_int8_descriptors_stay_within_cosine_0999_of_fp32(cache: Path, street_views) -> None:
    torch.manual_seed(0)
    model = create_model("resnet18+gem+fc512").eval()
    data = street_views(12)
    fp32 = _describe(model, data, "fp32")
    int8 = _describe(model, data, "int8")
    from vgloc.models.extract import last_extraction

    assert "onnxruntime int8" in last_extraction()
    cos = np.sum(fp32 * int8, axis=1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(int8, axis=1)
    assert cos.min() >= 0.999
    # Not the fp32 graph under another name: the numbers differ.
    assert not np.allclose(fp32, int8, atol=1e-6)
    # The cached int8 graph and its optimised form sit beside the export.
    names = sorted(p.name for p in (cache / "onnx").iterdir())
    assert any(".int8-" in n and n.endswith(".optimized.onnx") for n in names)
    assert any(".int8-" in n and not n.endswith(".optimized.onnx") for n in names)


def test_a_second_model_object_with_the_same_weights_reuses_the_int8_graph(
    cache: Path, monkeypatch: pytest.MonkeyPatch, street_views
) -> None:
    torch.manual_seed(1)
    model = create_model("tiny+gem").eval()
    data = street_views(6)
    first = _describe(model, data, "int8")
    twin = create_model("tiny+gem").eval()
    twin.load_state_dict(model.state_dict())

    def no_quantisation(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("quantised again although the cache holds this model's int8 graph")

    monkeypatch.setattr(quantize_module, "quantize_onnx", no_quantisation)
    np.testing.assert_array_equal(_describe(twin, data, "int8"), first)


def test_int8_that_drifts_from_fp32_is_refused_for_fp32_with_a_warning(
    cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, street_views
) -> None:
    from vgloc.models import engines
    from vgloc.models.extract import last_extraction

    torch.manual_seed(2)
    model = create_model("tiny+gem").eval()
    data = street_views(6)
    monkeypatch.setattr(engines, "MIN_INT8_COSINE", 1.5)  # no graph can pass
    with caplog.at_level(logging.WARNING, logger="vgloc.models.engines"):
        got = _describe(model, data, "int8")
    assert "int8 engine refused" in caplog.text
    assert "onnxruntime fp32" in last_extraction()
    np.testing.assert_allclose(got, _describe(model, data, "fp32"), atol=1e-6)
    # Nothing unchecked was left in the cache.
    assert not list((cache / "onnx").glob("*.int8-*"))


def test_calibration_views_are_fixed_and_cover_every_condition() -> None:
    a = calibration_images((48, 64), 8)
    b = calibration_images.__wrapped__((48, 64), 8)  # rendered again, not the memoised copy
    assert a.shape == (8, 3, 48, 64) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    brightness = a.reshape(8, -1).mean(axis=1)
    # Four daylight database views, then day, night, fog and occluded queries: the night view is darkest.
    assert int(np.argmin(brightness)) == 5
    assert len({v.tobytes() for v in a}) == 8
    with pytest.raises(ValueError, match="at least 2"):
        calibration_images((48, 64), 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "int8", "device": "cuda"}, "CPU only"),
        ({"precision": "int8", "engine": "torch"}, "ONNX Runtime"),
        ({"precision": "int4"}, "unknown precision"),
        ({"engine": "tensorrt"}, "unknown engine"),
    ],
)
def test_options_that_cannot_run_fail_when_made(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ExtractionOptions(**kwargs)


def test_the_option_lists_agree_with_the_extraction_code() -> None:
    from vgloc.describers import base
    from vgloc.models import engines, extract

    assert base.PRECISIONS == extract.PRECISIONS
    assert base.ENGINE_NAMES == engines.ENGINES


@pytest.mark.slow
def test_int8_keeps_the_real_photos_neighbours(lund_dir: Path, cache: Path, monkeypatch) -> None:
    """Real photos at the VG benchmark's size: cosine >= 0.999 and each photo's neighbours in the same order."""
    from vgloc.describers.net import NetDescriber

    monkeypatch.setattr(quantize_module, "CALIBRATION_HW", (480, 640))
    photos = sorted(lund_dir.glob("*.jpg"))
    torch.manual_seed(0)
    describer = NetDescriber.from_spec("resnet18+gem+fc512")
    options = {"image_size": (480, 640), "engine": "onnxruntime", "progress": False}
    fp32 = describer.describe(photos, ExtractionOptions(precision="fp32", **options))
    int8 = describer.describe(photos, ExtractionOptions(precision="int8", **options))
    assert np.sum(fp32 * int8, axis=1).min() >= 0.999

    from scipy.stats import spearmanr

    # A random network puts all photos within cosine ~0.003 of each other, so single
    # near-ties may flip (BENCHMARKS.md); the order of each photo's neighbours must hold.
    sims32, sims8 = fp32 @ fp32.T, int8 @ int8.T
    rho = [spearmanr(np.delete(sims32[i], i), np.delete(sims8[i], i))[0] for i in range(len(photos))]
    assert min(rho) >= 0.95 and float(np.mean(rho)) >= 0.98


def test_an_index_built_in_int8_describes_its_queries_in_int8(
    tiny_city_root: Path, tmp_path: Path, cache
) -> None:
    import vgloc
    from vgloc.data import load_split

    split = load_split(tiny_city_root, "test", progress=False)
    options = ExtractionOptions(image_size=(96, 128), precision="int8", progress=False)
    vgloc.build_index(split.database, "tiny+gem", tmp_path / "idx", options=options, validate=False)
    with vgloc.Localizer.load(tmp_path / "idx") as localizer:
        assert localizer.options.precision == "int8"
        prediction = localizer.locate_one(split.queries["queries"].paths[0])
    assert prediction.matches
