"""Conv-AP aggregator (GSV-Cities): the authors' computation, spec names, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.models._train_check import check_trains
from vgloc.models import ModelSpec
from vgloc.models.convap import ConvAP, adaptive_avg_pool_matrix


def test_convap_is_conv1x1_then_2x2_average_then_l2() -> None:
    torch.manual_seed(0)
    agg = ConvAP(16, 32)
    x = torch.randn(2, 16, 6, 8)
    # Independent computation: per-channel linear map, then the mean of each 3x4 quadrant.
    y = torch.einsum("oc,bchw->bohw", agg.channel_pool.weight[:, :, 0, 0], x)
    y = y + agg.channel_pool.bias[None, :, None, None]
    quads = y.unflatten(2, (2, 3)).unflatten(4, (2, 4)).mean(dim=(3, 5))  # (B, 8, 2, 2)
    expected = F.normalize(quads.flatten(1), dim=1)
    torch.testing.assert_close(agg(x), expected)
    assert list(agg.state_dict()) == ["channel_pool.weight", "channel_pool.bias"]


@pytest.mark.parametrize(("h", "w"), [(5, 7), (1, 3), (13, 20), (2, 2)])
def test_pooling_matches_adaptive_avg_pool(h: int, w: int) -> None:
    torch.manual_seed(0)
    agg = ConvAP(6, 3 * 4 * 2, s1=3, s2=2)
    x = torch.randn(2, 6, h, w)
    expected = F.normalize(F.adaptive_avg_pool2d(agg.channel_pool(x), (3, 2)).flatten(1), dim=1)
    torch.testing.assert_close(agg(x), expected)
    assert adaptive_avg_pool_matrix(h, 3, x).sum(dim=1).allclose(torch.ones(3))


def test_convap_spec_and_errors() -> None:
    assert str(ModelSpec.parse("resnet50.conv4+convap")) == "resnet50.conv4+convap2048"
    with pytest.raises(ValueError, match="multiple of 4"):
        ConvAP(16, 30)


def test_convap_trains_with_frozen_early_layers() -> None:
    check_trains("tiny+convap512", size=32)


def test_convap_exports_to_onnx_with_dynamic_sizes() -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import io
    import warnings

    torch.manual_seed(0)
    agg = ConvAP(8, 64).eval()
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            agg,
            (torch.randn(1, 8, 6, 9),),
            buf,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}},
            opset_version=17,
            dynamo=False,
        )
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    for h, w in [(5, 7), (13, 20)]:  # sizes other than the export example
        x = torch.randn(2, 8, h, w)
        got = session.run(None, {"x": x.numpy()})[0]
        with torch.no_grad():
            assert abs(got - agg(x).numpy()).max() < 1e-5
