"""Preprocessing: sizes, hand-computed normalised values, brightness, contrast and saturation."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from vgloc.data import IMAGENET_MEAN, IMAGENET_STD, build_transform


def _grey(size: tuple[int, int] = (40, 20), value: int = 128, mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, value if mode == "L" else (value,) * len(mode))


def _expected(value: float) -> torch.Tensor:
    """Per-channel normalised value of a constant pixel value in [0, 1], computed by hand."""
    return torch.tensor([(value - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)])


def test_fixed_size_and_normalised_grey() -> None:
    out = build_transform((24, 32))(_grey())
    assert out.shape == (3, 24, 32) and out.dtype == torch.float32
    # 128/255 = 0.50196; channel 0: (0.50196 - 0.485) / 0.229 = 0.07406.
    torch.testing.assert_close(out[:, 0, 0], _expected(128 / 255))
    assert out[0, 0, 0].item() == pytest.approx(0.0740648, abs=1e-6)
    torch.testing.assert_close(out, _expected(128 / 255)[:, None, None].expand(3, 24, 32))


def test_int_resizes_shorter_side_keeping_aspect() -> None:
    # PIL sizes are (W, H): a 40x20 landscape image has shorter side H=20.
    assert build_transform(10)(_grey((40, 20))).shape == (3, 10, 20)
    assert build_transform(10)(_grey((20, 40))).shape == (3, 20, 10)


def test_none_keeps_full_resolution() -> None:
    assert build_transform(None)(_grey((37, 23))).shape == (3, 23, 37)


def test_brightness_halves_before_normalisation() -> None:
    out = build_transform((8, 8), brightness=0.5)(_grey(value=200))
    torch.testing.assert_close(out[:, 3, 3], _expected(0.5 * 200 / 255))
    dark = build_transform(None, brightness=0.15)(_grey(value=255))
    torch.testing.assert_close(dark[:, 0, 0], _expected(0.15))


def test_non_rgb_modes_become_three_channels() -> None:
    for mode in ("L", "RGBA", "P"):
        image = _grey(mode="L").convert(mode)
        out = build_transform((4, 4))(image)
        assert out.shape == (3, 4, 4)
        torch.testing.assert_close(out[:, 0, 0], _expected(128 / 255))


def test_antialiased_downscale_averages_stripes() -> None:
    # 1-pixel black/white columns: antialiasing averages them to grey, nearest sampling would not.
    stripes = Image.new("L", (64, 64))
    stripes.putdata([255 * (i % 2) for i in range(64 * 64)])
    out = build_transform((8, 8))(stripes)
    torch.testing.assert_close(out[:, 4, 4], _expected(127.5 / 255), atol=0.05, rtol=0)


def test_transform_pickles_for_worker_processes() -> None:
    t = pickle.loads(pickle.dumps(build_transform((8, 8), brightness=0.3)))
    torch.testing.assert_close(t(_grey(value=100))[:, 0, 0], _expected(0.3 * 100 / 255))


@pytest.mark.parametrize(
    ("resize", "brightness"),
    [
        (0, None),
        ((8, -1), None),
        ((8, 8, 8), None),
        (True, None),
        (8, 0.0),
        (8, float("nan")),
        ((8.5, 8), None),
    ],
)
def test_bad_arguments(resize: object, brightness: float | None) -> None:
    with pytest.raises(ValueError):
        build_transform(resize, brightness=brightness)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- contrast, saturation


def _halves(left: int, right: int) -> Image.Image:
    """A grey image whose left half has pixel value ``left`` and right half ``right``."""
    image = Image.new("RGB", (4, 2), (left,) * 3)
    image.paste((right,) * 3, (2, 0, 4, 2))
    return image


def _unnormalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    return x * std + mean


def test_contrast_blends_with_the_mean_grey() -> None:
    # Halves 0.2 and 0.6 (51, 153 / 255): mean 0.4; contrast 0.5 -> 0.5 x + 0.5 * 0.4 = 0.3 and 0.5.
    out = _unnormalise(build_transform(None, contrast=0.5)(_halves(51, 153)))
    torch.testing.assert_close(out[:, 0, 0], torch.full((3,), 0.3), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[:, 0, 3], torch.full((3,), 0.5), atol=1e-4, rtol=0)
    flat = _unnormalise(build_transform(None, contrast=0.0)(_halves(51, 153)))
    torch.testing.assert_close(flat, torch.full_like(flat, 0.4), atol=1e-4, rtol=0)


def test_saturation_blends_with_the_greyscale_image() -> None:
    # Pure red: greyscale 0.2989 (ITU-R 601 weights); saturation 0.5 -> R 0.5 + 0.14945, G/B 0.14945.
    red = Image.new("RGB", (2, 2), (255, 0, 0))
    out = _unnormalise(build_transform(None, saturation=0.5)(red))
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([0.64945, 0.14945, 0.14945]), atol=1e-4, rtol=0)
    grey = _unnormalise(build_transform(None, saturation=0.0)(red))
    torch.testing.assert_close(grey[:, 1, 1], torch.full((3,), 0.2989), atol=1e-4, rtol=0)


def test_batched_normalisation_matches_the_transform_per_image() -> None:
    from vgloc.data.transforms import NormalizeUint8

    images = [_halves(51, 153), Image.new("RGB", (4, 2), (200, 30, 90))]
    options = {"brightness": 0.7, "contrast": 0.6, "saturation": 1.5}
    ref = torch.stack([build_transform(None, **options)(im) for im in images])
    u8 = torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in images])
    torch.testing.assert_close(NormalizeUint8(**options)(u8), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("options", [{"contrast": -0.5}, {"saturation": float("nan")}])
def test_bad_contrast_or_saturation(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="finite factor >= 0"):
        build_transform(None, **options)


@pytest.mark.parametrize("resize", [(96, 128), (480, 640), 100, 33, (37, 37)])
def test_resize_image_gives_torchvision_s_pixels(resize) -> None:  # type: ignore[no-untyped-def]
    """Pillow directly (no torchvision import) must stay byte-identical to torchvision's resize."""
    from PIL import Image
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    from vgloc.data.transforms import resize_image

    rng = np.random.default_rng(0)
    for h, w in ((120, 160), (161, 97), (480, 640), (100, 100)):
        image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        ours = resize_image(image, resize)
        theirs = TF.resize(
            image,
            list(resize) if isinstance(resize, tuple) else resize,
            InterpolationMode.BILINEAR,
            antialias=True,
        )
        assert ours.size == theirs.size
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
