"""Gradient caching gives the parameter gradients of one ordinary pass."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vgloc.crossview.gradcache import cached_backward
from vgloc.crossview.losses import create_crossview_loss
from vgloc.models import create_model


def _grads(*modules: nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for m in modules for p in m.parameters() if p.grad is not None]


@pytest.mark.parametrize("loss_name", ["infonce", "exhaustive_dbl"])
def test_same_gradients_as_one_pass(loss_name: str) -> None:
    torch.manual_seed(0)
    ground = create_model("tiny+gem+fc16").eval()  # eval: batch norm uses running stats, as one pass would
    aerial = create_model("tiny+gem+fc16").eval()
    xg, xa = torch.randn(6, 3, 32, 32), torch.randn(6, 3, 32, 32)
    loss = create_crossview_loss(loss_name)

    want = loss(ground(xg), aerial(xa))
    want.backward()
    ref = _grads(ground, aerial)
    ground.zero_grad(set_to_none=True)
    aerial.zero_grad(set_to_none=True)

    got = cached_backward([ground, aerial], [xg, xa], loss, chunk_size=4)
    out = _grads(ground, aerial)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    assert len(out) == len(ref) > 0
    for a, b in zip(out, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_random_layers_draw_the_same_numbers_twice() -> None:
    torch.manual_seed(1)
    enc = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5), nn.Linear(8, 4))
    x, y = torch.randn(6, 8), torch.randn(6, 8)
    loss = create_crossview_loss("infonce", temperature=0.5)

    # Reference: the same chunks forwarded once with a graph, in the same order.
    torch.manual_seed(7)
    outs = [torch.cat([enc(c) for c in v.split(4)]) for v in (x, y)]
    loss(*outs).backward()
    ref = _grads(enc)
    enc.zero_grad(set_to_none=True)

    torch.manual_seed(7)
    cached_backward([enc, enc], [x, y], loss, chunk_size=4)
    for a, b in zip(_grads(enc), ref, strict=True):
        torch.testing.assert_close(a, b)


def test_bad_arguments() -> None:
    enc = nn.Linear(4, 2)
    with pytest.raises(ValueError, match="one input per encoder"):
        cached_backward([enc], [torch.zeros(2, 4), torch.zeros(2, 4)], lambda a: a.sum(), 2)
    with pytest.raises(ValueError, match="chunk_size"):
        cached_backward([enc], [torch.zeros(2, 4)], lambda a: a.sum(), 0)
    with pytest.raises(ValueError, match="scalar"):
        cached_backward([enc], [torch.zeros(2, 4)], lambda a: a, 2)
