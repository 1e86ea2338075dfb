"""SuperPoint: offline weight errors, a run from a weights file on a real photo, hand-checked NMS."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch

from vgloc.local import EXTRACTORS, WeightsUnavailableError, create_extractor
from vgloc.local.features import SuperPointExtractor
from vgloc.local.features.superpoint import SUPERPOINT_URLS, SuperPoint, remove_borders, simple_nms

# The tensors of the published superpoint_v1.pth / demo_superpoint.pth: name -> weight shape.
PUBLISHED_CONVS = {
    "conv1a": (64, 1, 3, 3),
    "conv1b": (64, 64, 3, 3),
    "conv2a": (64, 64, 3, 3),
    "conv2b": (64, 64, 3, 3),
    "conv3a": (128, 64, 3, 3),
    "conv3b": (128, 128, 3, 3),
    "conv4a": (128, 128, 3, 3),
    "conv4b": (128, 128, 3, 3),
    "convPa": (256, 128, 3, 3),
    "convPb": (65, 256, 1, 1),
    "convDa": (256, 128, 3, 3),
    "convDb": (256, 256, 1, 1),
}


@pytest.fixture
def empty_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache, so only the (blocked) network could supply weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


@pytest.fixture
def random_weights(tmp_path: Path) -> Path:
    """A random-weights file laid out like the published one (He-scaled so scores are not flat)."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for name, shape in PUBLISHED_CONVS.items():
        fan_in = shape[1] * shape[2] * shape[3]
        state[f"{name}.weight"] = torch.randn(shape, generator=gen) * (2.0 / fan_in) ** 0.5
        state[f"{name}.bias"] = torch.zeros(shape[0])
    path = tmp_path / "superpoint_v1.pth"
    torch.save(state, path)
    return path


def test_registered() -> None:
    assert EXTRACTORS.get("superpoint") is SuperPointExtractor
    assert (
        SuperPointExtractor.descriptor_dim == 256 and SuperPointExtractor.lightglue_features == "superpoint"
    )


def test_module_keys_match_the_published_file() -> None:
    state = SuperPoint().state_dict()
    expected = {f"{n}.{p}" for n in PUBLISHED_CONVS for p in ("weight", "bias")}
    assert set(state) == expected
    for name, shape in PUBLISHED_CONVS.items():
        assert tuple(state[f"{name}.weight"].shape) == shape


def test_offline_without_weights_fails_with_instructions(empty_torch_home: Path) -> None:
    with pytest.raises(WeightsUnavailableError) as err:
        SuperPointExtractor()
    msg = str(err.value)
    assert "SuperPoint" in msg and "weights=" in msg
    assert all(url in msg for url in SUPERPOINT_URLS)
    assert "superpoint_v1.pth" in msg

    with pytest.raises(WeightsUnavailableError, match="download=False") as err:
        SuperPointExtractor(download=False)
    assert SUPERPOINT_URLS[0] in str(err.value) and "weights=" in str(err.value)


def test_runs_from_a_weights_file_on_a_photo(random_weights: Path, lund_dir: Path) -> None:
    ext = create_extractor("superpoint", weights=random_weights, max_keypoints=300, resize=320)
    assert isinstance(ext, SuperPointExtractor)
    cfg = ext.config()
    assert cfg["nms_radius"] == 4 and cfg["detection_threshold"] == 0.0005 and cfg["remove_borders"] == 4
    assert cfg["weights"] != "published:superpoint_v1"  # the file's digest identifies it

    f = ext.extract_path(lund_dir / "01.jpg")
    w, h = f.image_size
    assert max(f.working_size) == 320
    assert 0 < len(f) <= 300
    assert f.keypoints.dtype == np.float32 and f.keypoints.shape == (len(f), 2)
    assert np.all(f.keypoints >= 0) and np.all(f.keypoints[:, 0] < w) and np.all(f.keypoints[:, 1] < h)
    assert f.descriptors.shape == (len(f), 256) and f.descriptors.dtype == np.float32 and not f.binary
    np.testing.assert_allclose(np.linalg.norm(f.descriptors, axis=1), 1.0, atol=1e-5)
    assert np.all(np.diff(f.scores) <= 0) and np.all(f.scores > 0.0005), "strongest first, above threshold"


def test_default_settings() -> None:
    """PROTOCOLS 6.3 (LightGlue's SuperPoint) and max_keypoints 2048 (vismatch/LightGlue)."""
    params = inspect.signature(SuperPointExtractor).parameters
    defaults = {name: p.default for name, p in params.items()}
    assert defaults["max_keypoints"] == 2048 and defaults["resize"] == 1024
    assert defaults["nms_radius"] == 4 and defaults["detection_threshold"] == 0.0005
    assert defaults["remove_borders"] == 4


def test_nms_keeps_exactly_the_local_maxima() -> None:
    s = torch.zeros(1, 12, 12)
    s[0, 2, 2], s[0, 2, 3] = 0.9, 0.5  # (2, 3) touches the larger (2, 2): suppressed
    s[0, 8, 8] = 0.7  # isolated
    # A ramp: (5, 5) wins; (5, 6) is its neighbour; (5, 7) is beaten only by the
    # suppressed (5, 6), so the second NMS round recovers it at radius 1.
    s[0, 5, 5], s[0, 5, 6], s[0, 5, 7] = 0.8, 0.6, 0.5

    def kept(radius: int) -> dict[tuple[int, int], float]:
        out = simple_nms(s.clone(), radius)[0]
        return {(int(i), int(j)): round(float(out[i, j]), 6) for i, j in torch.nonzero(out)}

    assert kept(1) == {(2, 2): 0.9, (5, 5): 0.8, (5, 7): 0.5, (8, 8): 0.7}
    # Radius 2: (5, 7) lies within 2 px of the kept (5, 5), so it stays suppressed.
    assert kept(2) == {(2, 2): 0.9, (5, 5): 0.8, (8, 8): 0.7}
    with pytest.raises(ValueError, match="nms_radius"):
        simple_nms(s, 0)


def test_remove_borders() -> None:
    out = remove_borders(torch.ones(1, 10, 12), 4)[0]
    assert torch.nonzero(out > 0).tolist() == [[4, 4], [4, 5], [4, 6], [4, 7], [5, 4], [5, 5], [5, 6], [5, 7]]
