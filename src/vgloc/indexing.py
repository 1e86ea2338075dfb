"""Building and growing an index: describe a geotagged collection, store it, append to it.

:func:`build_index` describes a collection and writes a :class:`~vgloc.index.GeoIndex`
folder; :func:`describe_database` is its describing half (also run by each rank of a
sharded build, :mod:`vgloc.scale_out`); :func:`add_to_index` appends only the images not
yet indexed, with the index's own describer. Locating photos against an index is
:mod:`vgloc.localizer`'s job.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from vgloc.describers import Describer, ExtractionOptions, describer_for_index, resolve_describer
from vgloc.describers.base import IndexState
from vgloc.describers.multiscale import apply_scales

if TYPE_CHECKING:
    from vgloc.data.records import GeoImageSet
    from vgloc.index import GeoIndex

__all__ = [
    "DescribedDatabase",
    "add_to_index",
    "build_index",
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
    describer = apply_scales(resolve_describer(model, checkpoint, pretrained=pretrained), options)
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
    describer = apply_scales(describer_for_index(idx, model, checkpoint), options or ExtractionOptions(), idx)
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
