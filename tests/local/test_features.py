"""Local feature extractors: output contract, original-frame keypoints, RootSIFT, learned-weight errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.local._helpers import textured_image, write_rgb
from vgloc.local import (
    EXTRACTORS,
    AKAZEExtractor,
    DISKExtractor,
    LightGlueMatcher,
    LoFTRMatcher,
    ORBExtractor,
    RootSIFTExtractor,
    SIFTExtractor,
    WeightsUnavailableError,
    create_extractor,
    root_sift,
)
from vgloc.registry import UnknownNameError


def test_root_sift_hand_computed() -> None:
    out = root_sift(np.array([[1.0, 3.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(out[0], [0.5, np.sqrt(0.75), 0, 0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out[0]), 1.0, atol=1e-6)
    np.testing.assert_array_equal(out[1], 0)
    with pytest.raises(ValueError, match="non-negative"):
        root_sift(np.array([[-1.0, 1.0]]))


@pytest.mark.parametrize(
    ("name", "dtype", "dim"),
    [
        ("sift", np.float32, 128),
        ("rootsift", np.float32, 128),
        ("orb", np.uint8, 32),
        ("akaze", np.uint8, 61),
    ],
)
def test_opencv_extractor_contract(name: str, dtype: type, dim: int) -> None:
    img = textured_image(320, 240)
    f = create_extractor(name, max_keypoints=150, resize=None)(img)
    assert 10 < len(f) <= 150
    assert f.keypoints.shape == (len(f), 2) and f.keypoints.dtype == np.float32
    assert f.descriptors.shape == (len(f), dim) and f.descriptors.dtype == dtype
    assert f.binary == (dtype == np.uint8)
    assert np.all(f.keypoints >= -0.5) and np.all(f.keypoints[:, 0] < 320) and np.all(f.keypoints[:, 1] < 240)
    assert np.all(np.diff(f.scores) <= 0), "strongest first"
    assert f.image_size == (320, 240) and f.working_size == (320, 240)
    if name == "rootsift":
        np.testing.assert_allclose(np.linalg.norm(f.descriptors, axis=1), 1.0, atol=1e-4)


def test_keypoints_are_reported_in_the_original_frame() -> None:
    """A 2x nearest-upscaled image shrunk back by the resize is the same working image,
    so its keypoints must be the small image's mapped by x_big = 2 x_small + 0.5."""
    small = textured_image(200, 150, seed=2)
    big = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)
    ext_small = SIFTExtractor(max_keypoints=300, resize=None)
    ext_big = SIFTExtractor(max_keypoints=300, resize=200)  # longer side 400 -> 200
    fs, fb = ext_small(small), ext_big(big)
    assert fb.working_size == (200, 150) and fb.image_size == (400, 300) and fb.scale == (0.5, 0.5)
    np.testing.assert_allclose(fb.keypoints, 2 * fs.keypoints + 0.5, atol=1e-3)
    np.testing.assert_array_equal(fb.descriptors, fs.descriptors)
    np.testing.assert_allclose(fb.scales, 2 * fs.scales, rtol=1e-5)


def test_resize_rules() -> None:
    img = textured_image(320, 240)
    assert SIFTExtractor(resize=160)(img).working_size == (160, 120)
    assert SIFTExtractor(resize=(128, 128))(img).working_size == (128, 128)  # To-Match's square
    assert SIFTExtractor(resize=1000)(img).working_size == (320, 240)  # never upscaled
    with pytest.raises(ValueError, match="resize"):
        SIFTExtractor(resize=0)
    with pytest.raises(ValueError, match="max_keypoints"):
        ORBExtractor(max_keypoints=0)


def test_flat_image_gives_empty_features() -> None:
    f = AKAZEExtractor()(np.full((64, 64, 3), 128, np.uint8))
    assert len(f) == 0 and f.descriptors.shape == (0, 61) and f.binary


def test_extract_path_and_bad_file(tmp_path: Path) -> None:
    path = write_rgb(tmp_path / "a.png", textured_image(160, 120))
    assert len(RootSIFTExtractor().extract_path(path)) > 0
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"bad\.jpg"):
        RootSIFTExtractor().extract_path(bad)


def test_unknown_extractor_suggests_names() -> None:
    with pytest.raises(UnknownNameError, match="rootsift"):
        EXTRACTORS.get("rootsfit")


# ----------------------------------------------------------------------------- learned (kornia)


@pytest.fixture
def empty_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache, so only the (blocked) network could supply weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def test_disk_without_weights_fails_with_instructions(empty_torch_home: Path) -> None:
    with pytest.raises(WeightsUnavailableError) as err:
        DISKExtractor()
    msg = str(err.value)
    assert "DISK" in msg and "depth-save.pth" in msg and "weights=" in msg
    assert str(empty_torch_home) in msg  # names the cache it looked in


def test_download_false_fails_without_trying(empty_torch_home: Path) -> None:
    with pytest.raises(WeightsUnavailableError, match="download=False"):
        DISKExtractor(download=False)
    with pytest.raises(WeightsUnavailableError, match="loftr_outdoor"):
        LoFTRMatcher(download=False)
    with pytest.raises(WeightsUnavailableError, match="disk_lightglue"):
        LightGlueMatcher("disk", download=False)


def test_missing_weights_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.pth"):
        DISKExtractor(weights=tmp_path / "nope.pth")


def test_disk_and_lightglue_run_from_weight_files(tmp_path: Path) -> None:
    """Random weights saved as files go through the same loading path as published ones."""
    import torch
    from kornia.feature import DISK, LightGlue

    torch.manual_seed(0)
    disk_file = tmp_path / "disk.pth"
    torch.save({"extractor": DISK().state_dict()}, disk_file)  # the layout of depth-save.pth
    ext = DISKExtractor(weights=disk_file, max_keypoints=64, resize=64)
    img = textured_image(128, 96)
    f0, f1 = ext(img), ext(img[:, ::-1].copy())
    assert 0 < len(f0) <= 64 and f0.descriptors.shape == (len(f0), 128) and f0.descriptors.dtype == np.float32
    assert f0.image_size == (128, 96) and f0.working_size == (64, 48)
    assert ext.config()["weights"] != "kornia:depth"  # the file's digest identifies it

    arch = {k: v for k, v in LightGlue.features["disk"].items() if k != "weights"}
    lg_file = tmp_path / "disk_lightglue.pth"
    torch.save(LightGlue(None, **arch).state_dict(), lg_file)
    res = LightGlueMatcher("disk", weights=lg_file).match(f0, f1)
    assert res.matches.shape[1] == 2 and len(res.scores) == len(res.matches)
    if len(res.matches):
        assert res.matches[:, 0].max() < len(f0) and res.matches[:, 1].max() < len(f1)
    with pytest.raises(ValueError, match="cannot match 'orb'"):
        LightGlueMatcher("disk", weights=lg_file).check_extractor(ORBExtractor())
