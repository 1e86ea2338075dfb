"""Gradient accumulation: 4 micro-batches of 8 make the same update as one batch of 32."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from vgloc.config import OptimConfig, resolve_config
from vgloc.training.distributed import DistInfo
from vgloc.training.optim import build_optimizer
from vgloc.training.steps import NonFiniteLossError, StepMixin


class _Harness(StepMixin):
    """The attributes of a Trainer that StepMixin.optimizer_step uses, without a run."""

    def __init__(self, net: nn.Module, head: nn.Module, optim: str) -> None:
        self.cfg = resolve_config("cosplace")
        self.dist = DistInfo()
        self.device = torch.device("cpu")
        self.net = net
        self.model = net  # type: ignore[assignment]
        self.head = head
        self.addons = []
        self._addon_params = []
        self.accum = {"terms": {}}
        self.amp_dtype = None
        self.precision = "fp32"
        self.channels_last = False
        self.scaler = torch.amp.GradScaler("cpu", enabled=False)
        self.run_dir = Path(".")
        self.epochs_done = self.global_step = self._epoch = 0
        self._step = None
        self.optimizers = [
            build_optimizer(net.parameters(), OptimConfig(name=optim, lr=1e-3)),
            build_optimizer(head.parameters(), OptimConfig(name=optim, lr=1e-2)),
        ]
        self.optimizer = self.optimizers[0]

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.head.loss(self.forward(x, labels=y), y)


def _setup(optim: str) -> tuple[_Harness, _Harness, torch.Tensor, torch.Tensor]:
    from vgloc.losses import create_margin_head

    torch.manual_seed(0)
    # No BatchNorm: its statistics are per micro-batch (documented), everything else must match.
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 64), nn.ReLU(), nn.Linear(64, 16))
    head = create_margin_head("cosface", 16, 10)
    whole = _Harness(net, head, optim)
    micro = _Harness(copy.deepcopy(net), copy.deepcopy(head), optim)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 3, 8, 8, generator=g)
    y = torch.randint(0, 10, (32,), generator=g)
    return whole, micro, x, y


def _state(h: _Harness) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for m in (h.net, h.head) for p in m.parameters()])


@pytest.mark.parametrize("optim", ["sgd", "adam"])
def test_four_micro_batches_of_eight_equal_one_batch_of_32(optim: str) -> None:
    whole, micro, x, y = _setup(optim)
    before = _state(whole)
    for _ in range(3):
        a = whole.optimizer_step(lambda: whole.loss(x, y), optimizers=whole.optimizers)
        closures = [
            lambda xs=xs, ys=ys: micro.loss(xs, ys) for xs, ys in zip(x.chunk(4), y.chunk(4), strict=True)
        ]
        b = micro.optimizer_step(closures, optimizers=micro.optimizers)
        assert b == pytest.approx(a, rel=1e-5)
    assert not torch.allclose(_state(whole), before)
    torch.testing.assert_close(_state(micro), _state(whole), rtol=1e-4, atol=1e-6)


def test_accumulated_gradients_equal_the_whole_batch() -> None:
    whole, micro, x, y = _setup("sgd")
    # Gradients as left before the update: stop right after backward by stepping no optimizer.
    whole.optimizer_step(lambda: whole.loss(x, y), optimizers=[])
    closures = [
        lambda xs=xs, ys=ys: micro.loss(xs, ys) for xs, ys in zip(x.chunk(4), y.chunk(4), strict=True)
    ]
    micro.optimizer_step(closures, optimizers=[])
    for p, q in zip(whole.net.parameters(), micro.net.parameters(), strict=True):
        assert p.grad is not None and q.grad is not None
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-5 * float(p.grad.abs().max()))


def test_a_non_finite_micro_batch_stops_the_step() -> None:
    whole, _, x, y = _setup("sgd")
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    closures = [lambda: whole.loss(x[:16], y[:16]), lambda: whole.loss(bad[:16], y[:16])]
    before = _state(whole)
    with pytest.raises(NonFiniteLossError, match="diverged"):
        whole.optimizer_step(closures, optimizers=whole.optimizers)
    assert torch.equal(_state(whole), before)
