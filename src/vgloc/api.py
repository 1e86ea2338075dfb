"""The public Python API in one place: build an index, locate photos, evaluate.

Each name lives in the module that owns it (:mod:`vgloc.localizer`,
:mod:`vgloc.evaluation`, :mod:`vgloc.describers`); this module gathers them for
callers that prefer ``from vgloc.api import ...``. :func:`locate` is the one
function defined here: a thin wrapper that loads a :class:`~vgloc.localizer.Localizer`
once and locates every photo with it.

Example:
    >>> import vgloc
    >>> index = vgloc.build_index("photos/", "resnet18+gem+fc512", out="city.idx")
    >>> [pred] = vgloc.locate(["query.jpg"], "city.idx")
    >>> pred.lat, pred.lon, pred.confidence
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vgloc.describers import DEFAULT_IMAGE_SIZE, Describer, ExtractionOptions, resolve_describer
from vgloc.ensemble import locate_ensemble
from vgloc.evaluation import DomainResult, EvalResult, RerankedDomain, evaluate, evaluate_ensemble
from vgloc.indexing import build_index
from vgloc.localizer import Localizer, check_photo_files
from vgloc.predict import DEFAULT_KDE, KDEParams, Prediction

if TYPE_CHECKING:
    from vgloc.data.images import ImageInput
    from vgloc.index import GeoIndex
    from vgloc.local import FeatureCache

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "DomainResult",
    "EvalResult",
    "ExtractionOptions",
    "Localizer",
    "RerankedDomain",
    "build_index",
    "compute_descriptors",
    "evaluate",
    "evaluate_ensemble",
    "locate",
    "locate_ensemble",
]


def locate(
    photos: Sequence[ImageInput],
    index: str | Path | GeoIndex,
    *,
    model: Any = None,
    checkpoint: str | Path | None = None,
    top_k: int = 5,
    method: str = "nearest",
    kde: KDEParams = DEFAULT_KDE,
    search_params: str | None = None,
    options: ExtractionOptions | None = None,
    rerank: str | None = None,
    rerank_k: int = 100,
    rerank_cache: str | Path | FeatureCache | None = None,
    rerank_fusion: str | None = None,
) -> list[Prediction]:
    """Predict the GPS position of each photo by retrieval against an index.

    A convenience over :class:`~vgloc.localizer.Localizer`: it loads the index and its
    describer for this call. To locate photos in many calls, keep a ``Localizer``.

    Args:
        photos: query photos: file paths, PIL images, ``(H, W, 3)`` uint8 arrays or
            encoded image bytes.
        index: an index directory (from :func:`build_index`) or a loaded index.
        model, checkpoint: override the network recorded in the index (must match its spec).
        top_k: matches to report per photo.
        method: ``"nearest"`` (default) or ``"kde"`` (kNN kernel density).
        kde: kernel parameters (k neighbours, exponent m, sigma in metres).
        search_params: FAISS search parameters, e.g. ``"nprobe=32"``.
        options: extraction options; by default the index's image size is used.
        rerank: a local re-ranker spec (``rootsift+mnn+ransac``, ...): each photo's top
            ``rerank_k`` candidates are re-ordered by geometric verification before the
            position is predicted; each re-ranked match carries its ``inliers``.
        rerank_k: how many candidates to re-rank (default 100; clipped to the database).
        rerank_cache: an HDF5 local-feature cache (path or ``FeatureCache``).
        rerank_fusion: None (inliers alone), ``"zscore"`` or ``"linear"``.

    Returns:
        One :class:`~vgloc.predict.Prediction` per photo, in order.
    """
    # Photos are checked first, then the settings by the Localizer, before anything heavy loads.
    check_photo_files(photos)
    with Localizer.load(
        index,
        model=model,
        checkpoint=checkpoint,
        rerank=rerank,
        rerank_k=rerank_k,
        rerank_cache=rerank_cache,
        rerank_fusion=rerank_fusion,
        method=method,
        kde=kde,
        top_k=top_k,
        search_params=search_params,
        options=options,
    ) as localizer:
        return localizer.locate(photos)


def compute_descriptors(
    model: Any,
    images: Sequence[ImageInput],
    options: ExtractionOptions,
    *,
    queries: bool = False,
    out_dtype: Any = np.float32,
) -> np.ndarray:
    """Descriptors of images with any describer (or a spec / network it resolves to).

    Args:
        model: a :class:`~vgloc.describers.Describer`, a spec string or a network.
        images: N images (paths or in-memory images).
        options: extraction options; ``options.brightness`` applies only when ``queries``.
        queries: whether these are query images.
        out_dtype: numpy dtype of the result (float32 or float16).

    Returns:
        (N, D) L2-normalised descriptors.
    """
    describer: Describer = resolve_describer(model)
    return describer.describe(list(images), options, queries=queries).astype(out_dtype)
