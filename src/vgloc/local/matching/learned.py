"""Learned matchers through kornia: LightGlue (sparse) and LoFTR (dense, detector-free).

Both need weights: a file given with ``weights=``, or the published ones through
kornia's cache (downloaded on a miss when ``download=True``); otherwise they raise
:class:`~vgloc.local.WeightsUnavailableError`. torch and kornia are imported when a
matcher is built.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from vgloc.local.features import LocalFeatures
from vgloc.local.image import Resize, as_rgb, check_resize, to_original, to_working, working_size
from vgloc.local.matching.base import MATCHERS, Correspondences, DenseMatcher, MatchResult, SparseMatcher
from vgloc.local.weights import file_digest, load_weights_file, pretrained_or_error

__all__ = ["LightGlueMatcher", "LoFTRMatcher"]


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
