"""Build an index of a geotagged collection, and locate photos against it.

:class:`Localizer` loads the index, its describer, an optional re-ranker and the
position predictor once, then locates any number of photos (file paths, PIL images,
numpy arrays or encoded bytes). :func:`vgloc.locate` and ``vgloc locate`` are thin
wrappers over it, and the HTTP service holds one per process.

Example:
    >>> from vgloc import Localizer
    >>> with Localizer.load("city.idx", method="kde") as localizer:
    ...     [pred] = localizer.locate(["query.jpg"])
    ...     pred.lat, pred.lon, pred.confidence
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vgloc.describers import Describer, ExtractionOptions, describer_for_index
from vgloc.describers.multiscale import apply_scales

# Building an index lives in vgloc.indexing; its names stay importable from here (the
# module that held them before the split).
from vgloc.indexing import (
    DescribedDatabase,
    add_to_index,
    build_index,
    default_search_params,
    describe_database,
)
from vgloc.predict import DEFAULT_KDE, METHODS, KDEParams, Match, Prediction, kde_params_for

if TYPE_CHECKING:
    from vgloc.data.images import ImageInput
    from vgloc.index import GeoIndex
    from vgloc.rerank.cache import FeatureCache

__all__ = [
    "DescribedDatabase",
    "Localizer",
    "add_to_index",
    "build_index",
    "check_photo_files",
    "default_search_params",
    "describe_database",
]

log = logging.getLogger(__name__)


def check_photo_files(photos: Sequence[ImageInput]) -> list[Path]:
    """Check that every photo given as a path exists and decodes; returns those paths.

    Raises:
        FileNotFoundError: naming every missing file.
        DataError: naming every file that cannot be decoded.
    """
    from vgloc.data.images import is_path_input

    paths = [Path(p) for p in photos if is_path_input(p)]  # type: ignore[arg-type]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"photo(s) not found: {', '.join(missing)}")
    if paths:
        from vgloc.data.validation import validate_images

        validate_images(paths, progress=False)
    return paths


class Localizer:
    """An index, its describer, an optional re-ranker and a predictor, loaded once.

    Args:
        index: a loaded :class:`~vgloc.index.GeoIndex`.
        describer: describes the query photos (must match the index's spec and dimension).
        method: the position predictor: ``"nearest"`` or ``"kde"``.
        kde: kernel parameters of ``kde`` (and of the confidence of both).
        top_k: matches reported per photo.
        search_params: FAISS search parameters, e.g. ``"nprobe=32"``.
        options: extraction options (default: the index's image size, no progress bars).
        reranker: a re-ranker (see :func:`vgloc.rerank.resolve_reranker`), or None. It reads
            query photos from files (its feature cache is keyed by path): in-memory photos are
            written losslessly to a private temporary folder for the duration of the call.
        rerank_k: candidates re-ranked per photo (clipped to the database).
        rerank_fusion: None (inliers alone), ``"zscore"`` or ``"linear"``.

    Locating is thread-safe: calls are serialised on the model (one forward pass at a
    time), which is what a CPU with few cores wants anyway.
    """

    def __init__(
        self,
        index: GeoIndex,
        describer: Describer,
        *,
        method: str = "nearest",
        kde: KDEParams = DEFAULT_KDE,
        top_k: int = 5,
        search_params: str | None = None,
        options: ExtractionOptions | None = None,
        reranker: Any = None,
        rerank_k: int = 100,
        rerank_fusion: str | None = None,
    ) -> None:
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if method not in METHODS:
            raise ValueError(f"unknown prediction method {method!r}; choose one of {', '.join(METHODS)}")
        index.check_model(describer.spec, describer.descriptor_dim)
        self.index = index
        # Queries are described as the database was: its size, and int8 where it was built in int8.
        recorded = index.metadata.extra.get("precision")
        self.options = options or ExtractionOptions(
            image_size=index.metadata.image_size,
            precision="int8" if recorded == "int8" else "auto",
            progress=False,
        )
        # The index's scales (multi-scale testing); scales given in options must agree.
        self.describer = apply_scales(describer, self.options, index)
        self.method = method
        # kde on a world-wide index left at the city defaults: k=100, m=10, sigma 4 km (WORLD_KDE)
        self.kde = kde_params_for(kde, index.images)
        self.top_k = int(top_k)
        self.search_params = search_params
        self.reranker = reranker
        self.rerank_k = int(rerank_k)
        self.rerank_fusion = rerank_fusion
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        index: str | Path | GeoIndex,
        *,
        model: Any = None,
        checkpoint: str | Path | None = None,
        rerank: Any = None,
        rerank_k: int = 100,
        rerank_cache: str | Path | FeatureCache | None = None,
        rerank_fusion: str | None = None,
        **kwargs: Any,
    ) -> Localizer:
        """Open an index with the describer it recorded (or ``model``/``checkpoint``).

        Args:
            index: an index directory (from :func:`build_index`) or a loaded index.
            model, checkpoint: override the recorded network (must match its spec).
            rerank: a local re-ranker spec (``rootsift+mnn+ransac``, ...).
            rerank_k, rerank_fusion: see the class.
            rerank_cache: an HDF5 local-feature cache (path or ``FeatureCache``) so
                database features are extracted once, not per call.
            **kwargs: the other arguments of the class (``method``, ``kde``, ``top_k``...).

        Everything is checked before the network is loaded.
        """
        from vgloc.index import GeoIndex

        if rerank is not None or rerank_cache is not None or rerank_fusion is not None:
            from vgloc.rerank import check_rerank_options

            check_rerank_options(rerank, rerank_k, rerank_cache, rerank_fusion, None)
        idx = index if isinstance(index, GeoIndex) else GeoIndex.load(index)
        describer = describer_for_index(idx, model, checkpoint)
        reranker = None
        if rerank is not None:
            from vgloc.rerank import resolve_reranker

            reranker = resolve_reranker(rerank, cache=rerank_cache)
        return cls(
            idx, describer, reranker=reranker, rerank_k=rerank_k, rerank_fusion=rerank_fusion, **kwargs
        )

    # -- locating ---------------------------------------------------------------------
    def locate(self, photos: Sequence[ImageInput]) -> list[Prediction]:
        """Predict the GPS position of each photo.

        Args:
            photos: N query photos: file paths, PIL images, ``(H, W, 3)`` uint8 arrays or
                encoded image bytes (all are checked before any is described).

        Returns:
            N :class:`~vgloc.predict.Prediction`, in order; each has ``top_k`` matches.
        """
        from vgloc.data.images import describe_input

        items = list(photos)
        if not items:
            return []
        names = [describe_input(p, i) for i, p in enumerate(items)]
        check_photo_files(items)
        with self._lock:
            descriptors = self.describer.describe(items, self.options, queries=True)
            if self.reranker is None:
                return self._predict(names, descriptors, None)
            with _query_files(items) as query_paths:
                return self._predict(names, descriptors, query_paths)

    def locate_one(self, photo: ImageInput) -> Prediction:
        """:meth:`locate` for a single photo."""
        return self.locate([photo])[0]

    @property
    def search_k(self) -> int:
        """Neighbours a query needs: ``top_k`` matches, and ``kde.k`` for the density and confidence."""
        return max(self.top_k, self.kde.k)

    def _predict(
        self, names: list[str], descriptors: np.ndarray, query_paths: list[Path] | None
    ) -> list[Prediction]:
        k = self.search_k
        if self.reranker is not None:
            k = max(k, self.rerank_k)
        sims, ids = self.index.search(descriptors, k, self.search_params, device=self.options.device)
        db = self.index.images
        inliers = None
        if self.reranker is not None and query_paths is not None:
            from vgloc.rerank import score_candidates

            reordered = score_candidates(
                query_paths, db.paths, ids, sims, self.reranker, k=self.rerank_k, fusion=self.rerank_fusion
            ).rerank()
            assert reordered.similarities is not None  # similarities were passed in
            ids, sims, inliers = reordered.predictions, reordered.similarities, reordered.inliers
        return self.predictions_from(names, sims, ids, inliers)

    def predictions_from(
        self, names: list[str], sims: np.ndarray, ids: np.ndarray, inliers: np.ndarray | None = None
    ) -> list[Prediction]:
        """Positions, confidences and ``top_k`` matches from ranked lists of this index's images.

        Args:
            names: Q query names.
            sims, ids: (Q, K) similarities and image indices, best first (-1 = empty);
                from this index's search, a re-ranking or an ensemble's fusion.
            inliers: (Q, K) verified inliers (-1 = not verified), or None.

        Returns:
            Q :class:`~vgloc.predict.Prediction`.
        """
        from dataclasses import asdict

        from vgloc.predict import estimate_positions

        db = self.index.images
        # Planar (one UTM zone) databases are predicted in UTM metres as the field does;
        # world-wide ones on the sphere, in local east-north-up metres.
        est = estimate_positions(sims, ids, db, self.method, **asdict(self.kde))
        predictions = []
        for q, name in enumerate(names):
            matches = [
                Match(
                    rank=r + 1,
                    index=int(i),
                    path=str(db.paths[i]),
                    lat=float(db.latlon[i, 0]),
                    lon=float(db.latlon[i, 1]),
                    utm_east=float(db.utm[i, 0]),
                    utm_north=float(db.utm[i, 1]),
                    similarity=float(sims[q, r]),
                    inliers=None if inliers is None or inliers[q, r] < 0 else int(inliers[q, r]),
                )
                for r, i in enumerate(ids[q][: self.top_k])
                if i >= 0
            ]
            predictions.append(
                Prediction(
                    query=name,
                    lat=float(est.latlon[q, 0]),
                    lon=float(est.latlon[q, 1]),
                    utm_east=float(est.utm[q, 0]),
                    utm_north=float(est.utm[q, 1]),
                    confidence=float(est.confidence[q]),
                    method=self.method,
                    matches=matches,
                )
            )
        return predictions

    # -- lifetime ---------------------------------------------------------------------
    def close(self) -> None:
        """Release the re-ranker (its feature cache) and the describer."""
        if self.reranker is not None:
            self.reranker.close()
        self.describer.close()

    def __enter__(self) -> Localizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Localizer({self.describer.spec!r}, {len(self.index.images)} images, method={self.method!r}"
            + (f", rerank={self.reranker.spec!s}" if self.reranker is not None else "")
            + ")"
        )


@contextlib.contextmanager
def _query_files(photos: Sequence[ImageInput]) -> Iterator[list[Path]]:
    """File paths for ``photos``: paths as given, in-memory photos written as lossless PNG.

    Re-rankers read and cache local features by file path, so a photo that never
    touched the disk (an upload, an array) is decoded once (EXIF orientation applied)
    and written to a private temporary folder that is removed afterwards.
    """
    from vgloc.data.images import describe_input, is_path_input, open_image_input

    if all(is_path_input(p) for p in photos):
        yield [Path(p) for p in photos]  # type: ignore[arg-type]
        return
    with tempfile.TemporaryDirectory(prefix="vgloc-queries-") as folder:
        paths = []
        for i, photo in enumerate(photos):
            if is_path_input(photo):
                paths.append(Path(photo))  # type: ignore[arg-type]
                continue
            path = Path(folder) / f"query-{i:06d}.png"
            open_image_input(photo, name=describe_input(photo, i)).save(path, format="PNG")
            paths.append(path)
        yield paths
