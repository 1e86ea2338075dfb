"""The GPU fast paths against their fp32 / CPU references, on a CUDA device when there is one.

Skipped without CUDA (CI has none). ``benchmarks/gpu/rows.sh`` runs this module first on
the GPU machine, so a session that is lent one checks the GPU paths' results, not only
their speed. ``VGLOC_TEST_DEVICE=cpu`` runs the same checks on the CPU (with the CPU's
reduced precision), which is how they were known to work before any GPU ran them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.training._helpers import TRAIN_CITY, small_config
from vgloc.describers import ExtractionOptions
from vgloc.describers.net import NetDescriber

DEVICE = os.environ.get("VGLOC_TEST_DEVICE", "cuda")
ON_CUDA = DEVICE.startswith("cuda")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(ON_CUDA and not torch.cuda.is_available(), reason="no CUDA device"),
]

# Reduced precisions of the device, each with the cosine to fp32 it must keep on a random
# ResNet-18 (random descriptors are all near one another, so bf16's 8-bit mantissa shows).
REDUCED = {"fp16": 0.999, "bf16": 0.99, "auto": 0.99} if ON_CUDA else {"bf16": 0.99, "auto": 0.99}
COMMON = {"image_size": (120, 160), "batch_size": 4, "progress": False, "num_workers": 0, "device": DEVICE}


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Twelve 240x320 JPEGs with smooth structure and noise (not the shared photos: they do not travel)."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:240, 0:320].astype(np.float32)
    paths = []
    for i in range(12):
        f = rng.uniform(0.01, 0.08, 3)
        planes = [np.sin(xx * f[c] + i) * np.cos(yy * f[(c + 1) % 3] - i) for c in range(3)]
        image = (np.stack(planes, -1) * 100 + 128 + rng.normal(0, 12, (240, 320, 3))).clip(0, 255)
        path = folder / f"p{i:02d}.jpg"
        Image.fromarray(image.astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("precision", list(REDUCED))
def test_reduced_precision_stays_close_to_fp32(photos: list[Path], precision: str) -> None:
    torch.manual_seed(0)
    describer = NetDescriber.from_spec("resnet18+gem+fc64")
    fp32 = describer.describe(photos, ExtractionOptions(precision="fp32", channels_last=False, **COMMON))
    fast = describer.describe(photos, ExtractionOptions(precision=precision, **COMMON))
    assert fast.shape == fp32.shape
    assert _cosines(fp32, fast).min() >= REDUCED[precision]


def test_channels_last_fp32_gives_the_fp32_descriptors(photos: list[Path]) -> None:
    torch.manual_seed(0)
    describer = NetDescriber.from_spec("resnet18+gem+fc64")
    plain = describer.describe(photos, ExtractionOptions(precision="fp32", channels_last=False, **COMMON))
    nhwc = describer.describe(photos, ExtractionOptions(precision="fp32", channels_last=True, **COMMON))
    # (cuDNN may run fp32 convolutions in TF32, PyTorch's default, with other algorithms per layout.)
    assert _cosines(plain, nhwc).min() >= (0.999 if ON_CUDA else 0.9999)


def test_decoding_on_the_device_keeps_the_descriptors(photos: list[Path]) -> None:
    torch.manual_seed(0)
    describer = NetDescriber.from_spec("tiny+gem")
    pillow = describer.describe(photos, ExtractionOptions(precision="fp32", **COMMON))
    device = describer.describe(photos, ExtractionOptions(precision="fp32", decode="device", **COMMON))
    assert _cosines(pillow, device).min() >= 0.999


def test_exact_search_on_the_device_returns_faiss_ids() -> None:
    from vgloc.index.faiss_search import exact_search
    from vgloc.index.torch_search import torch_exact_search

    rng = np.random.default_rng(1)
    database = rng.normal(size=(5000, 64)).astype(np.float32)
    queries = rng.normal(size=(100, 64)).astype(np.float32)
    scores, ids = torch_exact_search(database, queries, 10, device=DEVICE, chunk_rows=1500)
    ref_scores, ref_ids = exact_search(database, queries, 10)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["cosplace", "triplet"])
def test_training_runs_on_the_device_with_its_automatic_precision(
    tmp_path_factory: pytest.TempPathFactory, method: str
) -> None:
    from vgloc.data.synthetic import generate_city
    from vgloc.training import train

    root = generate_city(
        tmp_path_factory.mktemp("city") / "city", TRAIN_CITY, 0, image_size=(72, 96), progress=False
    )
    config = small_config(
        root, method, f"runtime.device={DEVICE}", "runtime.precision=auto", "schedule.epochs=1"
    )
    result = train(config, run_dir=tmp_path_factory.mktemp("run") / method)
    assert result.best_model is not None and result.best_model.is_file()
    steps = (result.run_dir / "steps.csv").read_text().splitlines()
    assert len(steps) > 1
    header = steps[0].split(",")
    losses = [float(row.split(",")[header.index("loss")]) for row in steps[1:]]
    assert all(math.isfinite(x) for x in losses)
