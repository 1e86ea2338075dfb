"""A published model as a describer: its evaluation size and normalisation apply by themselves."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.models import _fake_published as fake
from vgloc.describers import ExtractionOptions, resolve_describer
from vgloc.describers.net import NetDescriber
from vgloc.models.published import Preprocessing, PublishedModel

FP32 = {"precision": "fp32", "engine": "torch", "progress": False, "num_workers": 0}


@pytest.fixture
def entry() -> Iterator[PublishedModel]:
    yield from fake.registered(fake.make_entry())


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return fake.write_release(fake.reference_model(), tmp_path / "release.pth")


def _photos(folder: Path, n: int = 3) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{i}.png"  # lossless: the reference below decodes the same pixels
        Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _reference(
    paths: list[Path], size: tuple[int, int], mean: tuple[float, ...], std: tuple[float, ...]
) -> np.ndarray:
    """resize -> [0, 1] -> (x - mean) / std -> the authors' network, written out by hand."""
    from vgloc.data.datasets import DecodedImageDataset

    data = DecodedImageDataset(list(paths), size)
    x = torch.stack([torch.as_tensor(data[i][0]) for i in range(len(paths))])
    x = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        return fake.reference_model()(x).numpy()


def test_auto_size_and_normalisation_are_the_published_ones(
    entry: PublishedModel, release: Path, tmp_path: Path
) -> None:
    describer = resolve_describer(fake.NAME, release)
    assert isinstance(describer, NetDescriber)
    assert describer.spec == fake.NAME and describer.default_image_size == fake.SIZE
    paths = _photos(tmp_path / "img")
    got = describer.describe(paths, ExtractionOptions(**FP32))  # image_size defaults to "auto"
    np.testing.assert_allclose(got, _reference(paths, fake.SIZE, fake.MEAN, fake.STD), atol=1e-5)
    # ImageNet normalisation would give other descriptors: the entry's mean/std are really used.
    imagenet = _reference(paths, fake.SIZE, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert np.abs(got - imagenet).max() > 1e-3


def test_explicit_size_wins_with_an_info_log(
    entry: PublishedModel, release: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    describer = resolve_describer(fake.NAME, release)
    paths = _photos(tmp_path / "img", 2)
    with caplog.at_level(logging.INFO, logger="vgloc"):
        got = describer.describe(paths, ExtractionOptions(image_size=(42, 56), **FP32))
    assert "given explicitly" in caplog.text and "56x70" in caplog.text
    np.testing.assert_allclose(got, _reference(paths, (42, 56), fake.MEAN, fake.STD), atol=1e-5)


def test_index_state_records_the_published_name_and_preprocessing(
    entry: PublishedModel, release: Path
) -> None:
    state = resolve_describer(fake.NAME, release).index_state().metadata
    assert state["published"] == fake.NAME
    assert state["preprocessing"] == {
        "image_size": list(fake.SIZE),
        "mean": list(fake.MEAN),
        "std": list(fake.STD),
        "multiple_of": 1,
    }
    rebuilt = NetDescriber.load_from_index(None, state, fake.NAME)
    assert rebuilt.preprocessing == entry.preprocessing and rebuilt.spec == fake.NAME


def test_sizes_that_are_not_multiples_are_refused_before_describing(release: Path) -> None:
    entry = fake.make_entry(preprocessing=Preprocessing(image_size=(56, 70), multiple_of=14))
    for _ in fake.registered(entry):
        describer = resolve_describer(fake.NAME, release)
        with pytest.raises(ValueError, match="multiples of 14"):
            describer.describe([Path("never-read.jpg")], ExtractionOptions(image_size=(50, 70), **FP32))


def test_plain_specs_keep_the_default_size() -> None:
    describer = resolve_describer("tiny+gem")
    assert describer.resolve_options(ExtractionOptions()).image_size == (480, 640)


def test_checkpoint_may_name_published_weights_for_the_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vgloc.models import GeoLocalizationModel
    from vgloc.models.pretrained import WeightsDownloadError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    # Offline: the release is named, not reported as a missing file called "cosplace".
    with pytest.raises(WeightsDownloadError, match=r"ResNet18_512_cosplace\.pth"):
        resolve_describer("resnet18+gem+fc512", "cosplace")
    with pytest.raises(ValueError, match="released no weights for 'tiny\\+gem'"):
        resolve_describer("tiny+gem", "cosplace")
    # A copy in the hub cache (as CosPlace publishes it) is picked up.
    torch.manual_seed(0)
    ref = GeoLocalizationModel("resnet18+gem+fc512")
    sd = {k.replace("aggregator.p", "aggregation.1.p").replace("head.fc.", "aggregation.3."): v
          for k, v in ref.state_dict().items()}  # fmt: skip
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(sd, cache / "ResNet18_512_cosplace.pth")
    describer = resolve_describer("resnet18+gem+fc512", "cosplace")
    assert isinstance(describer, NetDescriber) and describer.spec == "cosplace:resnet18+gem+fc512"
    assert describer.default_image_size is None  # CosPlace evaluates at full resolution
    assert all(torch.equal(v, ref.state_dict()[k]) for k, v in describer.model.state_dict().items())
