"""The gradient reversal layer: identity forward, -lambda times the gradient backward; the DANN schedule."""

from __future__ import annotations

import pytest
import torch

from vgloc.models.grl import GradientReversal, dann_lambda, grad_reverse


def test_forward_is_the_identity() -> None:
    x = torch.tensor([[1.5, -2.0, 0.25]])
    assert torch.equal(grad_reverse(x, 0.3), x)
    assert torch.equal(GradientReversal(2.0)(x), x)


@pytest.mark.parametrize("lam", [1.0, 0.5, 0.0])
def test_backward_flips_the_sign_and_scales_by_lambda(lam: float) -> None:
    # loss = sum(w * y) with y = GRL(x): without the layer dloss/dx = w; with it -lam * w.
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    w = torch.tensor([2.0, 3.0, -4.0])
    (w * grad_reverse(x, lam)).sum().backward()
    assert x.grad is not None
    expected = {1.0: [-2.0, -3.0, 4.0], 0.5: [-1.0, -1.5, 2.0], 0.0: [0.0, 0.0, 0.0]}[lam]
    assert x.grad.tolist() == expected


def test_a_chain_through_the_layer_reverses_only_what_is_in_front_of_it() -> None:
    # x -> (*3) -> GRL(0.5) -> (*2) -> loss: the layer behind it (the "classifier" weight 2)
    # keeps its ordinary gradient, x gets 3 * (-0.5) * 2 = -3.
    x = torch.tensor(1.0, requires_grad=True)
    c = torch.tensor(2.0, requires_grad=True)
    loss = c * grad_reverse(3 * x, 0.5)
    loss.backward()
    assert x.grad is not None and c.grad is not None
    assert float(x.grad) == -3.0
    assert float(c.grad) == 3.0  # d(c * 3x)/dc at x = 1: unaffected by the reversal


def test_module_lambda_can_change_between_steps() -> None:
    grl = GradientReversal(1.0)
    grads = []
    for lam in (1.0, 0.25):
        grl.lambda_ = lam
        x = torch.ones(2, requires_grad=True)
        grl(x).sum().backward()
        assert x.grad is not None
        grads.append(x.grad.tolist())
    assert grads == [[-1.0, -1.0], [-0.25, -0.25]]


def test_dann_schedule_hand_checked() -> None:
    # 2 / (1 + e^(-10 p)) - 1: p = 0 -> 0; p = 0.5 -> 2 / 1.0067379 - 1 = 0.9866143;
    # p = 1 -> 2 / 1.0000454 - 1 = 0.9999092.
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(0.5) == pytest.approx(0.9866143, abs=1e-7)
    assert dann_lambda(1.0) == pytest.approx(0.9999092, abs=1e-7)
    assert dann_lambda(0.5, lambda_max=0.1) == pytest.approx(0.09866143, abs=1e-8)
    # progress outside [0, 1] is clipped; the schedule rises monotonically
    assert dann_lambda(-1.0) == 0.0 and dann_lambda(2.0) == dann_lambda(1.0)
    values = [dann_lambda(p / 10) for p in range(11)]
    assert values == sorted(values)
