"""Indexes larger than RAM: search a geo-index through memory maps.

``GeoIndex.load(path, on_disk=True)`` (``vgloc locate/eval --index`` choose it by size)
maps the large parts of an index directory instead of reading them:

* ``descriptors.npy`` as a read-only ``np.memmap``: the exact re-scoring of an
  automatically chosen approximate index (``factory="auto"`` above 100k images) reads
  only the candidates' rows, and exact search over the stored descriptors
  (:func:`vgloc.index.exact_search`) converts one chunk at a time;
* the FAISS file with ``IO_FLAG_MMAP | IO_FLAG_MMAP_IFC``: inverted lists of IVF
  indexes become FAISS ``OnDiskInvertedLists`` over the mapped file, and the codes of
  flat-code indexes (``Flat``, ``PQ``, the ``Refine(PQ..)`` stage of "auto") are mapped
  rather than copied. Fast-scan (``x4fs``) lists are packed in RAM by FAISS on load
  (16 bytes/vector for "auto"): the small part.

The operating system pages in what a search touches and can drop it again under
memory pressure, so resident memory stays near the query's working set. Search
results are bit-identical to the in-RAM index (same code, same data).
"""

from __future__ import annotations

import logging
import mmap
import os
from pathlib import Path

import faiss
import numpy as np

from vgloc.index.metadata import DESCRIPTORS_FILE, INDEX_FILE, METADATA_FILE, IndexCorruptError, IndexMetadata

__all__ = [
    "MMAP_FLAGS",
    "ON_DISK_ENV",
    "ON_DISK_RAM_FRACTION",
    "available_ram_bytes",
    "index_data_bytes",
    "read_descriptors",
    "read_faiss",
    "read_index_mapped",
    "should_map",
]

logger = logging.getLogger(__name__)

#: ``faiss.read_index`` flags that map the file instead of reading it (read-only): the
#: codes of flat-code indexes (``IO_FLAG_MMAP_IFC``) and IVF inverted lists (``IO_FLAG_MMAP``).
MMAP_FLAGS = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY
# FAISS cannot combine the two for array inverted lists (its on-disk lists need a plain
# file reader): IVF indexes are read with this one.
_IVF_MMAP_FLAGS = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY


def read_index_mapped(path: str | Path) -> faiss.Index:
    """``faiss.read_index`` with the large parts memory-mapped (see the module docstring)."""
    try:
        return faiss.read_index(str(path), MMAP_FLAGS)
    except RuntimeError as e:
        if "mmap only supported for File objects" not in str(e):
            raise
        return faiss.read_index(str(path), _IVF_MMAP_FLAGS)


#: ``on_disk=None`` maps an index whose data files exceed this share of the RAM
#: available now: reading it whole would leave too little for the queries' network.
ON_DISK_RAM_FRACTION = 0.5


def available_ram_bytes() -> int | None:
    """Memory available to a new allocation now (``MemAvailable``), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def index_data_bytes(meta: IndexMetadata) -> int:
    """Bytes of the index's FAISS file and stored descriptors (as recorded in its metadata)."""
    return sum(int(meta.files.get(name, {}).get("bytes", 0)) for name in (INDEX_FILE, DESCRIPTORS_FILE))


#: Environment variable that overrides the automatic choice: ``1`` always maps, ``0`` never
#: does (``VGLOC_INDEX_ON_DISK=1 vgloc locate ... --index big.idx``).
ON_DISK_ENV = "VGLOC_INDEX_ON_DISK"


def should_map(root: Path, meta: IndexMetadata, *, fraction: float = ON_DISK_RAM_FRACTION) -> bool:
    """Whether ``on_disk=None`` maps this index: ``$VGLOC_INDEX_ON_DISK`` (1/0) when set, else
    whether its data exceed ``fraction`` of the RAM available now."""
    forced = os.environ.get(ON_DISK_ENV, "").strip().lower()
    if forced in ("1", "true", "yes", "0", "false", "no"):
        return forced in ("1", "true", "yes")
    if forced:
        raise ValueError(f"${ON_DISK_ENV} must be 1 or 0, got {forced!r}")
    need = index_data_bytes(meta)
    avail = available_ram_bytes()
    mapped = avail is not None and need > fraction * avail
    if mapped:
        logger.info(
            "%s: %.1f GiB of index data > %.0f%% of the %.1f GiB of available RAM: searching it on disk "
            "(memory-mapped)",
            root,
            need / 2**30,
            100 * fraction,
            (avail or 0) / 2**30,
        )
    return mapped


def read_faiss(path: Path, meta: IndexMetadata, on_disk: bool) -> faiss.Index:
    """Read ``index.faiss`` (mapped when ``on_disk``), refusing one that disagrees with ``meta``."""
    try:
        index = read_index_mapped(path) if on_disk else faiss.read_index(str(path))
    except RuntimeError as e:
        raise IndexCorruptError(f"{path}: cannot read the FAISS index ({e})") from e
    if index.d != meta.descriptor_dim:
        raise IndexCorruptError(
            f"{path}: FAISS index has dimension {index.d}, {METADATA_FILE} says {meta.descriptor_dim}"
        )
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise IndexCorruptError(f"{path}: FAISS index does not use the inner-product metric")
    if index.ntotal != meta.num_images:
        raise IndexCorruptError(
            f"{path}: FAISS index holds {index.ntotal} vectors, {METADATA_FILE} says {meta.num_images} images"
        )
    return index


def read_descriptors(path: Path, meta: IndexMetadata, on_disk: bool) -> np.ndarray:
    """Read ``descriptors.npy`` ((N, d): a read-only memory map when ``on_disk``), checking shape and dtype."""
    try:
        descriptors = np.load(path, allow_pickle=False, mmap_mode="r" if on_disk else None)
    except (ValueError, OSError, EOFError) as e:
        raise IndexCorruptError(f"{path}: cannot read descriptors ({e})") from e
    if on_disk:
        _advise_random(descriptors)
    expected = (meta.num_images, meta.stored_dim)
    if descriptors.shape != expected or descriptors.dtype != np.dtype(meta.descriptor_dtype):
        raise IndexCorruptError(
            f"{path}: descriptors are {descriptors.dtype} {descriptors.shape}, "
            f"expected {meta.descriptor_dtype} {expected}"
        )
    return descriptors


def _advise_random(arr: np.ndarray) -> None:
    """Tell the kernel a mapped array is read at random rows (re-scoring reads a few hundred
    scattered rows per query): no read-ahead, so a cold row costs its own page, not the
    128 KiB around it. (Pages already in the page cache are still mapped around a fault:
    they count in RSS but are clean and dropped under memory pressure.)"""
    mm = getattr(arr, "_mmap", None)
    advise = getattr(mm, "madvise", None)
    if advise is not None and hasattr(mmap, "MADV_RANDOM"):
        advise(mmap.MADV_RANDOM)
