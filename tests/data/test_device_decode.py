"""decode="device": JPEG bytes from the workers, decoded, oriented and resized in the main process.

TorchCodec decodes on the CPU here (no GPU in CI); on CUDA the same code calls nvJPEG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("torchcodec")

from vgloc.data.datasets import DecodedImageDataset
from vgloc.data.device_decode import DeviceDecoder, EncodedImageDataset, collate_encoded
from vgloc.data.validation import DataError
from vgloc.describers import ExtractionOptions


def _decode(paths: list, resize) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[no-untyped-def]
    dataset = EncodedImageDataset(paths, resize)
    return DeviceDecoder(resize, "cpu")(collate_encoded([dataset[i] for i in range(len(dataset))]))


def _pillow(paths: list, resize) -> torch.Tensor:  # type: ignore[no-untyped-def]
    dataset = DecodedImageDataset(paths, resize)
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


@pytest.fixture
def oriented(tmp_path: Path) -> list[Path]:
    """The same asymmetric picture stored in all 8 EXIF orientations (upright after transposing)."""
    rng = np.random.default_rng(0)
    base = np.zeros((48, 80, 3), np.uint8)
    base[:, :40] = (200, 30, 30)
    base[:12] = (20, 20, 220)
    base += rng.integers(0, 20, base.shape, dtype=np.uint8)
    upright = Image.fromarray(base)
    # The stored pixels for orientation k are the inverse of the transpose exif_transpose applies.
    inverse = {
        1: None,
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }
    paths = []
    for k, op in inverse.items():
        stored = upright if op is None else upright.transpose(op)
        exif = Image.Exif()
        exif[0x0112] = k
        path = tmp_path / f"o{k}.jpg"
        stored.save(path, quality=95, exif=exif)
        paths.append(path)
    return paths


def test_every_exif_orientation_comes_out_as_pillow_turns_it(oriented: list[Path]) -> None:
    images, indices = _decode(oriented, None)
    reference = _pillow(oriented, None)
    assert images.shape == reference.shape == (8, 3, 48, 80)
    assert indices.tolist() == list(range(8))
    # Same decoder family (libjpeg-turbo) on both sides: at most rounding differences.
    assert (images.int() - reference.int()).abs().float().mean() < 1.0
    # And all eight really are the same upright picture.
    assert (images.int() - images[:1].int()).abs().float().mean(dim=(1, 2, 3)).max() < 3.0


def test_resizing_on_the_device_stays_within_a_few_levels_of_pillow(lund_dir: Path) -> None:
    photos = sorted(lund_dir.glob("*.jpg"))[:6]
    for resize in ((96, 128), 100):
        ours = _decode(photos[:1], resize)[0]
        theirs = _pillow(photos[:1], resize)
        assert ours.shape == theirs.shape
        assert (ours.int() - theirs.int()).abs().float().mean() < 2.0


def test_png_and_in_memory_images_are_decoded_by_pillow_in_the_same_batch(tmp_path: Path, oriented) -> None:
    png = tmp_path / "a.png"
    Image.open(oriented[0]).save(png)
    array = np.asarray(Image.open(oriented[0]).convert("RGB"))
    dataset = EncodedImageDataset([oriented[0], png, array], (40, 64))
    items = [dataset[i] for i in range(3)]
    assert [item[2] for item in items] == [True, False, False]
    images, _ = DeviceDecoder((40, 64), "cpu")(collate_encoded(items))
    assert images.shape == (3, 3, 40, 64)
    assert (images[0].int() - images[1].int()).abs().float().mean() < 2.0


def test_a_damaged_jpeg_is_named(tmp_path: Path, oriented: list[Path]) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(oriented[0].read_bytes()[:200])  # the header, then nothing
    with pytest.raises(DataError, match=r"bad\.jpg"):
        _decode([oriented[0], bad], (40, 64))


def test_network_descriptors_stay_within_cosine_0999_of_the_pillow_path(lund_dir: Path) -> None:
    from vgloc.describers.net import NetDescriber

    photos = sorted(lund_dir.glob("*.jpg"))[:8]
    torch.manual_seed(0)
    describer = NetDescriber.from_spec("tiny+gem")
    common = {"image_size": (120, 160), "batch_size": 4, "progress": False, "num_workers": 0}
    pillow = describer.describe(photos, ExtractionOptions(**common))
    device = describer.describe(photos, ExtractionOptions(decode="device", **common))
    assert np.sum(pillow * device, axis=1).min() >= 0.999


def test_bad_decode_modes_fail_when_the_options_are_made(monkeypatch: pytest.MonkeyPatch) -> None:
    from vgloc.data import device_decode

    with pytest.raises(ValueError, match="unknown decode mode"):
        ExtractionOptions(decode="gpu")
    monkeypatch.setattr(device_decode, "jpeg_backend", lambda: None)
    with pytest.raises(ImportError, match=r"vgloc\[nvjpeg\]"):
        ExtractionOptions(decode="device")


def test_torchvision_decodes_when_torchcodec_is_missing(
    monkeypatch: pytest.MonkeyPatch, oriented: list[Path]
) -> None:
    from vgloc.data import device_decode

    reference = _decode(oriented, (40, 64))[0]
    monkeypatch.setattr(device_decode, "jpeg_backend", lambda: "torchvision")
    decoder = DeviceDecoder((40, 64), "cpu")
    assert decoder.backend == "torchvision" and decoder.orients  # (torchvision orients on the CPU)
    dataset = EncodedImageDataset(oriented, (40, 64))
    images, _ = decoder(collate_encoded([dataset[i] for i in range(len(dataset))]))
    assert (images.int() - reference.int()).abs().float().mean() < 1.0


def test_a_decoder_that_cannot_orient_leaves_oriented_photos_to_pillow(oriented: list[Path]) -> None:
    dataset = EncodedImageDataset(oriented, (40, 64), orients=False)
    encoded = [dataset[i][2] for i in range(len(dataset))]
    assert encoded == [True] + [False] * 7  # orientation 1 only
    images, _ = DeviceDecoder((40, 64), "cpu")(collate_encoded([dataset[i] for i in range(len(dataset))]))
    assert (images.int() - _pillow(oriented, (40, 64)).int()).abs().float().mean() < 1.0
