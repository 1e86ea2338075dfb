"""Heads: global vector -> final descriptor (before the model's final L2).

- ``none``: identity.
- ``fc{N}``: ``Linear(D_in, N)`` with bias, as CosPlace/EigenPlaces
  (``aggregation.3`` in their checkpoints).

The model always L2-normalises the head's output, so a head never does it itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from vgloc.registry import HEADS

__all__ = ["FCHead", "Head", "IdentityHead", "build_head"]


class Head(nn.Module):
    """Base class: knows its output size without a forward pass.

    Attributes:
        in_dim: Input vector length.
        out_dim: Output vector length.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim = int(in_dim)
        self.out_dim = int(out_dim)


class IdentityHead(Head):
    """No head: the aggregator's vector is the descriptor.

    Shape:
        - Input: ``(B, D)``
        - Output: ``(B, D)``
    """

    def __init__(self, in_dim: int) -> None:
        super().__init__(in_dim, in_dim)

    def forward(self, x: Tensor) -> Tensor:
        return x


class FCHead(Head):
    """A fully connected projection (CosPlace's ``fc_output_dim`` layer).

    Args:
        in_dim: Aggregator output length.
        out_dim: Descriptor length ``N``.

    Shape:
        - Input: ``(B, in_dim)``
        - Output: ``(B, N)``
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        if int(out_dim) <= 0:
            raise ValueError(f"fc head needs a positive output size, got {out_dim!r}")
        super().__init__(in_dim, out_dim)
        self.fc = nn.Linear(self.in_dim, self.out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x)


HEADS.register("none", lambda d, _arg: IdentityHead(d), dim="input", description="no head (identity)")
HEADS.register(
    "fc",
    lambda d, n: FCHead(d, n),
    arg="out_dim",
    arg_default=None,
    dim="N",
    description="Linear(D, N) projection (CosPlace), e.g. fc512",
)


def build_head(name: str, in_dim: int, arg: int | None = None) -> Head:
    """Build a registered head.

    Args:
        name: Registry name without the numeric argument (``"fc"``).
        in_dim: Input vector length.
        arg: The numeric argument (output size for ``fc``).

    Returns:
        The head module.
    """
    entry = HEADS.entry(name)
    if "arg" not in entry.metadata and arg is not None:
        raise ValueError(f"head {name!r} takes no numeric argument, got {name}{arg}")
    if arg is None:
        arg = entry.metadata.get("arg_default")
    if "arg" in entry.metadata and arg is None:
        raise ValueError(f"head {name!r} needs its {entry.metadata['arg']}, e.g. {name}512")
    factory: Callable[[int, Any], Head] = entry.obj
    return factory(in_dim, arg)
