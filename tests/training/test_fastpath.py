"""The training fast path: precision chosen by CPU flags, channels_last and fused optimizers change no result."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
from torch import nn

from vgloc.config import OptimConfig
from vgloc.training.fastpath import (
    fused_optimizer_supported,
    resolve_channels_last,
    resolve_precision,
)
from vgloc.training.optim import build_optimizer, optimizer_to

CPU = torch.device("cpu")
# This team's machines: AVX2 only, AVX-512F (+VNNI) without bf16, AVX-512 BF16, Sapphire Rapids AMX.
AVX2 = {"sse4_2", "avx", "avx2", "fma"}
AVX512 = AVX2 | {"avx512f", "avx512bw", "avx512_vnni"}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (AVX2, "fp32"),
        (AVX512, "fp32"),  # bf16 emulated there: slower than fp32
        (AVX512 | {"avx512_bf16"}, "bf16"),
        (AVX512 | {"amx_bf16", "amx_tile"}, "bf16"),
        (set(), "fp32"),
    ],
)
def test_auto_precision_on_cpu_follows_the_flags(flags: set[str], expected: str) -> None:
    assert resolve_precision("auto", CPU, flags) == expected
    # An explicit choice is kept whatever the CPU.
    assert resolve_precision("bf16", CPU, flags) == "bf16"
    assert resolve_precision("fp32", CPU, flags) == "fp32"


def test_auto_precision_reads_this_machine_by_default() -> None:
    with mock.patch("vgloc.training.fastpath.cpu_flags", return_value=frozenset({"avx512_bf16"})):
        assert resolve_precision("auto", CPU) == "bf16"
    with mock.patch("vgloc.training.fastpath.cpu_flags", return_value=frozenset({"avx2"})):
        assert resolve_precision("auto", CPU) == "fp32"


def test_auto_precision_on_cuda() -> None:
    cuda = torch.device("cuda")
    with mock.patch("torch.cuda.is_bf16_supported", return_value=True):
        assert resolve_precision("auto", cuda) == "bf16"
    with mock.patch("torch.cuda.is_bf16_supported", return_value=False):
        assert resolve_precision("auto", cuda) == "fp16"
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("fp8", CPU)


def test_channels_last_follows_precision_and_device_unless_set() -> None:
    cuda = torch.device("cuda")
    assert resolve_channels_last(None, "fp32", cuda) is False
    assert resolve_channels_last(None, "fp16", cuda) is True
    assert resolve_channels_last(None, "fp32", CPU) is True
    assert resolve_channels_last(None, "bf16", CPU) is True
    assert resolve_channels_last(True, "fp32", cuda) is True
    assert resolve_channels_last(False, "bf16", CPU) is False


def test_fused_kernels_only_where_torch_has_them() -> None:
    assert fused_optimizer_supported([torch.zeros(2), torch.zeros(3)])
    assert not fused_optimizer_supported([])
    assert not fused_optimizer_supported([torch.zeros(2, dtype=torch.int64)])
    assert not fused_optimizer_supported([torch.zeros(2, device="meta")])


def _params(seed: int) -> list[nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(64, 32, generator=g)), nn.Parameter(torch.randn(32, generator=g))]


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_fused_optimizer_makes_the_same_updates(name: str) -> None:
    cfg = OptimConfig(name=name, lr=1e-2)
    fused_params, plain_params = _params(0), _params(0)
    fused = build_optimizer(fused_params, cfg)
    plain = build_optimizer(plain_params, cfg, fused=False)
    assert fused.param_groups[0]["fused"] is True and not plain.param_groups[0].get("fused")
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=g) for p in fused_params]
        for ps, opt in ((fused_params, fused), (plain_params, plain)):
            for p, gr in zip(ps, grads, strict=True):
                p.grad = gr.clone()
            opt.step()
    for a, b in zip(fused_params, plain_params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(fused_params[0], _params(0)[0])  # they did move


def test_moving_a_fused_optimizer_moves_its_step_counter() -> None:
    params = _params(0)
    opt = build_optimizer(params, OptimConfig(name="adam"))
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    optimizer_to(opt, "meta")
    assert all(v.device.type == "meta" for s in opt.state.values() for v in s.values())


def test_channels_last_gives_the_same_loss_and_gradients() -> None:
    from vgloc.losses import create_margin_head
    from vgloc.models import create_model, freeze_early_layers

    torch.manual_seed(0)
    x = torch.rand(4, 3, 48, 64)
    y = torch.tensor([0, 1, 2, 1])
    results = []
    for nhwc in (False, True):
        torch.manual_seed(0)
        model = create_model("tiny+gem+fc64").train()
        freeze_early_layers(model)
        head = create_margin_head("cosface", model.descriptor_dim, 3)
        inp = x
        if nhwc:
            model.to(memory_format=torch.channels_last)
            inp = x.contiguous(memory_format=torch.channels_last)
        loss = head.loss(model(inp), y)
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results.append((loss.detach(), grads))
    (l0, g0), (l1, g1) = results
    torch.testing.assert_close(l1, l0, rtol=1e-4, atol=1e-5)
    assert torch.nn.functional.cosine_similarity(g0, g1, dim=0) > 0.9999
