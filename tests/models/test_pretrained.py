"""Pretrained weights offline: clear failures under the network guard, cache pick-up."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from vgloc.models import create_model
from vgloc.models.pretrained import (
    PUBLISHED_WEIGHTS,
    WeightsDownloadError,
    hub_checkpoint_dir,
    resolve_weights,
)


@pytest.fixture(autouse=True)
def _empty_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty torch hub cache so that nothing cached on the machine is used."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # let TORCH_HOME decide
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_cache_dir_follows_torch_home(_empty_hub_cache: Path) -> None:
    assert hub_checkpoint_dir() == _empty_hub_cache


def test_imagenet_weights_offline_message_is_clear(_empty_hub_cache: Path) -> None:
    with pytest.raises(WeightsDownloadError) as info:
        create_model("resnet18+gem", pretrained=True)
    msg = str(info.value)
    assert "ResNet18_Weights.IMAGENET1K_V1" in msg
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg
    assert str(_empty_hub_cache / "resnet18-f37072fd.pth") in msg
    assert "NetworkAccessError" in msg  # the guard's error is kept as the cause
    assert isinstance(info.value.__cause__, Exception)


def test_published_weights_offline_message_is_clear(_empty_hub_cache: Path) -> None:
    with pytest.raises(WeightsDownloadError) as info:
        create_model("resnet18+gem+fc512", weights="cosplace")
    msg = str(info.value)
    url = "https://github.com/gmberton/CosPlace/releases/download/v1.0/ResNet18_512_cosplace.pth"
    assert url in msg
    assert str(_empty_hub_cache / "ResNet18_512_cosplace.pth") in msg
    assert "weights=PATH" in msg or "weights='ResNet18_512_cosplace.pth'" in msg
    assert not (_empty_hub_cache / "ResNet18_512_cosplace.pth").exists()  # no partial file


def test_published_weights_are_picked_up_from_the_cache(_empty_hub_cache: Path) -> None:
    """A manually downloaded CosPlace file in the hub cache loads without network."""
    torch.manual_seed(0)
    src = create_model("resnet18+gem+fc512").eval()
    rename = {"aggregator.p": "aggregation.1.p"}
    rename |= {"head.fc.weight": "aggregation.3.weight", "head.fc.bias": "aggregation.3.bias"}
    cosplace_sd = {rename.get(k, k): v for k, v in src.state_dict().items()}
    _empty_hub_cache.mkdir(parents=True)
    torch.save(cosplace_sd, _empty_hub_cache / "ResNet18_512_cosplace.pth")
    model = create_model("resnet18+gem+fc512", weights="cosplace").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), src(x), rtol=0, atol=0)
    # The explicit key form resolves to the same file.
    path = resolve_weights("cosplace:ResNet18+GeM+fc512", "resnet18+gem+fc512")
    assert path == _empty_hub_cache / "ResNet18_512_cosplace.pth"


def test_imagenet_weights_are_picked_up_from_the_cache(_empty_hub_cache: Path) -> None:
    net = torchvision.models.resnet18(weights=None)
    _empty_hub_cache.mkdir(parents=True)
    torch.save(net.state_dict(), _empty_hub_cache / "resnet18-f37072fd.pth")
    model = create_model("resnet18.conv4+gem", pretrained="IMAGENET1K_V1")
    torch.testing.assert_close(model.backbone[0].weight, net.conv1.weight, rtol=0, atol=0)
    torch.testing.assert_close(model.backbone[6][0].conv1.weight, net.layer3[0].conv1.weight)


def test_weights_argument_errors() -> None:
    with pytest.raises(ValueError, match=r"cosplace released no weights for 'tiny\+gem'.*resnet18"):
        create_model("tiny+gem", weights="cosplace")
    with pytest.raises(ValueError, match=r"are for 'resnet50\+gem\+fc2048', not for"):
        create_model("resnet18+gem+fc512", weights="eigenplaces:resnet50+gem+fc2048")
    with pytest.raises(FileNotFoundError, match=r"weights file not found: .*nope\.pth"):
        create_model("tiny+gem", weights="nope.pth")
    with pytest.raises(ValueError, match=r"unknown weights tag 'imagenet9'.*IMAGENET1K_V1"):
        create_model("resnet18+gem", pretrained="imagenet9")
    with pytest.raises(ValueError, match="'tiny' has no pretrained weights"):
        create_model("tiny+gem", pretrained=True)


def test_published_table_matches_the_hubconf_lists() -> None:
    cosplace = [k for k in PUBLISHED_WEIGHTS if k.startswith("cosplace:")]
    eigen = [k for k in PUBLISHED_WEIGHTS if k.startswith("eigenplaces:")]
    assert len(cosplace) == 4 + 5 + 7 + 7 + 7 and len(eigen) == 1 + 2 + 5 + 5
    pw = PUBLISHED_WEIGHTS["eigenplaces:resnet50+gem+fc2048"]
    assert pw.url.endswith("/EigenPlaces/releases/download/v1.0/ResNet50_2048_eigenplaces.pth")
    assert pw.descriptor_dim == 2048 and pw.filename == "ResNet50_2048_eigenplaces.pth"
