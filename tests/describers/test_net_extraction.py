"""NetDescriber's extraction path: native sizes batch by size, workers, errors naming files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vgloc.data import DataError
from vgloc.describers import ExtractionOptions
from vgloc.describers.net import NetDescriber
from vgloc.models import create_model


def _photos(folder: Path, sizes: list[tuple[int, int]]) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (w, h) in enumerate(sizes):
        array = rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8)
        path = folder / f"{i}.jpg"
        Image.fromarray(array).resize((w, h), Image.BILINEAR).save(path, quality=92)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def describer() -> NetDescriber:
    torch.manual_seed(0)
    return NetDescriber(create_model("tiny+gem+fc32"))


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


def test_native_size_batches_by_size_like_batch_size_one(tmp_path: Path, describer: NetDescriber) -> None:
    paths = _photos(tmp_path, [(64, 48), (48, 64), (64, 48), (80, 40), (64, 48), (48, 64)])
    plain = ExtractionOptions(image_size=None, batch_size=1, progress=False, precision="fp32", engine="torch")
    batched = ExtractionOptions(image_size=None, batch_size=4, progress=False, num_workers=0)
    ref = describer.describe(paths, plain)
    out = describer.describe(paths, batched)
    assert out.shape == ref.shape
    assert _cos(out, ref) >= 0.9999


def test_defaults_match_the_plain_fp32_path(tmp_path: Path, describer: NetDescriber) -> None:
    """The default (automatic) fast path against torch fp32, NCHW, no workers, batch 1."""
    from vgloc.models.extract import cpu_has_fast_bf16

    paths = _photos(tmp_path, [(64, 48)] * 40)
    plain = ExtractionOptions(
        image_size=(32, 40),
        batch_size=1,
        progress=False,
        precision="fp32",
        channels_last=False,
        engine="torch",
    )
    ref = describer.describe(paths, plain)
    out = describer.describe(paths, ExtractionOptions(image_size=(32, 40), progress=False, batch_size=4))
    assert _cos(out, ref) >= (0.999 if cpu_has_fast_bf16() else 0.9999)


def test_default_draft_decoding_keeps_descriptors_and_rankings(
    tmp_path: Path, describer: NetDescriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drafting (the default) against a full decode, on files 8x the network's input."""
    from vgloc.data import images

    # Six places, each seen twice (two overlapping 640x480 crops of one scene); each scene
    # has its own colours and texture scale, which a random network's pooled features see.
    rng = np.random.default_rng(1)
    paths = []
    for place in range(6):
        cells = (8 + 6 * place, 11 + 8 * place)
        texture = rng.uniform(0, 1, (*cells, 3)) * rng.uniform(40, 160, 3) + rng.uniform(0, 90, 3)
        scene = Image.fromarray(texture.astype(np.uint8)).resize((700, 520), Image.BICUBIC)
        for view, (x, y) in enumerate([(0, 0), (40, 30)]):
            paths.append(tmp_path / f"{place}_{view}.jpg")
            scene.crop((x, y, x + 640, y + 480)).save(paths[-1], quality=92)
    decoded: list[tuple[int, int]] = []
    real = images._draft

    def spy(im: Image.Image, *args: object) -> None:
        real(im, *args)  # type: ignore[arg-type]
        decoded.append(im.size)

    monkeypatch.setattr(images, "_draft", spy)
    common = {"image_size": (60, 80), "progress": False, "num_workers": 0}
    full = describer.describe(paths, ExtractionOptions(**common, jpeg_draft=False))  # type: ignore[arg-type]
    assert decoded == []
    drafted = describer.describe(paths, ExtractionOptions(**common))  # type: ignore[arg-type]
    assert decoded == [(160, 120)] * 12  # 1/4 scale: twice the 60x80 input, not less
    assert _cos(drafted, full) >= 0.999
    # The same prediction: every view's nearest other image is the other view of its place.
    pair = np.arange(12) ^ 1
    for d in (full, drafted):
        similarity = d @ d.T
        np.fill_diagonal(similarity, -np.inf)
        np.testing.assert_array_equal(similarity.argmax(1), pair)


def test_workers_give_identical_descriptors(tmp_path: Path, describer: NetDescriber) -> None:
    paths = _photos(tmp_path, [(64, 48)] * 12)
    opts = {
        "image_size": (32, 40),
        "batch_size": 3,
        "progress": False,
        "engine": "torch",
        "precision": "fp32",
    }
    ref = describer.describe(paths, ExtractionOptions(num_workers=0, **opts))  # type: ignore[arg-type]
    out = describer.describe(paths, ExtractionOptions(num_workers=2, **opts))  # type: ignore[arg-type]
    np.testing.assert_array_equal(out, ref)


def test_query_brightness_is_applied(tmp_path: Path, describer: NetDescriber) -> None:
    paths = _photos(tmp_path, [(64, 48)] * 2)
    opts = ExtractionOptions(image_size=(32, 40), progress=False, brightness=0.2, engine="torch")
    assert not np.allclose(describer.describe(paths, opts, queries=True), describer.describe(paths, opts))


def test_query_contrast_and_saturation_are_applied_like_the_transform(
    tmp_path: Path, describer: NetDescriber
) -> None:
    from vgloc.data import build_transform

    paths = _photos(tmp_path, [(64, 48)] * 2)
    opts = ExtractionOptions(
        image_size=(32, 40), progress=False, contrast=0.5, saturation=0.3, engine="torch"
    )
    plain = ExtractionOptions(image_size=(32, 40), progress=False, engine="torch")
    queries = describer.describe(paths, opts, queries=True)
    # The database is never adjusted.
    assert np.allclose(describer.describe(paths, opts), describer.describe(paths, plain))
    assert not np.allclose(queries, describer.describe(paths, plain))
    # The batched path (NormalizeUint8) gives what the per-image transform gives.
    t = build_transform((32, 40), contrast=0.5, saturation=0.3)
    x = torch.stack([t(Image.open(p)) for p in paths])
    with torch.no_grad():
        ref = describer.model.eval()(x).numpy()
    assert _cos(queries, ref) > 0.9999


@pytest.mark.parametrize("image_size", [(32, 40), None])
def test_a_bad_file_is_named(tmp_path: Path, describer: NetDescriber, image_size) -> None:
    paths = _photos(tmp_path, [(64, 48)] * 2)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(paths[0].read_bytes()[:200])
    opts = ExtractionOptions(image_size=image_size, progress=False, num_workers=0)
    with pytest.raises(DataError, match=r"broken\.jpg"):
        describer.describe([*paths, bad], opts)
