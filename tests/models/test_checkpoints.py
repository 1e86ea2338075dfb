"""Checkpoint loading: authors' fixtures (rules A and B), containers, vgloc format."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.models._fixture_rules import fixture_input, state_dict_from_tsv
from vgloc.models import create_model, load_model, load_state_dict_compat, save_model
from vgloc.models.checkpoints import (
    convert_author_keys,
    extract_state_dict,
    read_checkpoint,
    read_weights_file,
)

# fixture name -> vgloc spec.
FIXTURES = {
    "cosplace_resnet18_512": "resnet18+gem+fc512",
    "cosplace_resnet50_2048": "resnet50+gem+fc2048",
    "cosplace_vgg16_512": "vgg16+gem+fc512",
    "cosplace_efficientnet_b0_512": "efficientnet_b0+gem+fc512",
    "vgbench_resnet18conv4_netvlad64": "resnet18.conv4+netvlad64",
    "vgbench_resnet50conv4_gem": "resnet50.conv4+gem",
    "vgbench_resnet50conv4_crn64": "resnet50.conv4+crn64",
}


def _close(out: np.ndarray, ref: np.ndarray) -> None:
    """The fixtures README's tolerance (1e-4 relative, Frobenius and max)."""
    assert out.shape == ref.shape
    assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 1e-4
    assert np.abs(out - ref).max() < 1e-4 * np.abs(ref).max()


@pytest.mark.parametrize("name", list(FIXTURES))
def test_authors_checkpoint_reproduces_fixture(checkpoint_fixtures: Path, name: str) -> None:
    """Both weight rules: A (the fixture rule) and B (which exercises the backbone)."""
    model = create_model(FIXTURES[name])
    for rule, ref_file in (("A", f"{name}.out.npy"), ("B", f"rule_b/{name}.out.npy")):
        sd = state_dict_from_tsv(checkpoint_fixtures / f"{name}.keys.tsv", rule)
        # Wrapped like a DataParallel VG-benchmark file; plain files are tested below.
        wrapped = {"model_state_dict": {"module." + k: v for k, v in sd.items()}}
        report = load_state_dict_compat(model, wrapped)
        assert report.missing == [] and report.unexpected == [] and report.renamed > 0
        model.eval()
        with torch.no_grad():
            out = model(fixture_input()).numpy()
        ref = np.load(checkpoint_fixtures / ref_file)
        if name == "vgbench_resnet50conv4_gem":
            # The VG benchmark's GeM model is not L2-normalised after pooling; ours always is.
            ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
        _close(out, ref)


def test_eigenplaces_checkpoint_is_cosplace_layout(checkpoint_fixtures: Path) -> None:
    """EigenPlaces' ResNet-50 has CosPlace's keys and outputs: the test above covers it."""
    eigen, cos = "eigenplaces_resnet50_2048", "cosplace_resnet50_2048"
    assert (checkpoint_fixtures / f"{eigen}.keys.tsv").read_text() == (
        checkpoint_fixtures / f"{cos}.keys.tsv"
    ).read_text()
    for sub in ("", "rule_b/"):
        ref = np.load(checkpoint_fixtures / f"{sub}{cos}.out.npy")
        np.testing.assert_array_equal(np.load(checkpoint_fixtures / f"{sub}{eigen}.out.npy"), ref)


def test_authors_file_on_disk_with_vgb_container(checkpoint_fixtures: Path, tmp_path: Path) -> None:
    """A VG-benchmark best_model.pth: numpy recalls beside the weights, read weights-only."""
    name = "vgbench_resnet18conv4_netvlad64"
    sd = state_dict_from_tsv(checkpoint_fixtures / f"{name}.keys.tsv", "B")
    path = tmp_path / "best_model.pth"
    torch.save(
        {
            "epoch_num": 3,
            "model_state_dict": {"module." + k: v for k, v in sd.items()},
            "recalls": np.array([80.1, 90.2, 93.0, 95.5]),
            "best_r5": np.float64(90.2),
            "not_improved_num": 0,
        },
        path,
    )
    model = create_model("resnet18.conv4+netvlad64", weights=path).eval()
    with torch.no_grad():
        out = model(fixture_input()).numpy()
    _close(out, np.load(checkpoint_fixtures / "rule_b" / f"{name}.out.npy"))


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"module." + k: v for k, v in sd.items()},
        lambda sd: {"state_dict": sd, "epoch": 1},
        lambda sd: {"model_state_dict": sd},
    ],
    ids=["plain", "module-prefix", "state_dict", "model_state_dict"],
)
def test_containers_and_prefixes_unwrap_to_the_same_keys(wrap: object) -> None:
    sd = {"backbone.0.weight": torch.ones(1), "aggregation.1.p": torch.ones(1)}
    got = extract_state_dict(wrap(sd))  # type: ignore[operator]
    assert got == sd


def test_cosplace_key_mapping() -> None:
    sd = {
        "backbone.0.weight": torch.zeros(1),
        "aggregation.1.p": torch.zeros(1),
        "aggregation.3.weight": torch.zeros(1),
        "aggregation.3.bias": torch.zeros(1),
    }
    out, n = convert_author_keys(sd)
    assert list(out) == ["backbone.0.weight", "aggregator.p", "head.fc.weight", "head.fc.bias"]
    assert n == 3


@pytest.mark.parametrize("aggregator", ["gem", "netvlad4"])
def test_vgb_with_fc_layout_loads(aggregator: str) -> None:
    """VGB with fc_output_dim: aggregation = Sequential(<aggregation>, Linear, L2Norm)."""
    src = create_model(f"tiny+{aggregator}+fc8")
    theirs = {}
    for k, v in src.state_dict().items():
        if k.startswith("aggregator."):
            inner = k[len("aggregator.") :]
            k = f"aggregation.0.1.{inner}" if aggregator == "gem" else f"aggregation.0.{inner}"
        elif k.startswith("head.fc."):
            k = "aggregation.1." + k[len("head.fc.") :]
        theirs[k] = v.clone()
    dst = create_model(f"tiny+{aggregator}+fc8")
    load_state_dict_compat(dst, theirs)
    for k, v in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[k], v, rtol=0, atol=0)


def test_wrong_architecture_fails_with_clear_error(checkpoint_fixtures: Path) -> None:
    sd = state_dict_from_tsv(checkpoint_fixtures / "cosplace_resnet18_512.keys.tsv", "A")
    with pytest.raises(ValueError) as info:
        load_state_dict_compat(create_model("resnet18+gem+fc256"), sd)
    msg = str(info.value)
    assert "does not fit model 'resnet18+gem+fc256'" in msg
    assert "head.fc.weight: checkpoint (512, 512) vs model (256, 512)" in msg
    with pytest.raises(ValueError) as info:
        load_state_dict_compat(create_model("resnet18.conv4+gem+fc512"), sd)
    msg = str(info.value)
    assert "unexpected key(s): backbone.7.0.conv1.weight" in msg
    assert "head.fc.weight: checkpoint (512, 512) vs model (512, 256)" in msg
    vlad = state_dict_from_tsv(checkpoint_fixtures / "vgbench_resnet18conv4_netvlad64.keys.tsv", "A")
    with pytest.raises(ValueError) as info:
        load_state_dict_compat(create_model("resnet18.conv4+gem"), vlad)
    msg = str(info.value)
    assert "1 missing key(s): aggregator.p" in msg
    assert "2 unexpected key(s): aggregator.centroids, aggregator.conv.weight" in msg


def test_non_strict_load_reports_instead_of_failing() -> None:
    src = create_model("tiny+netvlad4")
    sd = {k: v for k, v in src.state_dict().items() if k != "aggregator.centroids"}
    sd["extra.thing"] = torch.zeros(1)
    report = load_state_dict_compat(create_model("tiny+netvlad4"), sd, strict=False)
    assert report.missing == ["aggregator.centroids"] and report.unexpected == ["extra.thing"]


def test_no_state_dict_in_container_is_explained() -> None:
    with pytest.raises(ValueError, match=r"no state dict found.*'epoch', 'optimizer'"):
        extract_state_dict({"epoch": 1, "optimizer": {"lr": 1}})


# -- vgloc's own format ----------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["tiny+netvlad4+fc8", "tiny+crn4", "resnet18.conv4+gem+fc16"])
def test_save_load_round_trip_is_exact(tmp_path: Path, spec: str) -> None:
    torch.manual_seed(0)
    model = create_model(spec).eval()
    with torch.no_grad():  # make BN statistics non-default so they are checked too
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = save_model(model, tmp_path / "m.pt", extra={"epoch": 3, "recalls": [1.0, 2.5]})
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # atomic: no temp left
    loaded = load_model(path).eval()
    assert loaded.spec == spec and loaded.checkpoint_extra == {"epoch": 3, "recalls": [1.0, 2.5]}
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    ckpt = read_checkpoint(path)
    assert ckpt["format"] == "vgloc-model" and ckpt["format_version"] == 1
    assert ckpt["spec"] == spec and ckpt["descriptor_dim"] == model.descriptor_dim
    from vgloc._version import __version__

    assert ckpt["vgloc_version"] == __version__
    # create_model(weights=) accepts a vgloc file for the same spec...
    same = create_model(spec, weights=path).eval()
    with torch.no_grad():
        torch.testing.assert_close(same(x), model(x), rtol=0, atol=0)
    # ...and refuses one for another spec, pointing to load_model.
    with pytest.raises(ValueError, match=r"vgloc model for spec .*use vgloc.models.load_model"):
        create_model("tiny+netvlad8", weights=path)


def test_load_model_refuses_foreign_and_newer_files(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pth"
    torch.save(create_model("tiny+gem").state_dict(), plain)
    with pytest.raises(ValueError, match=r"not a vgloc model file.*create_model\(spec, weights="):
        load_model(plain)
    newer = tmp_path / "newer.pt"
    save_model(create_model("tiny+gem"), newer)
    ckpt = torch.load(newer, weights_only=True)
    ckpt["format_version"] = 2
    torch.save(ckpt, newer)
    with pytest.raises(ValueError, match=r"format_version 2.*upgrade vgloc"):
        load_model(newer)
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        load_model(tmp_path / "missing.pt")


def test_save_model_refuses_extra_that_cannot_load_weights_only(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"extra\['opt'\] is a SGD"):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        save_model(create_model("tiny+gem"), tmp_path / "m.pt", extra={"opt": opt})
    assert not list(tmp_path.iterdir())


class _Evil:
    def __reduce__(self) -> tuple:
        return (print, ("pwned",))


def test_unsafe_pickles_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "x": _Evil()}, path)
    with pytest.raises(ValueError, match=r"safe \(weights-only\) loading refuses.*trusted=True"):
        read_weights_file(path)
    not_torch = tmp_path / "junk.pth"
    not_torch.write_bytes(b"this is not a checkpoint\n")
    with pytest.raises(ValueError):
        read_weights_file(not_torch)


def test_safetensors_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.safetensors"
    model = create_model("tiny+gem+fc8")
    try:
        from safetensors.torch import save_file
    except ImportError:
        path.write_bytes(b"\0" * 16)
    else:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        loaded = create_model("tiny+gem+fc8", weights=path)
        for k, v in model.state_dict().items():
            torch.testing.assert_close(loaded.state_dict()[k], v, rtol=0, atol=0)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)  # as if not installed
    with pytest.raises(ImportError, match="install the 'safetensors' package"):
        read_weights_file(path)
