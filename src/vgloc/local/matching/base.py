"""Matching local features: mutual nearest neighbours, Lowe's ratio test, LightGlue, LoFTR.

- Float descriptors are compared with the Euclidean distance, binary (packed uint8:
  ORB, AKAZE) with the Hamming distance.
- ``mnn``: mutual nearest neighbours (optionally under a distance threshold).
- ``ratio``: Lowe's ratio test at 0.8 with the mutual check, as hloc's ``NN-ratio``
  configuration (PROTOCOLS 6.3): a pair is kept when, in both directions, the
  nearest distance is at most 0.8 times the second nearest.
- ``lightglue`` (sparse, learned) and ``loftr`` (dense, detector-free) run through
  kornia and need weights (a file, or the published ones via kornia's cache/download);
  without them they raise :class:`~vgloc.rerank.WeightsUnavailableError`.

Sparse matchers return keypoint index pairs; :class:`Correspondences` turns them into
point pairs, which is what the dense LoFTR returns directly.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from vgloc.registry import Registry
from vgloc.rerank._image import Resize, as_rgb, check_resize, to_working, working_size
from vgloc.rerank._weights import file_digest, load_weights_file, pretrained_or_error
from vgloc.rerank.features import LocalFeatures

__all__ = [
    "MATCHERS",
    "Correspondences",
    "DenseMatcher",
    "LightGlueMatcher",
    "LoFTRMatcher",
    "MNNMatcher",
    "MatchResult",
    "RatioMatcher",
    "SparseMatcher",
    "create_matcher",
    "descriptor_distances",
    "mutual_nearest_neighbours",
    "ratio_test",
]

#: name -> matcher class. Metadata: ``dense`` (detector-free, no extractor), ``learned``.
MATCHERS: Registry[type[SparseMatcher] | type[DenseMatcher]] = Registry("matcher")


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class MatchResult:
    """Matches between the keypoints of two images.

    Attributes:
        matches: (M, 2) int64 index pairs ``(i in image 0, j in image 1)``.
        scores: (M,) float32 match quality, higher is better (``-distance`` for the
            nearest-neighbour matchers, the matching probability for LightGlue).
    """

    matches: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.matches)


@dataclass(frozen=True)
class Correspondences:
    """Matched point pairs between two images, with what verification needs.

    Attributes:
        points0: (M, 2) float32 (x, y) in image 0's original frame.
        points1: (M, 2) float32 (x, y) in image 1's original frame.
        scores: (M,) float32 match quality (higher is better).
        scale0: image 0's (sx, sy) working / original scale.
        scale1: image 1's (sx, sy) working / original scale.
        working_size0: image 0's (width, height) at the matching resolution.
        working_size1: image 1's (width, height) at the matching resolution.
        num_keypoints0: keypoints detected in image 0 (M for dense matchers); used to
            normalise scores as Patch-NetVLAD does with its number of query patches.
        indices: (M, 2) int64 keypoint indices for sparse matchers, else None.
    """

    points0: np.ndarray
    points1: np.ndarray
    scores: np.ndarray
    scale0: tuple[float, float]
    scale1: tuple[float, float]
    working_size0: tuple[int, int]
    working_size1: tuple[int, int]
    num_keypoints0: int
    indices: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.points0)

    def working_points(self) -> tuple[np.ndarray, np.ndarray]:
        """Both point sets in their working frames (where pixel thresholds apply)."""
        return to_working(self.points0, self.scale0), to_working(self.points1, self.scale1)

    @classmethod
    def from_matches(cls, f0: LocalFeatures, f1: LocalFeatures, result: MatchResult) -> Correspondences:
        """Point pairs of a sparse match result."""
        m = np.asarray(result.matches, np.int64).reshape(-1, 2)
        return cls(
            points0=f0.keypoints[m[:, 0]],
            points1=f1.keypoints[m[:, 1]],
            scores=np.asarray(result.scores, np.float32).reshape(-1),
            scale0=f0.scale,
            scale1=f1.scale,
            working_size0=f0.working_size,
            working_size1=f1.working_size,
            num_keypoints0=len(f0),
            indices=m,
        )


# ----------------------------------------------------------------------------- functions


def descriptor_distances(desc0: np.ndarray, desc1: np.ndarray, *, squared: bool = False) -> np.ndarray:
    """All pairwise descriptor distances: Euclidean for float, Hamming for packed uint8.

    Args:
        desc0: Shape (N0, D), float or uint8 (packed bits).
        desc1: Shape (N1, D), same dtype kind as ``desc0``.
        squared: return squared Euclidean distances (cheaper; same nearest neighbours).
            Ignored for Hamming distances.

    Returns:
        Distances. Shape: (N0, N1) float32 (Hamming distances are exact integers).
    """
    d0, d1 = np.asarray(desc0), np.asarray(desc1)
    if d0.ndim != 2 or d1.ndim != 2 or d0.shape[1] != d1.shape[1]:
        raise ValueError(f"descriptors must be (N0, D) and (N1, D), got {d0.shape} and {d1.shape}")
    binary0, binary1 = d0.dtype == np.uint8, d1.dtype == np.uint8
    if binary0 != binary1:
        raise ValueError(f"cannot compare {d0.dtype} with {d1.dtype} descriptors (binary vs float)")
    if len(d0) == 0 or len(d1) == 0:
        return np.zeros((len(d0), len(d1)), np.float32)
    # The full matrix serves both directions of the mutual check with one GEMM. OpenCV's
    # batchDistance only returns the top-K per row from Python, and BFMatcher returns
    # per-pair Python objects, so the distances are computed here with BLAS instead.
    if binary0:
        # Hamming distance = popcount(a) + popcount(b) - 2 * <a, b> over the unpacked bits;
        # exact in float32 (integers below 2**24).
        a = np.unpackbits(d0, axis=1).astype(np.float32)
        b = np.unpackbits(d1, axis=1).astype(np.float32)
    else:
        a, b = d0.astype(np.float32, copy=False), d1.astype(np.float32, copy=False)
    # ||a||² + ||b||² - 2 a·b, in place: the temporaries would cost as much as the GEMM.
    dist = a @ b.T
    dist *= -2.0
    dist += (a * a).sum(1)[:, None]
    dist += (b * b).sum(1)[None, :]
    np.maximum(dist, 0.0, out=dist)
    if not binary0 and not squared:
        np.sqrt(dist, out=dist)
    return dist


def mutual_nearest_neighbours(distances: np.ndarray, max_distance: float | None = None) -> np.ndarray:
    """Index pairs that are each other's nearest neighbour.

    Ties are broken towards the lower index (``argmin``).

    Args:
        distances: (N0, N1) pairwise distances (squared distances give the same pairs;
            then pass a squared ``max_distance``).
        max_distance: also require ``distance <= max_distance``.

    Returns:
        Pairs ``(i, j)`` sorted by ``i``. Shape: (M, 2) int64.
    """
    dist = np.asarray(distances)
    if dist.ndim != 2:
        raise ValueError(f"distances must be (N0, N1), got shape {dist.shape}")
    if dist.size == 0:
        return np.zeros((0, 2), np.int64)
    i = np.arange(dist.shape[0])
    nn01 = dist.argmin(axis=1)
    keep = _is_column_argmin(dist, i, nn01)
    if max_distance is not None:
        keep &= dist[i, nn01] <= max_distance
    return np.stack([i[keep], nn01[keep]], axis=1).astype(np.int64)


def _is_column_argmin(dist: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Whether each ``rows[k]`` is ``dist[:, cols[k]].argmin()``, without argmin along axis 0.

    numpy's argmin along axis 0 is ~50x slower than ``min`` along it (a strided loop), and
    the mutual check needs it for every column. A row is the argmin when it attains the
    column minimum and, for the rare columns where the minimum is tied, is the first such
    row (argmin's rule); only those tied columns get a real argmin.
    """
    col_min = dist.min(axis=0)
    ok = dist[rows, cols] == col_min[cols]
    tied = (dist == col_min[None, :]).sum(axis=0) > 1
    if tied.any():
        first = np.full(dist.shape[1], -1)
        first[tied] = dist[:, tied].argmin(axis=0)
        ok &= ~tied[cols] | (first[cols] == rows)
    return ok


def _two_smallest(dist: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """The smallest and second smallest value along ``axis`` (equal when the minimum is tied)."""
    d1 = dist.min(axis=axis)
    at_min = dist == np.expand_dims(d1, axis)
    d2 = np.where(at_min, np.inf, dist).min(axis=axis)
    return d1, np.where(at_min.sum(axis=axis) > 1, d1, d2)


def _ratio_pass(d1: np.ndarray, d2: np.ndarray, ratio: float) -> np.ndarray:
    # d2 == 0 means two identical best candidates: ambiguous, rejected. With a single
    # candidate d2 is inf: nothing to be ambiguous with, accepted.
    return (d1 <= ratio * d2) & (d2 > 0)


def ratio_test(
    distances: np.ndarray, ratio: float = 0.8, mutual: bool = True, *, squared: bool = False
) -> np.ndarray:
    """Lowe's ratio test: keep a nearest neighbour clearly closer than the second one.

    A row's nearest neighbour ``j`` is kept when ``d1 <= ratio * d2`` (``d1``, ``d2``
    the two smallest distances of the row; a row with one candidate always passes,
    ``d1 == d2 == 0`` never does). With ``mutual``, the test must also pass in the
    other direction and pick the same pair (hloc's NN-ratio).

    Args:
        distances: (N0, N1) pairwise distances.
        ratio: the threshold in (0, 1]; 0.8 is Lowe's and hloc's value.
        mutual: require the pair to pass in both directions.
        squared: ``distances`` are squared (then ``ratio²`` is applied, as hloc does).

    Returns:
        Pairs ``(i, j)`` sorted by ``i``. Shape: (M, 2) int64.
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    dist = np.asarray(distances)
    if dist.ndim != 2:
        raise ValueError(f"distances must be (N0, N1), got shape {dist.shape}")
    if dist.size == 0:
        return np.zeros((0, 2), np.int64)
    r = ratio * ratio if squared else ratio
    i = np.arange(dist.shape[0])
    fwd = dist.argmin(axis=1)
    keep = _ratio_pass(*_two_smallest(dist, axis=1), r)
    if mutual:
        keep &= _ratio_pass(*_two_smallest(dist, axis=0), r)[fwd] & _is_column_argmin(dist, i, fwd)
    return np.stack([i[keep], fwd[keep]], axis=1).astype(np.int64)


# ----------------------------------------------------------------------------- matchers


class SparseMatcher(ABC):
    """Matches two sets of :class:`LocalFeatures`."""

    name: ClassVar[str] = ""
    dense: ClassVar[bool] = False

    def check_extractor(self, extractor: Any) -> None:
        """Raise ValueError if this matcher cannot match ``extractor``'s features."""
        del extractor  # nearest-neighbour matchers match any descriptor type

    @abstractmethod
    def match(self, f0: LocalFeatures, f1: LocalFeatures) -> MatchResult:
        """Match image 0's features to image 1's.

        Args:
            f0: image 0's features (N0 keypoints).
            f1: image 1's features (N1 keypoints).

        Returns:
            Index pairs (M, 2) and scores (M,).
        """

    def correspondences(self, f0: LocalFeatures, f1: LocalFeatures) -> Correspondences:
        """Match and return point pairs (original frames)."""
        return Correspondences.from_matches(f0, f1, self.match(f0, f1))

    def config(self) -> dict[str, Any]:
        """The matcher's parameters (for reports)."""
        return {"name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


def _nn_result(f0: LocalFeatures, f1: LocalFeatures, pairs_fn: Any) -> MatchResult:
    """Run ``pairs_fn(distances, squared)`` on the descriptors; scores are -distance."""
    # Float descriptors are matched on squared distances (same neighbours, no sqrt of
    # the whole matrix); only the kept pairs' distances are rooted for the scores.
    squared = not (f0.binary or f1.binary)
    dist = descriptor_distances(f0.descriptors, f1.descriptors, squared=squared)
    pairs = pairs_fn(dist, squared)
    d = dist[pairs[:, 0], pairs[:, 1]].astype(np.float32)
    return MatchResult(pairs, -(np.sqrt(d) if squared else d))


@MATCHERS.register("mnn", dense=False, learned=False, description="mutual nearest neighbours (L2 / Hamming)")
class MNNMatcher(SparseMatcher):
    """Mutual nearest neighbour matching (Euclidean or Hamming by descriptor type).

    Args:
        max_distance: optional distance threshold (none by default; hloc's NN-superpoint
            uses 0.7 on unit descriptors).
    """

    name = "mnn"

    def __init__(self, max_distance: float | None = None) -> None:
        self.max_distance = max_distance

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "max_distance": self.max_distance}

    def match(self, f0: LocalFeatures, f1: LocalFeatures) -> MatchResult:
        def pairs(dist: np.ndarray, squared: bool) -> np.ndarray:
            limit = self.max_distance
            if limit is not None and squared:
                limit = limit * limit
            return mutual_nearest_neighbours(dist, limit)

        return _nn_result(f0, f1, pairs)


@MATCHERS.register("ratio", dense=False, learned=False, description="Lowe's ratio test 0.8 + mutual check")
class RatioMatcher(SparseMatcher):
    """Lowe's ratio test (default 0.8, with the mutual check: hloc's NN-ratio).

    Args:
        ratio: the ratio threshold.
        mutual: also require the pair to pass in the other direction.
    """

    name = "ratio"

    def __init__(self, ratio: float = 0.8, mutual: bool = True) -> None:
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {ratio}")
        self.ratio = float(ratio)
        self.mutual = bool(mutual)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "ratio": self.ratio, "mutual": self.mutual}

    def match(self, f0: LocalFeatures, f1: LocalFeatures) -> MatchResult:
        return _nn_result(f0, f1, lambda d, sq: ratio_test(d, self.ratio, self.mutual, squared=sq))


def _lightglue_urls(features: str) -> list[str]:
    from kornia.core.download import hf_url
    from kornia.feature import LightGlue

    name = features.replace("-", "_")
    return [hf_url("lightglue", f"{name}_lightglue.pth"), LightGlue.url.format(LightGlue.version, name)]


@MATCHERS.register("lightglue", dense=False, learned=True, description="LightGlue via kornia (weights)")
class LightGlueMatcher(SparseMatcher):
    """LightGlue (Lindenberger et al., 2023) through ``kornia.feature.LightGlue``.

    Adaptive depth and width are disabled and the filter threshold is 0.1, as
    vismatch's wrappers (PROTOCOLS 6.1).

    Args:
        features: the LightGlue configuration (``"disk"``, ``"aliked"``, ``"sift"`` for
            RootSIFT, ...); set from the extractor when built from a spec.
        weights: a LightGlue checkpoint file (e.g. ``disk_lightglue.pth`` from the
            cvg/LightGlue release). ``None`` uses the published file through kornia.
        filter_threshold: minimum match probability.
        download: allow kornia to download the published file on a cache miss.
        device: torch device.

    Raises:
        WeightsUnavailableError: no file and the published weights cannot be loaded.
    """

    name = "lightglue"

    def __init__(
        self,
        features: str = "disk",
        weights: str | os.PathLike[str] | None = None,
        filter_threshold: float = 0.1,
        download: bool = True,
        device: str = "cpu",
    ) -> None:
        from kornia.feature import LightGlue

        if features not in LightGlue.features:
            raise ValueError(f"unknown LightGlue features {features!r}; known: {sorted(LightGlue.features)}")
        self.features = features
        self.weights = None if weights is None else os.fspath(weights)
        self.filter_threshold = float(filter_threshold)
        self.device = str(device)
        conf = {"depth_confidence": -1, "width_confidence": -1, "filter_threshold": self.filter_threshold}
        if self.weights is not None:
            arch = {k: v for k, v in LightGlue.features[features].items() if k != "weights"}
            # features=None builds the architecture without fetching weights (kornia's
            # annotation says str, its docstring documents None).
            model = LightGlue(None, **{**conf, **arch})  # type: ignore[arg-type]
            model.load_state_dict(_lightglue_state_dict(load_weights_file(self.weights, "LightGlue"), model))
        else:
            model = pretrained_or_error(
                f"LightGlue ({features!r})",
                lambda: LightGlue(features, **conf),
                _lightglue_urls(features),
                download=download,
                option_hint=f"LightGlueMatcher(weights='/path/to/{features}_lightglue.pth') "
                "(in a re-ranker spec: matcher_options={'weights': ...})",
            )
        self.model = model.to(self.device).eval()
        self._weights_id = file_digest(self.weights) if self.weights else None

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "features": self.features,
            "weights": self._weights_id or "kornia",
            "filter_threshold": self.filter_threshold,
        }

    def check_extractor(self, extractor: Any) -> None:
        lg = getattr(extractor, "lightglue_features", None)
        if lg != self.features:
            raise ValueError(
                f"LightGlue configured for {self.features!r} features cannot match {extractor.name!r} features"
                + (
                    f" (use features={lg!r})"
                    if lg
                    else " (LightGlue has models for disk, aliked and rootsift here)"
                )
            )

    def match(self, f0: LocalFeatures, f1: LocalFeatures) -> MatchResult:
        import torch

        if len(f0) == 0 or len(f1) == 0:
            return MatchResult(np.zeros((0, 2), np.int64), np.zeros(0, np.float32))

        def side(f: LocalFeatures) -> dict[str, Any]:
            # LightGlue normalises keypoints by the image size; the working frame is the
            # one the detector (and LightGlue's training) saw, which also fixes the scales.
            k = torch.from_numpy(to_working(f.keypoints, f.scale))[None].to(self.device)
            mean_scale = float(np.sqrt(f.scale[0] * f.scale[1]))
            return {
                "keypoints": k,
                "descriptors": torch.from_numpy(np.asarray(f.descriptors, np.float32))[None].to(self.device),
                "image_size": torch.tensor([f.working_size], dtype=torch.float32, device=self.device),
                "scales": torch.from_numpy(f.scales * mean_scale)[None].to(self.device),
                "oris": torch.from_numpy(f.oris)[None].to(self.device),
            }

        with torch.inference_mode():
            out = self.model({"image0": side(f0), "image1": side(f1)})
        matches = out["matches"][0].cpu().numpy().astype(np.int64).reshape(-1, 2)
        scores = out["scores"][0].float().cpu().numpy().astype(np.float32)
        return MatchResult(matches, scores)


def _lightglue_state_dict(state: dict[str, Any], model: Any) -> dict[str, Any]:
    """Rename a reference LightGlue checkpoint's keys to kornia's module names.

    kornia applies these renames only to the checkpoints it downloads itself; a file
    from the cvg/LightGlue release given by the user needs the same.
    """
    prefix = "matcher."
    state = {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}
    for i in range(model.conf.n_layers):
        for old, new in (
            (f"self_attn.{i}", f"transformers.{i}.self_attn"),
            (f"cross_attn.{i}", f"transformers.{i}.cross_attn"),
        ):
            state = {k.replace(old, new): v for k, v in state.items()}
    return state


class DenseMatcher(ABC):
    """Detector-free matching of two images (no extractor, no cache)."""

    name: ClassVar[str] = ""
    dense: ClassVar[bool] = True

    @abstractmethod
    def match_images(self, image0: np.ndarray, image1: np.ndarray) -> Correspondences:
        """Match two RGB images.

        Args:
            image0: (H0, W0, 3) uint8 RGB.
            image1: (H1, W1, 3) uint8 RGB.

        Returns:
            Point pairs in the original frames.
        """

    def config(self) -> dict[str, Any]:
        return {"name": self.name}


@MATCHERS.register("loftr", dense=True, learned=True, description="LoFTR via kornia, detector-free (weights)")
class LoFTRMatcher(DenseMatcher):
    """LoFTR (Sun et al., 2021) through ``kornia.feature.LoFTR``.

    Args:
        weights: a LoFTR checkpoint file (e.g. ``loftr_outdoor.ckpt``). ``None`` uses
            kornia's published ``pretrained`` checkpoint.
        pretrained: ``"outdoor"`` (default), ``"indoor"`` or ``"indoor_new"``.
        resize: the matching resolution rule (default 640, longer side); both sides
            are then rounded down to a multiple of 8, LoFTR's coarse stride.
        download: allow kornia to download the published file on a cache miss.
        device: torch device.

    Raises:
        WeightsUnavailableError: no file and the published weights cannot be loaded.
    """

    name = "loftr"

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        pretrained: str = "outdoor",
        resize: Resize = 640,
        download: bool = True,
        device: str = "cpu",
    ) -> None:
        from kornia.feature import LoFTR
        from kornia.feature.loftr.loftr import urls

        if pretrained not in urls:
            raise ValueError(f"unknown LoFTR checkpoint {pretrained!r}; known: {sorted(urls)}")
        self.weights = None if weights is None else os.fspath(weights)
        self.pretrained = pretrained
        self.resize = check_resize(resize)
        self.device = str(device)
        if self.weights is not None:
            model = LoFTR(pretrained=None)
            model.load_state_dict(load_weights_file(self.weights, "LoFTR", keys=("state_dict",)))
        else:
            published = urls[pretrained]
            model = pretrained_or_error(
                f"LoFTR ({pretrained!r})",
                lambda: LoFTR(pretrained=pretrained),
                [published] if isinstance(published, str) else list(published),
                download=download,
                option_hint="LoFTRMatcher(weights='/path/to/loftr_outdoor.ckpt') "
                "(in a re-ranker spec: matcher_options={'weights': ...})",
            )
        self.model = model.to(self.device).eval()

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pretrained": self.pretrained,
            "resize": self.resize,
            "weights": self.weights,
        }

    def _prepare(self, image: np.ndarray) -> tuple[Any, tuple[float, float], tuple[int, int]]:
        import cv2
        import torch

        rgb = as_rgb(image)
        h, w = rgb.shape[:2]
        ww, wh = working_size((w, h), self.resize)
        ww, wh = max(8, ww - ww % 8), max(8, wh - wh % 8)
        grey = cv2.cvtColor(cv2.resize(rgb, (ww, wh), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        t = torch.from_numpy(grey).float().div(255.0)[None, None].to(self.device)
        return t, (ww / w, wh / h), (ww, wh)

    def match_images(self, image0: np.ndarray, image1: np.ndarray) -> Correspondences:
        import torch

        from vgloc.rerank._image import to_original

        t0, s0, ws0 = self._prepare(image0)
        t1, s1, ws1 = self._prepare(image1)
        with torch.inference_mode():
            out = self.model({"image0": t0, "image1": t1})
        k0 = out["keypoints0"].cpu().numpy().astype(np.float32)
        k1 = out["keypoints1"].cpu().numpy().astype(np.float32)
        return Correspondences(
            points0=to_original(k0, s0),
            points1=to_original(k1, s1),
            scores=out["confidence"].float().cpu().numpy().astype(np.float32),
            scale0=s0,
            scale1=s1,
            working_size0=ws0,
            working_size1=ws1,
            num_keypoints0=len(k0),
        )


def create_matcher(name: str, **options: Any) -> SparseMatcher | DenseMatcher:
    """Build a registered matcher by name (``mnn``, ``ratio``, ``lightglue``, ``loftr``).

    Raises:
        UnknownNameError: unknown name (the message lists close matches).
    """
    return MATCHERS.get(name)(**options)
