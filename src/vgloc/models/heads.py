"""Heads: global vector -> final descriptor (before the model's final L2).

- ``none``: identity.
- ``fc{N}``: ``Linear(D_in, N)`` with bias, as CosPlace/EigenPlaces
  (``aggregation.3`` in their checkpoints).

The model always L2-normalises the head's output, so a head never does it itself.

Also here: :func:`init_fc_whitening` (initialise an fc head as the PCA-whitening of
sample descriptors) and :func:`penultimate_embedding` (the descriptor before the head).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vgloc.registry import HEADS

if TYPE_CHECKING:
    from vgloc.models.model import GeoLocalizationModel

__all__ = ["FCHead", "Head", "IdentityHead", "build_head", "init_fc_whitening", "penultimate_embedding"]


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


def penultimate_embedding(model: GeoLocalizationModel, x: Tensor, normalize: bool = True) -> Tensor:
    """The descriptor before the model's last projection: the aggregator's output.

    For ``resnet18+gem+fc512`` this is the 512-d GeM vector the fc layer reads; for a
    model without head it equals the model's output (up to the final L2).

    Args:
        model: A :class:`~vgloc.models.GeoLocalizationModel`.
        x: Images, prepared as for ``model(x)``.
        normalize: L2-normalise each row (as the model does with its final descriptor);
            ``False`` returns exactly what the head receives (what
            :func:`init_fc_whitening` needs).

    Returns:
        The embeddings.

    Shape:
        - x: ``(B, 3, H, W)``
        - Output: ``(B, model.head.in_dim)``
    """
    if getattr(model, "needs_cls_token", False):  # SALAD-style aggregators read (map, cls)
        out = model.aggregator(model.backbone.forward_tokens(x))  # type: ignore[operator]
    else:
        out = model.aggregator(model.features(x))
    if not normalize:
        return out
    return F.normalize(out.to(torch.promote_types(out.dtype, torch.float32)), p=2, dim=1)


@torch.no_grad()
def init_fc_whitening(
    head: FCHead | nn.Linear, descriptors: Tensor | np.ndarray, eps: float = 1e-6
) -> Tensor:
    """Initialise a linear head as the PCA-whitening of sample descriptors.

    With ``mu`` the mean of the descriptors and ``C = U diag(lam) U^T`` their covariance
    (eigenvalues in decreasing order), the head becomes
    ``y = diag((lam_k + eps * lam_1)^(-1/2)) U_k^T (x - mu)`` for the ``k = out_dim``
    leading components: the projected training descriptors have zero mean and
    (near-)identity covariance. This is the classic PCA-whitening of global
    descriptors (Jégou & Chum, ECCV 2012; used to initialise the final fc layer in
    Radenović et al.'s retrieval models), fitted on descriptors the head receives, i.e.
    :func:`penultimate_embedding` with ``normalize=False``.

    Args:
        head: An :class:`FCHead` or ``nn.Linear`` with ``in_features = D``,
            ``out_features = k``; its weight and bias are overwritten in place.
        descriptors: Samples ``(N, D)``; ``N`` must exceed ``k`` so that every kept
            component has a variance estimate.
        eps: Regulariser, relative to the largest eigenvalue (keeps near-zero-variance
            directions from being amplified without bound).

    Returns:
        The kept eigenvalues ``(k,)`` (float64, decreasing).

    Raises:
        ValueError: Descriptors of the wrong width, too few samples, or non-finite values.
    """
    fc = head.fc if isinstance(head, FCHead) else head
    if not isinstance(fc, nn.Linear):
        raise TypeError(f"expected an FCHead or nn.Linear, got {type(head).__name__}")
    x = torch.as_tensor(np.asarray(descriptors) if not isinstance(descriptors, Tensor) else descriptors)
    d_in, k = fc.in_features, fc.out_features
    if x.ndim != 2 or x.shape[1] != d_in:
        raise ValueError(f"whitening needs descriptors of shape (N, {d_in}), got {tuple(x.shape)}")
    if x.shape[0] <= k:
        raise ValueError(
            f"whitening to {k} dimensions needs more than {k} sample descriptors, got {x.shape[0]}"
        )
    x = x.detach().to("cpu", torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError("whitening: the sample descriptors contain NaN or inf")
    mu = x.mean(dim=0)
    xc = x - mu
    cov = xc.T @ xc / (x.shape[0] - 1)
    lam, vec = torch.linalg.eigh(cov)  # ascending
    lam, vec = lam.flip(0)[:k].clamp(min=0), vec.flip(1)[:, :k]
    weight = (vec / torch.sqrt(lam + eps * float(lam[0]))).T  # (k, D)
    fc.weight.copy_(weight.to(fc.weight.dtype))
    if fc.bias is not None:
        fc.bias.copy_((-weight @ mu).to(fc.bias.dtype))
    return lam
