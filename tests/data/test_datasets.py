"""ImageDataset items, read-time errors naming the file, batching checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from tests.data.helpers import write_image
from vgloc.data import (
    DataError,
    ImageDataset,
    build_transform,
    check_batchable,
    collate_images,
    load_image,
    load_image_set,
)
from vgloc.data.exif import make_gps_exif


def test_items_are_tensor_and_index(tmp_path: Path) -> None:
    paths = [write_image(tmp_path / f"{i}.jpg", color=(10 * i, 0, 0)) for i in range(3)]
    ds = ImageDataset(paths, build_transform((6, 8)))
    assert len(ds) == 3
    image, index = ds[2]
    assert index == 2 and image.shape == (3, 6, 8)
    # Red channel of colour (20, 0, 0) after normalisation (JPEG may shift it by a level or two).
    assert image[0, 3, 4].item() == pytest.approx((20 / 255 - 0.485) / 0.229, abs=0.05)


def test_dataloader_batches_with_indices(tmp_path: Path) -> None:
    paths = [write_image(tmp_path / f"{i}.png", size=(10 + i, 7)) for i in range(5)]
    check_batchable((6, 8), 2)
    loader = DataLoader(ImageDataset(paths, build_transform((6, 8))), batch_size=2, collate_fn=collate_images)
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(2, 3, 6, 8), (2, 3, 6, 8), (1, 3, 6, 8)]
    assert torch.cat([b[1] for b in batches]).tolist() == [0, 1, 2, 3, 4]


def test_from_set_follows_set_order(tmp_path: Path) -> None:
    for name, lat in [("b.jpg", 10.0), ("a.jpg", 10.001)]:
        write_image(tmp_path / "r" / name, exif=make_gps_exif(lat, 20.0).tobytes())
    s = load_image_set(tmp_path / "r", progress=False)
    ds = ImageDataset.from_set(s, build_transform(4))
    assert ds.paths == s.paths and ds.paths[0].name == "a.jpg"


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    good = write_image(tmp_path / "good.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(good.read_bytes()[:100])
    ds = ImageDataset([good, bad], build_transform(4))
    ds[0]
    with pytest.raises(DataError, match=r"bad\.jpg: cannot read image"):
        ds[1]
    with pytest.raises(DataError, match=r"gone\.jpg"):
        load_image(tmp_path / "gone.jpg")


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = write_image(tmp_path / "phone.jpg", size=(16, 8), exif=exif.tobytes())
    assert load_image(path).size == (8, 16)
    assert load_image(path, exif_transpose=False).size == (16, 8)
    image, _ = ImageDataset([path], build_transform(None))[0]
    assert image.shape == (3, 16, 8)


def test_check_batchable() -> None:
    check_batchable(None, 1)
    check_batchable((480, 640), 32)
    check_batchable(480, 8)
    with pytest.raises(ValueError, match="resize=None"):
        check_batchable(None, 4)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        check_batchable((8, 8), 0)


def test_collate_refuses_mixed_sizes() -> None:
    batch = [(torch.zeros(3, 4, 6), 0), (torch.zeros(3, 4, 5), 1)]
    with pytest.raises(ValueError, match=r"index 0: \(3, 4, 6\), index 1: \(3, 4, 5\)"):
        collate_images(batch)


# -- the fast extraction dataset (uint8, draft decoding, batches by size) ------------------


def _photo(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    """A smooth, textured JPEG (W, H = size), like a photo rather than noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    channels = []
    for c in range(3):
        fx, fy, ph = rng.uniform(0.01, 0.06), rng.uniform(0.01, 0.06), rng.uniform(0, 6)
        channels.append(127 + 100 * np.sin(fx * xx + ph) * np.cos(fy * yy + c))
    array = np.clip(np.stack(channels, -1) + rng.normal(0, 8, (h, w, 3)), 0, 255).astype("uint8")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, quality=90)
    return path


@pytest.mark.parametrize("resize", [(24, 32), 20, None])
def test_decoded_dataset_gives_the_pixels_of_image_dataset(tmp_path: Path, resize) -> None:
    from vgloc.data.datasets import DecodedImageDataset
    from vgloc.data.transforms import NormalizeUint8

    paths = [_photo(tmp_path / f"{i}.jpg", (40 + 8 * i, 30)) for i in range(3)]
    fast = DecodedImageDataset(paths, resize, draft=False)
    slow = ImageDataset(paths, build_transform(resize, brightness=0.5))
    for i in range(3):
        u8, idx = fast[i]
        ref, _ = slow[i]
        assert idx == i and u8.dtype == torch.uint8 and u8.shape == ref.shape
        assert fast.output_size(i) == tuple(ref.shape[1:])
        torch.testing.assert_close(NormalizeUint8(0.5)(u8[None])[0], ref, atol=1e-5, rtol=0)


def test_draft_decoding_stays_close_to_a_full_decode(tmp_path: Path) -> None:
    from vgloc.data.datasets import DecodedImageDataset
    from vgloc.data.transforms import NormalizeUint8

    path = _photo(tmp_path / "big.jpg", (640, 480))
    full, _ = DecodedImageDataset([path], (120, 160), draft=False)[0]
    draft, _ = DecodedImageDataset([path], (120, 160), draft=True)[0]
    assert draft.shape == full.shape == (3, 120, 160)
    a, b = (NormalizeUint8()(t[None].float().to(torch.uint8)).flatten() for t in (full, draft))
    # Drafted no lower than twice the target, the resize still antialiases the last step:
    # within about a third of a level of the full decode (straight to 120x160 it was 1.1).
    assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.9999
    assert (full.float() - draft.float()).abs().mean() < 0.6


@pytest.mark.parametrize(
    ("target", "decoded"),
    [
        ((120, 160), (320, 240)),
        ((60, 80), (160, 120)),
        ((40, 50), (160, 120)),
        ((30, 40), (80, 60)),
        ((121, 160), (640, 480)),
    ],
)
def test_draft_never_decodes_below_twice_the_target(
    tmp_path: Path, target: tuple[int, int], decoded: tuple[int, int]
) -> None:
    from vgloc.data import images

    path = _photo(tmp_path / "big.jpg", (640, 480))
    with Image.open(path) as im:
        images._draft(im, target, True)
        # libjpeg scales by 1/2, 1/4 or 1/8 only: the smallest of those that keeps (W, H) at
        # least twice the target's, and none (full size) for a file under four times it.
        assert im.size == decoded


def test_draft_respects_exif_orientation(tmp_path: Path) -> None:
    from vgloc.data.datasets import DecodedImageDataset, image_size

    exif = Image.Exif()
    exif[0x0112] = 6
    path = write_image(tmp_path / "phone.jpg", size=(64, 32), exif=exif.tobytes())
    assert image_size(path) == (64, 32)
    image, _ = DecodedImageDataset([path], (16, 8), draft=True)[0]
    assert image.shape == (3, 16, 8)


def test_encoded_bytes_are_sized_from_the_header_and_drafted_like_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vgloc.data import images
    from vgloc.data.datasets import DecodedImageDataset, image_size

    exif = Image.Exif()
    exif[0x0112] = 6
    path = write_image(tmp_path / "phone.jpg", size=(640, 320), exif=exif.tobytes())
    data = path.read_bytes()
    # The size of an upload comes from its header, as a file's does: nothing is decoded.
    monkeypatch.setattr(images, "open_image_input", lambda *a, **k: pytest.fail("decoded for its size"))
    assert image_size(data) == image_size(path) == (640, 320)
    monkeypatch.undo()
    drafted = []
    real_draft = images._draft
    monkeypatch.setattr(images, "_draft", lambda im, *a: drafted.append(im.size) or real_draft(im, *a))
    from_bytes, _ = DecodedImageDataset([data], (80, 40), draft=True)[0]
    from_file, _ = DecodedImageDataset([path], (80, 40), draft=True)[0]
    assert drafted == [(640, 320), (640, 320)]  # both decoded at a reduced scale
    torch.testing.assert_close(from_bytes, from_file)  # (same pixels, upright)
    full, _ = DecodedImageDataset([data], (80, 40), draft=False)[0]
    assert len(drafted) == 2 and full.shape == from_bytes.shape


def test_decoded_dataset_names_the_bad_file(tmp_path: Path) -> None:
    from vgloc.data.datasets import DecodedImageDataset

    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"broken\.jpg"):
        DecodedImageDataset([bad], (8, 8))[0]
    with pytest.raises(DataError, match=r"broken\.jpg"):
        DecodedImageDataset([bad], None).output_size(0)


def test_batches_by_size_groups_and_keeps_order() -> None:
    from vgloc.data.datasets import batches_by_size

    sizes = [(4, 4), (8, 4), (4, 4), (4, 4), (8, 4)]
    assert batches_by_size(sizes, 2) == [[0, 2], [3], [1, 4]]
    assert batches_by_size([(1, 1)] * 5, 2) == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError):
        batches_by_size(sizes, 0)
