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
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from vgloc.describers import Describer, ExtractionOptions, describer_for_index, resolve_describer
from vgloc.describers.base import IndexState
from vgloc.predict import DEFAULT_KDE, METHODS, KDEParams, Match, Prediction, kde_params_for

if TYPE_CHECKING:
    from vgloc.data.images import ImageInput
    from vgloc.data.records import GeoImageSet
    from vgloc.index import GeoIndex
    from vgloc.rerank.cache import FeatureCache

__all__ = [
    "DescribedDatabase",
    "Localizer",
    "build_index",
    "check_photo_files",
    "default_search_params",
    "describe_database",
]

log = logging.getLogger(__name__)


def default_search_params(factory: str, search_params: str | None) -> str:
    """The search parameters stored with an index: the user's, else FAISS defaults that apply."""
    from vgloc.index.faiss_index import DEFAULT_SEARCH_PARAMS

    if search_params is not None:
        return search_params
    # An exact index has no search parameters; don't store ones that would only be ignored.
    return "" if factory.strip().lower() == "flat" else DEFAULT_SEARCH_PARAMS


def _as_image_set(images: str | Path | GeoImageSet, validate: bool) -> GeoImageSet:
    from vgloc.data import GeoImageSet, load_image_set

    if isinstance(images, GeoImageSet):
        return images
    return load_image_set(images, validate=validate)


def build_index(
    images: str | Path | GeoImageSet,
    model: Any,
    out: str | Path | None = None,
    *,
    checkpoint: str | Path | None = None,
    pretrained: bool = False,
    factory: str = "auto",
    search_params: str | None = None,
    options: ExtractionOptions | None = None,
    descriptor_dtype: str = "float32",
    validate: bool = True,
    seed: int = 0,
    pca: int | None = None,
    pca_whiten: bool = True,
) -> GeoIndex:
    """Describe every image of a geotagged collection and index the descriptors.

    Args:
        images: a folder (``@UTM@`` file names or EXIF GPS photos), a CSV/Parquet
            manifest, or a :class:`~vgloc.data.GeoImageSet`.
        model: a model spec string, a :class:`~vgloc.describers.Describer` or a network.
        out: the index directory to write (atomically); None keeps it in memory only.
        checkpoint: weights for the model (vgloc or authors' format).
        pretrained: ImageNet backbone weights (network or cache).
        factory: FAISS factory string (``"Flat"``, ``"IVF4096,PQ32"``, ``"HNSW32"``), or
            ``"auto"`` (default): exact ``Flat`` up to
            :data:`vgloc.index.AUTO_EXACT_MAX` images, a compact IVF-PQ index with
            re-ranking above (:func:`vgloc.index.choose_index`; the choice is logged
            and stored in the index metadata).
        search_params: default FAISS search parameters stored with the index
            (``"nprobe=16"``); None: the automatic choice's, or FAISS defaults.
        options: extraction options.
        descriptor_dtype: ``"float32"`` or ``"float16"`` for the stored descriptors.
        validate: open every image up front and report all unreadable ones at once.
        seed: seeds random initialisation (weights, k-means), so a run can be repeated.
        pca: reduce descriptors to this many dimensions by PCA-whitening fitted on the
            database (stored in the index, applied to queries by the index's search);
            None keeps them whole (see :mod:`vgloc.index.pca`); ``pca_whiten=False``
            projects without whitening.

    Returns:
        The :class:`vgloc.index.GeoIndex`; its ``model`` is the describer.
    """
    from vgloc.index import GeoIndex

    options = options or ExtractionOptions()
    if descriptor_dtype not in ("float32", "float16"):
        raise ValueError(f"descriptor dtype must be float32 or float16, got {descriptor_dtype!r}")
    image_set = _as_image_set(images, validate)
    if len(image_set) == 0:
        raise ValueError("no database images to index")
    described = describe_database(
        image_set,
        model,
        checkpoint=checkpoint,
        pretrained=pretrained,
        factory=factory,
        options=options,
        seed=seed,
        pca=pca,
    )
    describer, state = described.describer, described.state
    auto = factory.strip().lower() == "auto"
    index = GeoIndex.build(
        described.descriptors.astype(np.float32),
        image_set,
        model_spec=describer.spec,
        image_size=described.options.image_size,
        factory=factory,
        search_params=search_params if auto else default_search_params(factory, search_params),
        descriptor_dtype=descriptor_dtype,
        extra=described.extra,
        seed=seed,
        pca=pca,
        pca_whiten=pca_whiten,
    )
    index.model = describer
    if out is not None:
        index.save(out, extra_files=state.files)
        log.info("wrote index of %d images to %s", len(image_set), out)
    return index


class DescribedDatabase(NamedTuple):
    """What :func:`describe_database` returns.

    Attributes:
        describer: the resolved, prepared describer.
        descriptors: (M, D) descriptors of the rows described.
        extra: the index metadata's ``extra`` (precision, seed, describer facts).
        state: the describer's index state (metadata and files to keep with the index).
        options: the extraction options used (image size resolved).
    """

    describer: Describer
    descriptors: np.ndarray
    extra: dict[str, Any]
    state: IndexState
    options: ExtractionOptions


def describe_database(
    image_set: GeoImageSet,
    model: Any,
    *,
    checkpoint: str | Path | None = None,
    pretrained: bool = False,
    factory: str = "auto",
    options: ExtractionOptions,
    seed: int = 0,
    pca: int | None = None,
    rows: tuple[int, int] | None = None,
) -> DescribedDatabase:
    """Describe a database (or rows ``[start, stop)`` of it) the way :func:`build_index` does.

    The describer is resolved and prepared on the *whole* database (same seed, so every
    shard of a distributed build gets the same network); only ``rows`` are described.

    Returns:
        A :class:`DescribedDatabase`: descriptors (M, D) with ``M = stop - start`` (all
        images when ``rows`` is None), and what the index records with them.
    """
    import torch

    from vgloc.evaluation.checks import check_factory
    from vgloc.index.pca import check_pca

    torch.manual_seed(seed)
    describer = resolve_describer(model, checkpoint, pretrained=pretrained)
    options = describer.resolve_options(options)  # "auto" size -> the model's own (recorded below)
    # A factory that cannot index D-dimensional vectors fails now, not after describing.
    auto = factory.strip().lower() == "auto"
    if pca is not None:
        check_pca(pca, describer.descriptor_dim, len(image_set))
    if not auto:  # with PCA the factory indexes the reduced vectors
        check_factory(pca or describer.descriptor_dim, factory)
    initialized = describer.prepare(image_set.paths, options, seed)
    start, stop = rows if rows is not None else (0, len(image_set))
    paths = image_set.paths[start:stop]
    t0 = time.perf_counter()
    descriptors = describer.describe(paths, options) if paths else np.zeros((0, describer.descriptor_dim))
    elapsed = max(time.perf_counter() - t0, 1e-9)
    log.info("described %d images in %.1f s (%.1f img/s)", len(paths), elapsed, len(paths) / elapsed)
    state = describer.index_state()
    extra: dict[str, Any] = {
        "precision": options.precision,
        "pretrained": pretrained,
        "seed": seed,
        "aggregator_initialized_from_database": initialized,
        "describer": state.metadata,
    }
    # Kept at the top level too, for readers of indexes written by earlier versions.
    extra.update({k: v for k, v in state.metadata.items() if k != "kind"})
    return DescribedDatabase(describer, descriptors, extra, state, options)


def add_to_index(
    index: str | Path,
    images: str | Path | GeoImageSet,
    *,
    model: Any = None,
    checkpoint: str | Path | None = None,
    options: ExtractionOptions | None = None,
    validate: bool = True,
) -> tuple[GeoIndex, int]:
    """Describe the images not yet in an index and append them, atomically.

    Images already indexed (same resolved path) are skipped; the others are described
    with the index's own describer (the one it recorded; ``model``/``checkpoint``, when
    given, must be that describer: same spec and dimension, and the same checkpoint
    file when the index recorded one) at the index's image size, added to the FAISS
    index without retraining, and the index directory is rewritten as a new folder
    renamed over the old one.

    Args:
        index: the index directory (from :func:`build_index`).
        images: a folder, a CSV/Parquet manifest or a :class:`~vgloc.data.GeoImageSet`.
        model, checkpoint: the describer, to check against the index's (default: the index's).
        options: extraction options; ``image_size`` is always the index's.
        validate: open every new image up front.

    Returns:
        ``(the updated GeoIndex, number of images added)``.

    Raises:
        IndexMismatchError: a describer other than the index's.
    """
    import dataclasses

    from vgloc.index import GeoIndex, IndexMismatchError
    from vgloc.index.append import append_to_geoindex, carried_files, new_image_rows

    root = Path(index)
    idx = GeoIndex.load(root)
    recorded = idx.metadata.extra.get("describer") or {}
    if checkpoint is not None:
        from vgloc.describers.net import sha256_file

        want = recorded.get("checkpoint_sha256") if isinstance(recorded, dict) else None
        if want is None or sha256_file(Path(checkpoint)) != want:
            raise IndexMismatchError(
                f"{root}: the index was not described with checkpoint {checkpoint} "
                f"(it records {recorded.get('checkpoint', 'weights stored with the index') if isinstance(recorded, dict) else 'no checkpoint'}); "
                "add images with the index's own describer (leave out --model/--checkpoint) or rebuild the index"
            )
    describer = describer_for_index(idx, model, checkpoint)
    image_set = _as_image_set(images, validate)
    rows = new_image_rows(idx, image_set)
    skipped = len(image_set) - len(rows)
    if len(rows) == 0:
        log.info("all %d images are already in %s; nothing to add", len(image_set), root)
        return idx, 0
    new = image_set.subset(rows)
    options = dataclasses.replace(options or ExtractionOptions(), image_size=idx.metadata.image_size)
    t0 = time.perf_counter()
    descriptors = describer.describe(new.paths, options)
    log.info(
        "described %d new images in %.1f s (%d already indexed)", len(new), time.perf_counter() - t0, skipped
    )
    updated = append_to_geoindex(idx, descriptors.astype(np.float32), new)
    updated.model = describer
    files = carried_files(root, idx)
    staged = root.with_name(root.name + ".adding")
    # Extra files are copied from the old folder before it is replaced: write the new
    # folder under a staging name first, then rename it over the old one.
    updated.save(staged, extra_files=files)
    _swap_dirs(staged, root)
    updated.path = root
    if idx.metadata.extra.get("index_choice") and len(updated.images) > idx.metadata.extra[
        "index_choice"
    ].get("exact_max", len(updated.images)):
        log.info(
            "%s now holds %d images, above the automatic choice's exact-search limit; rebuild it with "
            "`vgloc index build` (factory auto) to switch to the approximate index",
            root,
            len(updated.images),
        )
    log.info("added %d images to %s (now %d)", len(new), root, len(updated.images))
    return updated, len(new)


def _swap_dirs(new: Path, old: Path) -> None:
    """Replace directory ``old`` by ``new``: rename old aside, new into place, delete old."""
    import shutil

    aside = old.with_name(old.name + ".old")
    if aside.exists():
        shutil.rmtree(aside)
    old.rename(aside)
    try:
        new.rename(old)
    except OSError:
        aside.rename(old)
        raise
    shutil.rmtree(aside, ignore_errors=True)


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
        self.describer = describer
        self.method = method
        # kde on a world-wide index left at the city defaults: k=100, m=10, sigma 4 km (WORLD_KDE)
        self.kde = kde_params_for(kde, index.images)
        self.top_k = int(top_k)
        self.search_params = search_params
        self.options = options or ExtractionOptions(image_size=index.metadata.image_size, progress=False)
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

    def _predict(
        self, names: list[str], descriptors: np.ndarray, query_paths: list[Path] | None
    ) -> list[Prediction]:
        from dataclasses import asdict

        from vgloc.predict import estimate_positions

        k = max(self.top_k, self.kde.k)
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
