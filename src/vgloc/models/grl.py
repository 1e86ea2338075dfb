"""The gradient reversal layer (GRL) of domain-adversarial training (DANN).

Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML 2015
(arXiv:1409.7495), Sec. 3.2: the layer is the identity in the forward pass and
multiplies the gradient by ``-lambda`` in the backward pass. A domain classifier put
behind it learns to tell the domains apart, while the features in front of it are
pushed to make the domains indistinguishable.

The adaptation factor ``lambda`` is a constant, or follows the paper's schedule
(Sec. 5.2.2, "Training procedure"), rising from 0 to ``lambda_max`` with the training
progress ``p`` in [0, 1]::

    lambda_p = lambda_max * (2 / (1 + exp(-gamma * p)) - 1),   gamma = 10

so that the noisy signal of an untrained domain classifier barely reaches the
features early in training.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["GradReverse", "GradientReversal", "dann_lambda", "grad_reverse"]

#: The schedule's steepness in the DANN paper (Sec. 5.2.2).
DANN_GAMMA = 10.0


class GradReverse(torch.autograd.Function):
    """Identity forward; the backward pass multiplies the incoming gradient by ``-lambda``.

    Use through :func:`grad_reverse` or :class:`GradientReversal`.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, lambda_: float) -> Tensor:
        ctx.lambda_ = float(lambda_)
        # A view, not x itself: autograd needs a new tensor to attach this node's backward to.
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        return grad_output.neg() * ctx.lambda_, None


def grad_reverse(x: Tensor, lambda_: float = 1.0) -> Tensor:
    """Gradient reversal: ``x`` unchanged forward, gradient times ``-lambda_`` backward.

    Args:
        x: Any tensor, e.g. ``(B, D)`` descriptors.
        lambda_: The adaptation factor (>= 0; 0 blocks the gradient).

    Returns:
        A tensor equal to ``x`` (same shape), whose gradient reaches ``x`` reversed and scaled.
    """
    out: Tensor = GradReverse.apply(x, lambda_)
    return out


class GradientReversal(nn.Module):
    """:func:`grad_reverse` as a module; :attr:`lambda_` may be changed between steps (schedules).

    Args:
        lambda_: The initial adaptation factor.

    Shape:
        - Input: any, e.g. ``(B, D)``
        - Output: the same as the input
    """

    def __init__(self, lambda_: float = 1.0) -> None:
        super().__init__()
        self.lambda_ = float(lambda_)

    def forward(self, x: Tensor) -> Tensor:
        return grad_reverse(x, self.lambda_)

    def extra_repr(self) -> str:
        return f"lambda_={self.lambda_:g}"


def dann_lambda(progress: float, lambda_max: float = 1.0, gamma: float = DANN_GAMMA) -> float:
    """The DANN schedule: ``lambda_max * (2 / (1 + exp(-gamma * p)) - 1)``.

    Args:
        progress: Training progress ``p``, clipped to [0, 1] (steps done / total steps).
        lambda_max: The value approached at the end of training.
        gamma: Steepness (10 in the paper).

    Returns:
        ``lambda_p``: 0 at ``p = 0``, ``lambda_max * 0.98661`` at ``p = 0.5`` and
        ``lambda_max * 0.99991`` at ``p = 1`` for ``gamma = 10``.
    """
    p = min(max(float(progress), 0.0), 1.0)
    return float(lambda_max) * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)
