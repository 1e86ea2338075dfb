"""Appending images to a geo-index: only the new ones, written atomically.

:func:`new_image_rows` says which images of a set are not yet in an index (by
resolved path); :func:`append_to_geoindex` returns a new :class:`GeoIndex` with
their descriptors added (same FAISS index, trained once; ids continue from the
old size); :meth:`GeoIndex.save` then writes a new directory and renames it over
the old one, so a crash leaves the previous index intact.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path

import faiss
import numpy as np

from vgloc.data.records import GeoImageSet
from vgloc.index.faiss_index import add_vectors
from vgloc.index.metadata import DESCRIPTORS_FILE, IMAGES_FILE, INDEX_FILE, METADATA_FILE, IndexStoreError
from vgloc.index.pca import reduce
from vgloc.index.store import GeoIndex

__all__ = ["append_to_geoindex", "carried_files", "new_image_rows"]

logger = logging.getLogger(__name__)


def _key(path: Path | str) -> str:
    return str(Path(path).resolve())


def new_image_rows(index: GeoIndex, images: GeoImageSet) -> np.ndarray:
    """Rows of ``images`` whose resolved path is neither in ``index`` nor earlier in ``images``."""
    seen = {_key(p) for p in index.images.paths}
    rows = []
    for i, p in enumerate(images.paths):
        k = _key(p)
        if k not in seen:
            seen.add(k)
            rows.append(i)
    return np.asarray(rows, dtype=np.int64)


def _in_index_frame(index: GeoIndex, images: GeoImageSet) -> GeoImageSet:
    """``images`` in the planar frame (or world-wide state) of the index's images."""
    old = index.images
    if old.frame is not None:
        return images.in_frame(old.frame)
    if old.is_world:
        return images.to_world()
    if images.frame is not None or images.is_world:
        raise IndexStoreError(
            "the index holds metric-only images (UTM metres without a zone); only images of the same "
            "kind (@east@north@ file names without a zone) can be added to it"
        )
    return images


def append_to_geoindex(index: GeoIndex, descriptors: np.ndarray, images: GeoImageSet) -> GeoIndex:
    """A new geo-index: ``index`` followed by ``images`` and their ``descriptors``.

    The FAISS index is copied (the original stays usable) and the vectors added
    without retraining; stored descriptors are extended in the index's dtype.

    Args:
        index: the existing geo-index.
        descriptors: (M, D) L2-normalised descriptors of ``images``.
        images: M new images (brought into the index's frame).

    Raises:
        IndexStoreError: other per-image columns, or positions that cannot join the index's frame.
    """
    descriptors = np.asarray(descriptors)
    if descriptors.ndim != 2 or descriptors.shape != (len(images), index.dim):
        raise ValueError(
            f"descriptors must be ({len(images)}, {index.dim}) for {len(images)} images, got {descriptors.shape}"
        )
    old = index.images
    if set(old.extra) != set(images.extra):
        raise IndexStoreError(
            f"the index's images carry the columns {sorted(old.extra)}, the new ones {sorted(images.extra)}"
        )
    new = _in_index_frame(index, images)
    merged = GeoImageSet(
        paths=[*old.paths, *new.paths],
        utm=np.concatenate([old.utm, new.utm]),
        latlon=np.concatenate([old.latlon, new.latlon]),
        heading=np.concatenate([old.heading, new.heading]),
        frame=old.frame,
        name=old.name,
        extra={k: np.concatenate([old.extra[k], new.extra[k]]) for k in old.extra},
    )
    faiss_index = _copy_index(index.index)
    add_vectors(faiss_index, descriptors)
    stored = index.descriptors
    if stored is not None:
        # Stored descriptors are in the index's internal space (PCA-reduced when it has one).
        stored = np.concatenate([stored, reduce(index.index, descriptors).astype(stored.dtype)])
    meta = dataclasses.replace(
        index.metadata,
        num_images=len(merged),
        extra={**index.metadata.extra, "appended": [*index.metadata.extra.get("appended", []), len(new)]},
        files={},
    )
    if not meta.descriptors_stored:
        stored = None
    elif stored is None:
        raise IndexStoreError("the index stores descriptors but they were not loaded; load it with them")
    out = GeoIndex(faiss_index, merged, meta, stored)
    out.model = index.model
    return out


def _copy_index(index: faiss.Index) -> faiss.Index:
    """A deep copy of a FAISS index (through its serialised form where FAISS cannot clone,
    e.g. the normalisation step of a PCA chain)."""
    try:
        return faiss.clone_index(index)
    except RuntimeError:
        return faiss.deserialize_index(faiss.serialize_index(index))


def carried_files(root: Path, index: GeoIndex) -> dict[str, Callable[[Path], object]]:
    """Writers that copy the index's extra files (e.g. model weights) into a new directory."""
    own = {INDEX_FILE, IMAGES_FILE, DESCRIPTORS_FILE, METADATA_FILE}
    return {name: partial(_copy, root / name) for name in index.metadata.files if name not in own}


def _copy(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
