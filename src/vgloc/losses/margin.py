"""Margin-based classification heads: CosFace, ArcFace and SphereFace in one general form.

CosPlace-style training turns place recognition into classification over geo-cells
(see :mod:`vgloc.training.methods.cosplace.groups`): a head holds one L2-normalised weight vector per
class and penalises the angle ``theta`` between a descriptor and its class weight.
All three classic losses are special cases of one target-class logit
(the "combined margin" of InsightFace)::

    target logit     = s * (psi(theta) - m3),   psi(theta) = cos(m1 * theta + m2)
    non-target logit = s * cos(theta_j)

==============  ============================  =========================================
preset          margin                        defaults (source)
==============  ============================  =========================================
``cosface``     additive cosine ``m3``        s=30, m3=0.40: CosPlace's
                                              ``MarginCosineProduct`` (PROTOCOLS §2.2,
                                              CP cosface_loss.py:24-38). The CosFace paper
                                              uses s=64 and sweeps m in 0.25-0.45;
                                              pytorch-metric-learning's ``CosFaceLoss``
                                              defaults to scale=64, margin=0.35.
``arcface``     additive angular ``m2``       s=64, m2=0.5 rad (ArcFace paper and
                                              InsightFace). PML v2.x ``ArcFaceLoss``
                                              takes its margin in **degrees** (default
                                              28.6 deg = 0.4992 rad; PROTOCOLS §3).
``sphereface``  multiplicative angular ``m1`` m1=4, s=1, logits scaled by ``||x||``
                                              (A-Softmax paper; PML ``SphereFaceLoss``
                                              margin=4, scale=1). Optional lambda
                                              annealing of the original Caffe code.
==============  ============================  =========================================

Monotonicity. ``cos(m1*theta + m2)`` stops decreasing once its argument passes pi, which
would reward moving *away* from the class weight. As in PML (and InsightFace):

* ArcFace (``m2 > 0``): for ``theta > pi - m2`` the target logit is
  ``cos(theta) - m2 * sin(m2)`` instead (PML arcface_loss.py:36-40).
* SphereFace (integer ``m1 > 1``): ``psi(theta) = (-1)^k cos(m1*theta) - 2k`` for
  ``theta`` in ``[k*pi/m1, (k+1)*pi/m1]`` (A-Softmax paper, eq. 6;
  PML large_margin_softmax_loss.py:77-84). ``cos(m1*theta)`` is evaluated as the
  Chebyshev polynomial ``T_m1(cos theta)`` so no ``acos`` enters the gradient.

Why these heads are not PML wrappers: PML's margin losses fuse the classifier weights
and the cross-entropy in one loss object and keep ``W`` as
``(embedding_size, num_classes)``. CosPlace trains one classifier per group with its own
optimiser and learning rate, the evaluation code wants plain logits, and CosPlace
checkpoints store the classifier as ``weight`` of shape ``(num_classes, in_dim)``. The
tests check that our values equal PML's ``CosFaceLoss``, ``ArcFaceLoss`` and
``SphereFaceLoss`` given the same weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vgloc.registry import Registry

__all__ = [
    "MARGIN_HEADS",
    "MarginHead",
    "MarginPreset",
    "SphereFaceAnnealing",
    "create_margin_head",
    "list_margin_heads",
]

# Below this, 1 - cos^2 is treated as 0 when computing sin(theta): sqrt has an
# infinite slope at 0, and a clamped input gets a zero (finite) gradient instead.
_SIN_EPS = 1e-12


@dataclass(frozen=True)
class SphereFaceAnnealing:
    """Lambda annealing of the original SphereFace Caffe code (off unless asked for).

    SphereFace trains hard with ``m1=4`` from scratch, so the Caffe layer blends the
    margin logit with the plain one and fades the plain one out::

        lambda(iter) = max(lambda_min, base * (1 + gamma * iter) ** -power)
        target logit = ||x|| * (lambda * cos(theta) + psi(theta)) / (1 + lambda)

    The iteration counter starts at 0 and is incremented *before* lambda is computed,
    once per training forward pass, so the first pass uses ``iter = 1``
    (SF margin_inner_product_layer.cpp:116-121). Defaults are those of
    SF train/code/sphereface_model.prototxt:814-823 (PROTOCOLS §3). PML's
    ``SphereFaceLoss`` does not anneal.

    Deviation: the Caffe backward pass uses a hand-normalised gradient for the target
    logit; here autograd differentiates the forward formula exactly.

    Attributes:
        base: Initial scale of lambda.
        gamma: Decay rate per iteration.
        power: Decay exponent.
        lambda_min: Floor of lambda (the margin never takes over completely).
    """

    base: float = 1000.0
    gamma: float = 0.12
    power: float = 1.0
    lambda_min: float = 5.0

    def value(self, iteration: int) -> float:
        """Lambda at a (1-based) training iteration.

        Args:
            iteration: Number of training forward passes so far, this one included.

        Returns:
            ``max(lambda_min, base * (1 + gamma * iteration) ** -power)``.
        """
        return max(self.lambda_min, self.base * (1.0 + self.gamma * iteration) ** (-self.power))


class MarginHead(nn.Module):
    """Cosine classifier whose target-class logit carries an angular/cosine margin.

    Target logit ``s * (psi(theta_y) - m3)`` with ``psi = cos(m1 * theta + m2)`` made
    monotonic (see the module docstring); other logits ``s * cos(theta_j)``. With
    ``scale_by_norm`` (SphereFace) every logit is further multiplied by ``||x||``.
    The class weights are L2-normalised on every forward pass and initialised with
    ``xavier_uniform_`` as CosPlace's ``MarginCosineProduct``.

    Args:
        in_dim: Descriptor length ``D``.
        num_classes: Number of classes ``C``.
        s: Logit scale (> 0).
        m1: Multiplicative angular margin, a positive integer (1 = none).
        m2: Additive angular margin in radians, in ``[0, pi)``.
        m3: Additive cosine margin (>= 0).
        scale_by_norm: Multiply the logits by the descriptor norm ``||x||`` (SphereFace,
            PML ``SphereFaceLoss``); for L2-normalised descriptors this is a no-op.
        annealing: SphereFace lambda annealing (:class:`SphereFaceAnnealing`); None
            (default) disables it, as in PML.

    Attributes:
        weight: ``(C, D)`` class weights (CosPlace's classifier layout).
        iteration: Training forward passes counted for annealing (saved in the
            state dict so that a resumed run continues the schedule).

    Shape:
        - Input: ``x`` ``(B, D)``; ``labels`` ``(B,)`` int64 in ``[0, C)``.
        - Output: logits ``(B, C)``.

    Example:
        >>> head = MarginHead(512, 100, s=30.0, m3=0.4)  # CosFace as in CosPlace
        >>> logits = head(torch.randn(8, 512), torch.randint(0, 100, (8,)))
        >>> logits.shape
        torch.Size([8, 100])
    """

    iteration: Tensor

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        s: float = 30.0,
        m1: float = 1.0,
        m2: float = 0.0,
        m3: float = 0.0,
        *,
        scale_by_norm: bool = False,
        annealing: SphereFaceAnnealing | None = None,
    ) -> None:
        super().__init__()
        if int(in_dim) < 1:
            raise ValueError(f"in_dim must be a positive integer, got {in_dim}")
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes}")
        if not s > 0:
            raise ValueError(f"the logit scale s must be > 0, got {s}")
        if m1 < 1 or float(m1) != int(m1):
            raise ValueError(
                f"m1 (multiplicative margin) must be a positive integer, got {m1}: psi(theta) is "
                "only defined piecewise-monotonic for integer m1 (SphereFace)"
            )
        if not 0 <= m2 < math.pi:
            raise ValueError(f"m2 (additive angular margin, radians) must be in [0, pi), got {m2}")
        if m3 < 0:
            raise ValueError(f"m3 (additive cosine margin) must be >= 0, got {m3}")
        if int(m1) > 1 and m2 != 0:
            raise ValueError(
                f"m1={m1} together with m2={m2} is not supported: no monotonic extension of "
                "cos(m1*theta + m2) is defined for that combination; use one angular margin"
            )
        self.in_dim = int(in_dim)
        self.num_classes = int(num_classes)
        self.s = float(s)
        self.m1 = int(m1)
        self.m2 = float(m2)
        self.m3 = float(m3)
        self.scale_by_norm = bool(scale_by_norm)
        self.annealing = annealing
        self.weight = nn.Parameter(torch.empty(self.num_classes, self.in_dim))
        nn.init.xavier_uniform_(self.weight)
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))

    def extra_repr(self) -> str:
        parts = [f"in_dim={self.in_dim}", f"num_classes={self.num_classes}", f"s={self.s}"]
        parts += [f"m1={self.m1}", f"m2={self.m2}", f"m3={self.m3}"]
        if self.scale_by_norm:
            parts.append("scale_by_norm=True")
        if self.annealing is not None:
            parts.append(f"annealing={self.annealing}")
        return ", ".join(parts)

    @property
    def current_lambda(self) -> float:
        """Annealing lambda of the latest training pass (0.0 when annealing is off)."""
        if self.annealing is None:
            return 0.0
        return self.annealing.value(max(int(self.iteration), 1))

    def cosine(self, x: Tensor) -> Tensor:
        """Cosine similarity between each descriptor and each class weight.

        Args:
            x: Descriptors (need not be normalised).

        Returns:
            ``cos(theta)`` in ``[-1, 1]``.

        Shape:
            - Input: ``(B, D)``
            - Output: ``(B, C)``
        """
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"expected descriptors of shape (B, {self.in_dim}), got {tuple(x.shape)}")
        return F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1)).clamp(-1.0, 1.0)

    def psi(self, cos_theta: Tensor) -> Tensor:
        """Margin-modified target cosine ``psi(theta) - m3``, monotonic in ``theta``.

        Args:
            cos_theta: Cosines of the target classes, any shape.

        Returns:
            Same shape as the input.
        """
        c = cos_theta
        if self.m1 > 1:
            # k = floor(m1 * theta / pi) selects the monotonic piece; it is piecewise
            # constant, so it carries no gradient (as in PML and the Caffe layer).
            with torch.no_grad():
                k = torch.floor(self.m1 * torch.acos(c.clamp(-1.0, 1.0)) / math.pi)
            sign = 1.0 - 2.0 * torch.remainder(k, 2.0)  # (-1)^k
            out = sign * _chebyshev(c, self.m1) - 2.0 * k
        elif self.m2 > 0:
            sin = torch.sqrt((1.0 - c * c).clamp_min(_SIN_EPS))
            cos_plus = c * math.cos(self.m2) - sin * math.sin(self.m2)
            # theta <= pi - m2  <=>  cos(theta) >= -cos(m2); beyond it PML/InsightFace fall
            # back to cos(theta) - m2*sin(m2), which keeps the logit decreasing in theta.
            out = torch.where(c >= -math.cos(self.m2), cos_plus, c - self.m2 * math.sin(self.m2))
        else:
            out = c
        return out - self.m3 if self.m3 else out

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Logits with the margin applied to each sample's target class.

        Args:
            x: Descriptors.
            labels: Class index of each descriptor. None gives plain scaled cosine
                logits (no margin), e.g. for validation accuracy.

        Returns:
            Logits for :func:`torch.nn.functional.cross_entropy`.

        Shape:
            - Input: ``x`` ``(B, D)``, ``labels`` ``(B,)``
            - Output: ``(B, C)``
        """
        if labels is not None:
            labels = self._check_labels(labels, x.shape[0])
        return self._logits(x, labels)

    def _logits(self, x: Tensor, labels: Tensor | None) -> Tensor:
        cos = self.cosine(x)
        logits = cos
        if labels is not None:
            labels = labels.to(cos.device)
            target = cos.gather(1, labels[:, None])
            modified = self.psi(target)
            if self.annealing is not None:
                if self.training:
                    with torch.no_grad():
                        self.iteration += 1
                lam = self.current_lambda
                modified = (lam * target + modified) / (1.0 + lam)
            logits = cos.scatter(1, labels[:, None], modified)
        scale: Tensor | float = self.s
        if self.scale_by_norm:
            scale = self.s * x.norm(dim=1, keepdim=True)
        return logits * scale

    def loss(self, x: Tensor, labels: Tensor) -> Tensor:
        """Mean cross-entropy of the margin logits (CosPlace's criterion).

        Args:
            x: Descriptors.
            labels: Class indices.

        Returns:
            Scalar loss.

        Shape:
            - Input: ``x`` ``(B, D)``, ``labels`` ``(B,)``
            - Output: ``()``
        """
        labels = self._check_labels(labels, x.shape[0])
        return F.cross_entropy(self._logits(x, labels), labels.to(x.device))

    def _check_labels(self, labels: Tensor, batch: int) -> Tensor:
        if labels.ndim != 1 or labels.shape[0] != batch:
            raise ValueError(f"labels must have shape ({batch},), got {tuple(labels.shape)}")
        if labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
        labels = labels.long()
        if batch:
            lo, hi = int(labels.min()), int(labels.max())
            if lo < 0 or hi >= self.num_classes:
                bad = lo if lo < 0 else hi
                raise ValueError(f"label {bad} is outside [0, {self.num_classes}) for this head")
        return labels


def _chebyshev(c: Tensor, n: int) -> Tensor:
    """``cos(n * theta)`` from ``c = cos(theta)`` (Chebyshev recurrence, exact for int n)."""
    prev, cur = torch.ones_like(c), c
    for _ in range(n - 1):
        prev, cur = cur, 2.0 * c * cur - prev
    return cur


@dataclass(frozen=True)
class MarginPreset:
    """Named defaults of one margin loss.

    Attributes:
        s: Logit scale.
        m1: Multiplicative angular margin.
        m2: Additive angular margin (radians).
        m3: Additive cosine margin.
        scale_by_norm: Multiply logits by ``||x||``.
        margin_param: Which of ``m1``/``m2``/``m3`` the shorthand override ``m`` sets.
        source: Where the defaults come from.
    """

    s: float
    m1: float = 1.0
    m2: float = 0.0
    m3: float = 0.0
    scale_by_norm: bool = False
    margin_param: str = "m3"
    source: str = ""


MARGIN_HEADS: Registry[MarginPreset] = Registry("margin head")
MARGIN_HEADS.register(
    "cosface",
    MarginPreset(
        s=30.0,
        m3=0.40,
        margin_param="m3",
        source="CosPlace MarginCosineProduct (cosface_loss.py:24-38); paper/PML: s=64, m=0.35",
    ),
    description="CosFace / LMCL: s*(cos(theta) - m)",
)
MARGIN_HEADS.register(
    "arcface",
    MarginPreset(
        s=64.0,
        m2=0.5,
        margin_param="m2",
        source="ArcFace paper / InsightFace: s=64, m=0.5 rad (PML v2.x: margin=28.6 degrees)",
    ),
    description="ArcFace: s*cos(theta + m), monotonic beyond pi - m",
)
MARGIN_HEADS.register(
    "sphereface",
    MarginPreset(
        s=1.0,
        m1=4.0,
        scale_by_norm=True,
        margin_param="m1",
        source="SphereFace paper m=4; PML SphereFaceLoss margin=4, scale=1, logits times ||x||",
    ),
    description="SphereFace / A-Softmax: ||x||*psi(theta), psi = (-1)^k cos(m theta) - 2k",
)

_OVERRIDES = ("s", "m", "m1", "m2", "m3", "scale_by_norm", "annealing")


def create_margin_head(name: str, in_dim: int, num_classes: int, **overrides: Any) -> MarginHead:
    """Build a :class:`MarginHead` from a named preset.

    Args:
        name: ``cosface``, ``arcface`` or ``sphereface`` (see :func:`list_margin_heads`).
        in_dim: Descriptor length ``D``.
        num_classes: Number of classes ``C``.
        **overrides: Any of ``s``, ``m1``, ``m2``, ``m3``, ``scale_by_norm``,
            ``annealing`` (a :class:`SphereFaceAnnealing`, or True for the Caffe
            defaults), and ``m``: the preset's own margin (``m3`` for cosface, ``m2``
            for arcface, ``m1`` for sphereface).

    Returns:
        A freshly initialised head.

    Raises:
        UnknownNameError: ``name`` is not a preset (the message lists close names).
        TypeError: An override name is not recognised, or ``m`` is given together
            with the parameter it stands for.

    Example:
        >>> head = create_margin_head("cosface", 512, 1000, s=100, m=0.4)  # EigenPlaces
        >>> (head.s, head.m3)
        (100.0, 0.4)
    """
    preset = MARGIN_HEADS.get(name)
    unknown = sorted(set(overrides) - set(_OVERRIDES))
    if unknown:
        raise TypeError(f"unknown override(s) {unknown} for margin head {name!r}; known: {list(_OVERRIDES)}")
    params: dict[str, Any] = {
        "s": preset.s,
        "m1": preset.m1,
        "m2": preset.m2,
        "m3": preset.m3,
        "scale_by_norm": preset.scale_by_norm,
    }
    if "m" in overrides:
        if preset.margin_param in overrides:
            raise TypeError(f"give either m or {preset.margin_param} for {name!r}, not both")
        overrides[preset.margin_param] = overrides.pop("m")
    annealing = overrides.pop("annealing", None)
    if annealing is True:
        annealing = SphereFaceAnnealing()
    elif annealing is False:
        annealing = None
    params.update(overrides)
    return MarginHead(in_dim, num_classes, annealing=annealing, **params)


def list_margin_heads(pattern: str = "*") -> list[str]:
    """Names of the margin-head presets matching a shell pattern.

    Args:
        pattern: An ``fnmatch`` pattern, e.g. ``"*face"``.

    Returns:
        Sorted preset names.
    """
    return MARGIN_HEADS.names(pattern)
