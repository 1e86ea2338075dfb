"""The weight-free RootSIFT+VLAD descriptor: VLAD by hand, shapes, norms, retrieval, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vgloc.local import ClassicalVLAD, vlad

FRAMES = ["01", "06", "11", "16", "21", "26"]


def test_vlad_hand_computed() -> None:
    centroids = np.array([[0.0, 0.0], [10.0, 0.0]])
    # Assignments 0, 0, 1: residual sums (1, 1) and (1, 1); intra-normalised to
    # (1/√2, 1/√2) each; signed square root 2^(-1/4) everywhere; final L2 -> 0.5 each.
    np.testing.assert_allclose(vlad(np.array([[1.0, 0], [0, 1], [11, 1]]), centroids), [0.5] * 4, atol=1e-6)
    # Only cluster 0 used: (1/√2, 1/√2) -> 2^(-1/4) twice -> L2 -> (1/√2, 1/√2, 0, 0).
    np.testing.assert_allclose(
        vlad(np.array([[1.0, 0], [0, 1]]), centroids), [2**-0.5, 2**-0.5, 0, 0], atol=1e-6
    )
    # Signs survive the power normalisation: residual (-3, 0) -> (-1, 0) -> (-1, 0).
    np.testing.assert_allclose(vlad(np.array([[-3.0, 0]]), centroids), [-1, 0, 0, 0], atol=1e-6)
    np.testing.assert_array_equal(vlad(np.zeros((0, 2)), centroids), np.zeros(4))


@pytest.fixture(scope="module")
def fitted(lund_dir: Path) -> tuple[ClassicalVLAD, list[Path]]:
    paths = [lund_dir / f"{f}.jpg" for f in FRAMES]
    return ClassicalVLAD(num_clusters=16, resize=320, kmeans_iters=10).fit(paths), paths


def test_fit_describe_shapes_and_unit_norm(fitted: tuple[ClassicalVLAD, list[Path]]) -> None:
    model, paths = fitted
    desc = model.describe(paths[:3])
    assert desc.shape == (3, 16 * 128) and desc.dtype == np.float32 and model.dim == 2048
    np.testing.assert_allclose(np.linalg.norm(desc, axis=1), 1.0, atol=1e-5)
    assert model.describe([]).shape == (0, 2048)


def test_photo_retrieves_its_cropped_copy_first(
    fitted: tuple[ClassicalVLAD, list[Path]], tmp_path: Path
) -> None:
    model, paths = fitted
    db = model.describe(paths)
    for i in (1, 3):
        im = Image.open(paths[i])
        w, h = im.size
        crop = tmp_path / f"crop{i}.jpg"
        im.crop((int(0.06 * w), int(0.05 * h), int(0.95 * w), int(0.96 * h))).save(crop, quality=90)
        sims = model.describe([crop])[0] @ db.T
        assert int(np.argmax(sims)) == i, sims


def test_pca_whitening(lund_dir: Path) -> None:
    paths = [lund_dir / f"{f}.jpg" for f in FRAMES]
    model = ClassicalVLAD(num_clusters=8, resize=240, pca_dim=4, kmeans_iters=5).fit(paths)
    desc = model.describe(paths)
    assert desc.shape == (6, 4) and model.dim == 4
    np.testing.assert_allclose(np.linalg.norm(desc, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="pca_dim=10 needs at least 10"):
        ClassicalVLAD(num_clusters=8, pca_dim=10).fit(paths)


def test_save_load_round_trip(fitted: tuple[ClassicalVLAD, list[Path]], tmp_path: Path) -> None:
    model, paths = fitted
    out = model.save(tmp_path / "vlad.npz")
    assert out.is_file() and not list(tmp_path.glob(".*tmp"))
    loaded = ClassicalVLAD.load(out)
    assert loaded.config() == model.config()
    np.testing.assert_array_equal(loaded.describe(paths[:2]), model.describe(paths[:2]))


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        ClassicalVLAD().describe(["x.jpg"])
    with pytest.raises(FileNotFoundError, match=r"missing\.npz"):
        ClassicalVLAD.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, centroids=np.zeros((2, 128)))
    with pytest.raises(ValueError, match=r"bad\.npz"):
        ClassicalVLAD.load(bad)
    with pytest.raises(ValueError, match="num_clusters"):
        ClassicalVLAD(num_clusters=0)
