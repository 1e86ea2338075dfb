"""``vgloc export``: ONNX and TorchScript files that match PyTorch, with their preprocessing inside."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.models import _fake_published as fake
from vgloc.cli import main
from vgloc.models.export import export_model
from vgloc.models.published import PublishedModel


@pytest.fixture
def entry() -> Iterator[PublishedModel]:
    yield from fake.registered(fake.make_entry())


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return fake.write_release(fake.reference_model(), tmp_path / "release.pth")


def _fresh_input(size: tuple[int, int]) -> torch.Tensor:
    return torch.randn(3, 3, *size, generator=torch.Generator().manual_seed(7))


def test_onnx_export_of_a_published_model_matches_pytorch(
    entry: PublishedModel, release: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    import onnx
    import onnxruntime as ort

    out = tmp_path / "fake.onnx"
    argv = [
        "export",
        "--model",
        fake.NAME,
        "--checkpoint",
        str(release),
        "--format",
        "onnx",
        "--out",
        str(out),
    ]
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["image_size"] == list(fake.SIZE)  # traced at the published evaluation size
    assert report["max_abs_diff"] <= 1e-4
    meta = json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}["vgloc"])
    assert (meta["published"], meta["mean"], meta["std"]) == (fake.NAME, list(fake.MEAN), list(fake.STD))
    # Another batch size and image size than the traced example: the axes are dynamic.
    x = _fresh_input((64, 48))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        want = fake.reference_model()(x).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_export_of_a_spec_matches_pytorch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vgloc.models import create_model

    torch.manual_seed(0)
    net = create_model("tiny+gem+fc16").eval()
    ckpt = tmp_path / "tiny.pt"
    from vgloc.models import save_model

    save_model(net, ckpt)
    out = tmp_path / "tiny.ts"
    argv = ["export", "--model", "tiny+gem+fc16", "--checkpoint", str(ckpt), "--format", "torchscript"]
    assert main([*argv, "--out", str(out), "--image-size", "48,64"]) == 0
    assert "torchscript" in capsys.readouterr().out
    extra = {"vgloc.json": ""}
    loaded = torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["vgloc.json"])["spec"] == "tiny+gem+fc16"
    x = _fresh_input((48, 64))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x), atol=1e-4, rtol=0)


def test_an_export_that_differs_is_not_written(tmp_path: Path) -> None:
    from vgloc.models import create_model

    out = tmp_path / "never.ts"
    with pytest.raises(ValueError, match="not written"):
        export_model(create_model("tiny+gem"), out, "torchscript", image_size=(32, 32), atol=-1.0)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="unknown export format"):
        export_model(create_model("tiny+gem"), out, "tflite")


def test_onnx_export_of_a_transformer_aggregator(tmp_path: Path) -> None:
    """BoQ's nn.TransformerEncoderLayer exports through plain ops (its fused eval kernel cannot)."""
    pytest.importorskip("onnxruntime")
    from vgloc.models import create_model

    torch.manual_seed(0)
    report = export_model(create_model("tiny+boq256"), tmp_path / "boq.onnx", "onnx", image_size=(64, 64))
    assert report.max_abs_diff <= 1e-4 and (tmp_path / "boq.onnx").is_file()
    assert torch.backends.mha.get_fastpath_enabled()  # the global switch is restored
