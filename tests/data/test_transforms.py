"""Preprocessing: sizes, hand-computed normalised values, brightness scaling."""

from __future__ import annotations

import pickle

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
