"""Published models by name: local copies, fetching (mocked), SHA-256, offline messages, old names."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.models import _fake_published as fake
from vgloc.models import GeoLocalizationModel, create_model, list_models
from vgloc.models.hub import find_published, get_published, published_file
from vgloc.models.pretrained import PUBLISHED_WEIGHTS, WeightsDownloadError, hub_checkpoint_dir
from vgloc.models.published import PublishedModel
from vgloc.registry import UnknownNameError


@pytest.fixture(autouse=True)
def _empty_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty torch hub cache so that nothing cached on the machine is used."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def entry() -> Iterator[PublishedModel]:
    yield from fake.registered(fake.make_entry())


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_copy_of_the_published_file_loads(entry: PublishedModel, tmp_path: Path, suffix: str) -> None:
    ref = fake.reference_model()
    release = fake.write_release(ref, tmp_path / f"release{suffix}")
    model = create_model(fake.NAME, weights=release)
    assert model.spec == fake.SPEC
    assert model.published is entry  # carries the evaluation preprocessing
    assert _same_weights(model, ref)
    x = torch.rand(2, 3, 56, 70)
    assert torch.allclose(model.eval()(x), ref(x), atol=1e-6)


def test_names_match_case_insensitively_and_unknown_names_suggest(entry: PublishedModel) -> None:
    assert find_published("FakePub-Tiny") is entry
    assert find_published("tiny+gem+fc16") is None  # a spec is not a published name
    with pytest.raises(UnknownNameError, match="did you mean: fakepub-tiny"):
        get_published("fakepub-tiyn")


def test_offline_error_names_file_url_cache_path_and_checkpoint(
    entry: PublishedModel, _empty_hub_cache: Path
) -> None:
    with pytest.raises(WeightsDownloadError) as info:
        create_model(fake.NAME)
    msg = str(info.value)
    assert entry.filename in msg and entry.url is not None and entry.url in msg
    assert str(_empty_hub_cache / entry.filename) in msg
    assert f"--model {fake.NAME} --checkpoint FILE" in msg
    assert "NetworkAccessError" in msg  # the test network guard's error is kept as the cause
    assert not (_empty_hub_cache / entry.filename).exists()


def test_offline_hub_repo_error_names_the_repository(
    _empty_hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "load", offline)
    hub_entry = fake.make_entry(url=None, hub_repo="fake-owner/fake-repo:get_model")
    for e in fake.registered(hub_entry):
        with pytest.raises(
            WeightsDownloadError, match=r"torch\.hub repository fake-owner/fake-repo:get_model"
        ):
            published_file(e)


def _mock_download(monkeypatch: pytest.MonkeyPatch, source: Path) -> list[str]:
    calls: list[str] = []

    def download(url: str, dst: str, progress: bool = True) -> None:
        calls.append(url)
        Path(dst).write_bytes(source.read_bytes())

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    return calls


def test_download_is_verified_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _empty_hub_cache: Path
) -> None:
    ref = fake.reference_model()
    release = fake.write_release(ref, tmp_path / "release.pth")
    digest = hashlib.sha256(release.read_bytes()).hexdigest()
    calls = _mock_download(monkeypatch, release)
    for e in fake.registered(fake.make_entry(sha256=digest)):
        assert _same_weights(create_model(fake.NAME), ref)
        assert calls == [e.url]
        assert (_empty_hub_cache / e.filename).read_bytes() == release.read_bytes()
        create_model(fake.NAME)  # the cached file is used: no second download
        assert len(calls) == 1


def test_sha256_mismatch_is_refused_and_nothing_is_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _empty_hub_cache: Path
) -> None:
    release = fake.write_release(fake.reference_model(), tmp_path / "release.pth")
    _mock_download(monkeypatch, release)
    for e in fake.registered(fake.make_entry(sha256="0" * 64)):
        with pytest.raises(ValueError, match="sha256"):
            create_model(fake.NAME)
        assert not (_empty_hub_cache / e.filename).exists()
        assert list(_empty_hub_cache.glob("*")) == []  # no temporary left either


def test_hub_repo_model_state_dict_is_saved_and_converted(
    monkeypatch: pytest.MonkeyPatch, _empty_hub_cache: Path
) -> None:
    ref = fake.reference_model()

    class AuthorsNet(torch.nn.Module):  # the authors' hubconf model: their own key names
        def state_dict(self, *args: object, **kwargs: object) -> dict[str, torch.Tensor]:  # type: ignore[override]
            return fake.to_author_keys(ref.state_dict())

    seen: list[tuple[object, ...]] = []

    def hub_load(repo: str, entrypoint: str, **kwargs: object) -> torch.nn.Module:
        seen.append((repo, entrypoint, kwargs.get("output_dim")))
        return AuthorsNet()

    monkeypatch.setattr(torch.hub, "load", hub_load)
    hub_entry = fake.make_entry(url=None, hub_repo="owner/repo:get_model", hub_kwargs=(("output_dim", 16),))
    for e in fake.registered(hub_entry):
        assert _same_weights(create_model(fake.NAME), ref)
        assert seen == [("owner/repo", "get_model", 16)]
        assert (_empty_hub_cache / e.filename).is_file()


def test_cosplace_names_resolve_through_the_same_table(tmp_path: Path) -> None:
    assert len(PUBLISHED_WEIGHTS) == 43
    pm = find_published("cosplace:ResNet18+GeM+FC512")
    assert pm is not None and pm.name == "cosplace:resnet18+gem+fc512" and pm.preprocessing.image_size is None
    # A local copy of the CosPlace release: aggregation.1.p (GeM) and aggregation.3.* (fc).
    torch.manual_seed(0)
    ref = GeoLocalizationModel("resnet18+gem+fc512")
    authors = {
        k.replace("aggregator.p", "aggregation.1.p").replace("head.fc.", "aggregation.3."): v
        for k, v in ref.state_dict().items()
    }
    torch.save(authors, tmp_path / "ResNet18_512_cosplace.pth")
    model = create_model("cosplace:resnet18+gem+fc512", weights=tmp_path / "ResNet18_512_cosplace.pth")
    assert model.published is pm
    assert _same_weights(model, ref)


def test_list_models_shows_eval_size_normalisation_and_source(entry: PublishedModel) -> None:
    (row,) = list_models(fake.NAME)
    assert (row.kind, row.dim, row.eval_size, row.spec) == ("weights", "16", "56x70", fake.SPEC)
    assert row.source == entry.url and "0.5" in row.normalize
    cos = list_models("cosplace:resnet50+gem+fc2048")[0]
    assert (cos.eval_size, cos.normalize) == ("native", "imagenet")
    assert hub_checkpoint_dir().name == "checkpoints"
