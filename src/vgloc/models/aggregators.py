"""Aggregators: dense feature map -> one global vector.

This module stays one file (just over 500 lines) because the registry, every aggregator
it builds and NetVLAD's data-driven initialisation share one set of spec names and
parameter layouts; splitting would separate NetVLAD from its initialisation.

Registered names (the spec string's middle part):

- ``avg``, ``max``, ``gem``: global pooling of the feature map after L2-normalising
  every location over channels (VG benchmark ``l2='before_pool'``, CosPlace).
  ``gem`` has a learnable exponent ``p`` (init 3, eps 1e-6); ``gemfixed{p}`` keeps
  ``p`` fixed (a buffer under the same ``p`` key; the ResNet-18 heads study).
- ``netvlad{K}`` (default K=64): NetVLAD as in the VG benchmark (input
  L2-normalised over channels, 1x1 conv without bias -> softmax soft-assignment,
  residuals to ``centroids``, intra-normalisation, flatten, L2). Output K*C.
- ``crn{K}``: NetVLAD whose soft-assignment is re-weighted by a Contextual
  Reweighting Network mask (VG benchmark's CRN).

Parameter names follow the authors' modules (``p``, ``centroids``, ``conv.weight``,
``crn.filter_3_3.weight`` ...), so checkpoint keys map by a prefix rename.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from vgloc.registry import AGGREGATORS

if TYPE_CHECKING:
    from vgloc.models.model import GeoLocalizationModel

__all__ = [
    "CRN",
    "Aggregator",
    "AvgPool",
    "GeM",
    "MaxPool",
    "NetVLAD",
    "build_aggregator",
    "initialize_netvlad",
    "sample_local_descriptors",
]


class Aggregator(nn.Module):
    """Base class: knows its input channels and output size without a forward pass.

    Args:
        in_channels: Channels ``C`` of the backbone feature map.

    Attributes:
        in_channels: ``C``.
        out_dim: Length of the output vector.
        requires_data_init: Whether random parameters are meaningless until initialised
            from data (NetVLAD's clusters); pipelines check it with ``initialized``.
        initialized: False only for a data-initialised aggregator that has neither been
            initialised from data nor loaded from a checkpoint.
    """

    out_dim: int
    requires_data_init: bool = False

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        if int(in_channels) <= 0:
            raise ValueError(f"in_channels must be positive, got {in_channels!r}")
        self.in_channels = int(in_channels)
        self.out_dim = self.in_channels
        self.initialized = not self.requires_data_init

    def _check(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects a (B, {self.in_channels}, H, W) feature map, "
                f"got shape {tuple(x.shape)}"
            )


class AvgPool(Aggregator):
    """L2-normalise each location over channels, then global average pooling (SPoC).

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: ``(B, C)`` (not re-normalised; the model L2-normalises at the end)
    """

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return F.normalize(x, p=2, dim=1).mean(dim=(-2, -1))


class MaxPool(Aggregator):
    """L2-normalise each location over channels, then global max pooling (MAC).

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: ``(B, C)``
    """

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return F.normalize(x, p=2, dim=1).amax(dim=(-2, -1))


def gem(x: Tensor, p: Tensor | float = 3.0, eps: float = 1e-6) -> Tensor:
    """Generalised-mean pooling over the spatial dimensions.

    Args:
        x: Feature map.
        p: Exponent (a 1-element tensor or a float); p=1 is average, p->inf max.
        eps: Lower clamp so that fractional powers of zero stay finite.

    Returns:
        ``(mean(clamp(x, eps)^p))^(1/p)`` per channel.

    Shape:
        - x: ``(B, C, H, W)``
        - Output: ``(B, C)``
    """
    return x.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


class GeM(Aggregator):
    """L2-normalise each location over channels, then GeM pooling with learnable ``p``.

    Args:
        in_channels: ``C``.
        p: Initial exponent (3, as CosPlace and the VG benchmark).
        eps: Clamp floor (1e-6).
        trainable_p: Learn ``p`` (default); ``False`` keeps it fixed (``gemfixed{p}``).

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: ``(B, C)`` (not re-normalised here)
    """

    def __init__(self, in_channels: int, p: float = 3.0, eps: float = 1e-6, trainable_p: bool = True) -> None:
        super().__init__(in_channels)
        self.p: Tensor
        if trainable_p:
            self.p = nn.Parameter(torch.ones(1) * p)
        else:
            # A buffer keeps the state-dict key ``p``, so learnable-p checkpoints still load.
            self.register_buffer("p", torch.ones(1) * p)
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return gem(F.normalize(x, p=2, dim=1), self.p, self.eps)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, p={self.p.item():.4f}, eps={self.eps}"


class NetVLAD(Aggregator):
    """NetVLAD (Arandjelović et al.), as implemented in the VG benchmark.

    Args:
        in_channels: ``C``.
        clusters: Number of clusters ``K`` (64 in the VG benchmark).

    Attributes:
        centroids: ``(K, C)`` parameter, the cluster centres.
        conv: 1x1 convolution without bias giving the soft-assignment logits.
        alpha: Set by :meth:`init_from_features` (informational; not in the state dict,
            as in the authors' code).

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: ``(B, K*C)``, L2-normalised, cluster-major (row ``k`` of the
          ``(K, C)`` VLAD matrix is ``out[:, k*C:(k+1)*C]``).
    """

    def __init__(self, in_channels: int, clusters: int = 64) -> None:
        super().__init__(in_channels)
        if int(clusters) <= 0:
            raise ValueError(f"NetVLAD needs a positive number of clusters, got {clusters!r}")
        self.clusters = int(clusters)
        self.out_dim = self.clusters * self.in_channels
        self.conv = nn.Conv2d(self.in_channels, self.clusters, kernel_size=1, bias=False)
        # Uniform [0, 1) like the reference; real runs overwrite it from data.
        self.centroids = nn.Parameter(torch.rand(self.clusters, self.in_channels))
        self.alpha: float | None = None

    requires_data_init = True

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any, **kwargs: Any) -> None:
        # Clusters loaded from a checkpoint count as initialised (no state-dict flag is
        # stored, so that the authors' checkpoints keep loading strictly).
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + "centroids" in state_dict:
            self.initialized = True

    def soft_assign(self, x: Tensor) -> Tensor:
        """Soft-assignment of every location of an L2-normalised map to the clusters.

        Shape:
            - x: ``(B, C, H, W)`` (already L2-normalised over C)
            - Output: ``(B, K, H*W)``, summing to 1 over K
        """
        return F.softmax(self.conv(x).flatten(2), dim=1)

    def vlad(self, x: Tensor, assign: Tensor) -> Tensor:
        """Aggregate residuals given the soft-assignment, then normalise.

        Shape:
            - x: ``(B, C, H, W)``, assign: ``(B, K, H*W)``
            - Output: ``(B, K*C)``
        """
        # sum_n a_kn (x_n - c_k) = sum_n a_kn x_n - (sum_n a_kn) c_k: one batched matmul
        # instead of the reference's per-cluster loop over broadcast residuals.
        feats = x.flatten(2)  # (B, C, N)
        v = torch.bmm(assign, feats.transpose(1, 2))  # (B, K, C)
        v = v - assign.sum(dim=-1, keepdim=True) * self.centroids.to(v.dtype)
        v = F.normalize(v, p=2, dim=2)  # intra-normalisation
        return F.normalize(v.flatten(1), p=2, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        x = F.normalize(x, p=2, dim=1)
        return self.vlad(x, self.soft_assign(x))

    @torch.no_grad()
    def init_from_features(
        self, local_desc: Tensor | np.ndarray, *, seed: int = 1234, niter: int = 100
    ) -> float:
        """Initialise clusters from sampled local descriptors (VG benchmark, "vladv1").

        Runs ``faiss.Kmeans(C, K, niter=100)`` with faiss's other defaults (seed 1234,
        ``max_points_per_centroid=256``, so at most 256*K points are used), then sets
        ``alpha = -ln(0.01) / mean(top1 - top2)`` where top1/top2 are each
        descriptor's two largest dot products with the L2-normalised centroids,
        ``conv.weight = alpha * normalised centroids`` and ``centroids = raw centroids``.

        Args:
            local_desc: Local descriptors, L2-normalised over C (as
                :func:`sample_local_descriptors` returns them).
            seed: k-means seed (faiss default 1234); the result is deterministic.
            niter: k-means iterations.

        Returns:
            ``alpha`` (also stored in ``self.alpha``).

        Shape:
            - local_desc: ``(N, C)`` with ``N >= K``
        """
        import faiss  # imported here: only initialisation needs it

        desc = local_desc.detach().cpu().numpy() if isinstance(local_desc, Tensor) else local_desc
        desc = np.ascontiguousarray(desc, dtype=np.float32)
        if desc.ndim != 2 or desc.shape[1] != self.in_channels:
            raise ValueError(f"local descriptors must have shape (N, {self.in_channels}), got {desc.shape}")
        if desc.shape[0] < self.clusters:
            raise ValueError(
                f"need at least {self.clusters} local descriptors for {self.clusters} clusters, "
                f"got {desc.shape[0]}"
            )
        if not np.isfinite(desc).all():
            raise ValueError("local descriptors contain NaN or inf")
        kmeans = faiss.Kmeans(self.in_channels, self.clusters, niter=niter, seed=seed)
        kmeans.train(desc)
        centroids = np.asarray(kmeans.centroids, dtype=np.float32).reshape(self.clusters, -1)
        alpha = netvlad_alpha(centroids, desc)
        normed = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
        device = self.centroids.device
        self.centroids.copy_(torch.from_numpy(centroids).to(device))
        self.conv.weight.copy_(torch.from_numpy(alpha * normed)[:, :, None, None].to(device))
        self.alpha = alpha
        self.initialized = True
        return alpha

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, clusters={self.clusters}"


def netvlad_alpha(centroids: np.ndarray, desc: np.ndarray) -> float:
    """NetVLAD's assignment sharpness: ``-ln(0.01) / mean(top1 - top2)``.

    Args:
        centroids: Raw cluster centres.
        desc: Local descriptors.

    Returns:
        alpha, such that the average gap between the best and second-best cluster
        gives a 100:1 soft-assignment ratio.

    Shape:
        - centroids: ``(K, C)`` with K >= 2; desc: ``(N, C)``
    """
    if centroids.shape[0] < 2:
        raise ValueError("alpha needs at least 2 clusters (it uses the top-2 gap)")
    normed = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
    dots = desc @ normed.T  # (N, K)
    top2 = -np.partition(-dots, 1, axis=1)[:, :2]  # the two largest, descending
    gap = float(np.mean(top2[:, 0] - top2[:, 1]))
    if not gap > 0:
        raise ValueError("degenerate NetVLAD init: descriptors are equidistant from centroids")
    return float(-np.log(0.01) / gap)


class _CRNModule(nn.Module):
    """Contextual Reweighting Network (Kim et al.) producing a spatial mask.

    AvgPool 3x3/2 (ceil) -> parallel 3x3 (32), 5x5 (32), 7x7 (20) convs -> concat ->
    ReLU -> fixed 1x1 conv (weight 1, bias 0, not trainable) -> ReLU -> bilinear
    upsample back to the input size.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.downsample_pool = nn.AvgPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
        self.filter_3_3 = nn.Conv2d(in_channels, 32, kernel_size=3, padding=1)
        self.filter_5_5 = nn.Conv2d(in_channels, 32, kernel_size=5, padding=2)
        self.filter_7_7 = nn.Conv2d(in_channels, 20, kernel_size=7, padding=3)
        self.acc_w = nn.Conv2d(84, 1, kernel_size=1)
        for conv in (self.filter_3_3, self.filter_5_5, self.filter_7_7):
            nn.init.xavier_normal_(conv.weight)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        # A fixed sum of the 84 context channels: the reference freezes this 1x1 conv.
        nn.init.ones_(self.acc_w.weight)
        if self.acc_w.bias is not None:
            nn.init.zeros_(self.acc_w.bias)
        self.acc_w.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        g = self.downsample_pool(x)
        g = F.relu(torch.cat([self.filter_3_3(g), self.filter_5_5(g), self.filter_7_7(g)], 1))
        mask = F.relu(self.acc_w(g))
        # The reference upsamples by a fixed x2, which only fits even H and W (it crashes
        # otherwise); resizing to (H, W) is identical for even sizes and works for odd ones.
        return F.interpolate(mask, size=(h, w), mode="bilinear", align_corners=False)


class CRN(NetVLAD):
    """NetVLAD with a Contextual Reweighting Network mask on the soft-assignment.

    The VG benchmark trains it starting from a trained NetVLAD checkpoint (PROTOCOLS
    §1.4): load one with ``strict=False``; ``crn.*`` starts from its own init. Its
    context filters use their own learning rate there (5e-3 vs 5e-4).

    Args:
        in_channels: ``C``.
        clusters: ``K``.

    Shape:
        - Input: ``(B, C, H, W)``
        - Output: ``(B, K*C)``, L2-normalised
    """

    def __init__(self, in_channels: int, clusters: int = 64) -> None:
        super().__init__(in_channels, clusters)
        self.crn = _CRNModule(self.in_channels)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        x = F.normalize(x, p=2, dim=1)
        mask = self.crn(x).flatten(2)  # (B, 1, H*W)
        return self.vlad(x, self.soft_assign(x) * mask)


# -- registration --------------------------------------------------------------------------
AGGREGATORS.register(
    "avg", lambda c, _arg: AvgPool(c), dim="C", description="L2 per location -> average (SPoC)"
)
AGGREGATORS.register("max", lambda c, _arg: MaxPool(c), dim="C", description="L2 per location -> max (MAC)")
AGGREGATORS.register(
    "gem",
    lambda c, _arg: GeM(c),
    dim="C",
    description="L2 per location -> GeM, learnable p=3 (CosPlace, VG benchmark)",
)
AGGREGATORS.register(
    "gemfixed",
    lambda c, p: GeM(c, float(p), trainable_p=False),
    arg="p",
    arg_default=3,
    dim="C",
    description="L2 per location -> GeM with a fixed integer p, e.g. gemfixed3",
)
AGGREGATORS.register(
    "netvlad",
    lambda c, k: NetVLAD(c, k),
    arg="clusters",
    arg_default=64,
    dim="K*C",
    description="NetVLAD with K clusters (VG benchmark), e.g. netvlad64",
)
AGGREGATORS.register(
    "crn",
    lambda c, k: CRN(c, k),
    arg="clusters",
    arg_default=64,
    dim="K*C",
    description="NetVLAD + contextual reweighting mask (VG benchmark CRN), e.g. crn64",
)


def build_aggregator(name: str, in_channels: int, arg: int | None = None) -> Aggregator:
    """Build a registered aggregator.

    Args:
        name: Registry name without the numeric argument (``"netvlad"``).
        in_channels: Backbone output channels ``C``.
        arg: The numeric argument (clusters for ``netvlad``); ``None`` for the default.

    Returns:
        The aggregator module.
    """
    entry = AGGREGATORS.entry(name)
    if arg is not None and "arg" not in entry.metadata:
        raise ValueError(f"aggregator {name!r} takes no numeric argument, got {name}{arg}")
    if arg is None:
        arg = entry.metadata.get("arg_default")
    factory: Callable[[int, Any], Aggregator] = entry.obj
    return factory(in_channels, arg)


# -- NetVLAD initialisation from data ----------------------------------------------------------
def _images_of(batch: Any) -> Tensor:
    """The image tensor of a batch that is a tensor or a (images, ...) tuple/list/dict."""
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        return batch[0]
    if isinstance(batch, dict) and isinstance(batch.get("image"), Tensor):
        return batch["image"]
    raise TypeError(
        "expected batches of images: a (B, 3, H, W) tensor, an (images, ...) tuple or a "
        f"dict with 'image'; got {type(batch).__name__}"
    )


@torch.inference_mode()
def sample_local_descriptors(
    backbone: nn.Module,
    images: Dataset[Any] | Iterable[Any],
    *,
    num_images: int = 500,
    per_image: int = 100,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> Tensor:
    """Sample L2-normalised local descriptors from backbone feature maps (PROTOCOLS §1.3).

    The VG benchmark takes 100 random locations from each of 500 random training images.

    Args:
        backbone: Runs in eval mode (its mode is restored afterwards).
        images: A map-style dataset yielding an image tensor or an ``(image, ...)`` tuple
            (``num_images`` items are drawn at random, without replacement), or an
            iterable of batches such as a DataLoader (its first ``num_images`` images
            are used, in order).
        num_images: At most this many images.
        per_image: Locations per image, without replacement; all of them when the feature
            map is smaller (the reference would fail there).
        batch_size: Batch size when ``images`` is a dataset.
        device: Where to run the backbone (the backbone is moved there).
        seed: Seed of the image and location sampling.

    Returns:
        The descriptors on CPU, float32.

    Shape:
        - Output: ``(N, C)`` with ``N <= num_images * per_image``
    """
    if num_images <= 0 or per_image <= 0:
        raise ValueError(f"num_images and per_image must be positive, got {num_images}, {per_image}")
    gen = torch.Generator().manual_seed(seed)
    if isinstance(images, Dataset) and hasattr(images, "__len__"):
        n = len(images)
        if n == 0:
            raise ValueError("the image dataset is empty")
        chosen = torch.randperm(n, generator=gen)[: min(num_images, n)].tolist()
        batches: Iterable[Any] = DataLoader(
            torch.utils.data.Subset(images, chosen), batch_size=batch_size, shuffle=False
        )
    else:
        batches = cast(Iterable[Any], images)
    was_training = backbone.training
    backbone.eval().to(device)
    out: list[Tensor] = []
    seen = 0
    try:
        for batch in batches:
            x = _images_of(batch)
            if x.ndim == 3:
                x = x.unsqueeze(0)
            x = x[: num_images - seen].to(device)
            feats = F.normalize(backbone(x).float(), p=2, dim=1)
            feats = feats.flatten(2).transpose(1, 2).cpu()  # (b, H*W, C)
            for f in feats:
                k = min(per_image, f.shape[0])
                out.append(f[torch.randperm(f.shape[0], generator=gen)[:k]])
            seen += x.shape[0]
            if seen >= num_images:
                break
    finally:
        backbone.train(was_training)
    if not out:
        raise ValueError("no images were read to sample local descriptors from")
    return torch.cat(out)


def initialize_netvlad(
    model: GeoLocalizationModel,
    images: Dataset[Any] | Iterable[Any],
    *,
    num_images: int = 500,
    per_image: int = 100,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    seed: int = 0,
    kmeans_seed: int = 1234,
) -> float:
    """Initialise a model's NetVLAD/CRN clusters from its own backbone features.

    Collects local descriptors with :func:`sample_local_descriptors` (backbone in
    inference mode) and calls :meth:`NetVLAD.init_from_features`. Deterministic for
    fixed seeds and data.

    Args:
        model: A model whose ``aggregator`` is a :class:`NetVLAD` (or :class:`CRN`).
        images: See :func:`sample_local_descriptors`.
        num_images: Images to sample (500 in the VG benchmark).
        per_image: Local descriptors per image (100).
        batch_size: Inference batch size for a dataset (16).
        device: Device for the backbone pass.
        seed: Sampling seed.
        kmeans_seed: faiss k-means seed (faiss default 1234).

    Returns:
        The NetVLAD ``alpha``.
    """
    agg = getattr(model, "aggregator", None)
    if not isinstance(agg, NetVLAD):
        raise TypeError(
            f"initialize_netvlad needs a NetVLAD/CRN aggregator, got {type(agg).__name__} "
            f"(model spec {getattr(model, 'spec', '?')!r})"
        )
    desc = sample_local_descriptors(
        model.backbone,
        images,
        num_images=num_images,
        per_image=per_image,
        batch_size=batch_size,
        device=device,
        seed=seed,
    )
    return agg.init_from_features(desc, seed=kmeans_seed)
