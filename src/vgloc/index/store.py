"""The on-disk geo-index: a FAISS index plus the geotagged images it points to.

``vgloc index build`` writes one directory; ``vgloc locate`` and ``vgloc eval`` read it::

    my-index/
      index.faiss       the FAISS index (faiss.write_index), id i <-> row i of images.parquet
      images.parquet    path, lat, lon, utm_east, utm_north, heading (+ extra.<name> columns)
      descriptors.npy   the database descriptors, float32 or float16 (optional)
      metadata.json     format + version, model spec, image size, dimension, factory,
                        search params, metric frame, sizes and SHA-256 of the files, ...

The directory is written to a temporary sibling and renamed into place, so a
crash never leaves a half-written index under the final name. Loading refuses an
index built by another model or with another dimension, from a newer format
version, with missing, truncated or corrupted files, or whose parts disagree
(FAISS ``ntotal`` vs. number of images), and every error names what was
expected, what was found and the file at fault. Nothing is ever unpickled.

The metadata and its errors live in :mod:`vgloc.index.metadata`, the file helpers
and the Parquet image table in :mod:`vgloc.index.files`, reading with memory maps in
:mod:`vgloc.index.ondisk`, PCA in :mod:`vgloc.index.pca`, GPU search in
:mod:`vgloc.index.torch_search`; their public names are re-exported here. What stays
(just over 500 lines) is the one class whose build, search, save and load must agree on
the directory's contents, which is why it is not split further.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from vgloc.data.records import GeoImageSet
from vgloc.index.auto import AUTO_EXACT_MAX, rerank_exact, resolve_factory
from vgloc.index.faiss_index import (
    DEFAULT_SEARCH_PARAMS,
    build_faiss_index,
    check_normalized,
    parse_search_params,
)
from vgloc.index.faiss_index import search as faiss_search
from vgloc.index.files import (
    _describe_extra_columns,
    _file_record,
    _flush,
    _is_index_dir,
    _read_images,
    _verify_file,
    _write_images,
)
from vgloc.index.metadata import (
    DESCRIPTOR_DTYPES,
    DESCRIPTORS_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    IMAGES_FILE,
    INDEX_FILE,
    METADATA_FILE,
    IndexCorruptError,
    IndexMetadata,
    IndexMismatchError,
    IndexStoreError,
    _check_image_size,
)
from vgloc.index.ondisk import read_descriptors, read_faiss, should_map
from vgloc.index.pca import apply_chain, check_pca, fit_pca, pca_info, reduce, wrap
from vgloc.index.torch_search import is_exact, searches_on_gpu
from vgloc.io import atomic_path

__all__ = [
    "DESCRIPTORS_FILE",
    "DESCRIPTOR_DTYPES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "IMAGES_FILE",
    "INDEX_FILE",
    "METADATA_FILE",
    "GeoIndex",
    "IndexCorruptError",
    "IndexMetadata",
    "IndexMismatchError",
    "IndexStoreError",
]

logger = logging.getLogger(__name__)


class GeoIndex:
    """A FAISS index over database descriptors, with the geotagged images it returns.

    Id ``i`` returned by :meth:`search` is image ``i`` of :attr:`images`.

    Example:
        >>> gi = GeoIndex.build(desc, db_images, model_spec="resnet18+gem+fc512",
        ...                     image_size=(480, 640), factory="IVF1024,PQ64")
        >>> gi.save("city.vgindex")
        >>> gi = GeoIndex.load("city.vgindex", expect_model_spec="resnet18+gem+fc512")
        >>> sims, ids = gi.search(query_desc, k=10)
        >>> gi.images.latlon[ids[:, 0]]
    """

    def __init__(
        self,
        index: faiss.Index,
        images: GeoImageSet,
        metadata: IndexMetadata,
        descriptors: np.ndarray | None = None,
    ) -> None:
        """Assemble a geo-index from parts (use :meth:`build` or :meth:`load`).

        Args:
            index: the FAISS index; ``ntotal`` must equal ``len(images)``.
            images: the database images, in id order.
            metadata: the matching :class:`IndexMetadata`.
            descriptors: (N, D) stored descriptors or None.
        """
        n = len(images)
        if index.ntotal != n or metadata.num_images != n:
            raise IndexCorruptError(
                f"index holds {index.ntotal} vectors, metadata says {metadata.num_images} images, "
                f"and the image table has {n} rows; they must be equal"
            )
        if index.d != metadata.descriptor_dim:
            raise IndexCorruptError(
                f"FAISS index has dimension {index.d}, metadata says {metadata.descriptor_dim}"
            )
        if descriptors is not None and descriptors.shape != (n, metadata.stored_dim):
            raise IndexCorruptError(
                f"descriptors have shape {descriptors.shape}, expected ({n}, {metadata.stored_dim})"
            )
        self._index = index
        self._images = images
        self._metadata = metadata
        self._descriptors = descriptors
        self.path: Path | None = None  # the directory it was loaded from or saved to
        # The network that described the database, when this process built the index:
        # queries must be described by the very same weights (random init included).
        self.model: Any = None
        # Search parameters are set on the shared FAISS object, so apply-then-search must
        # not interleave between threads (an HTTP service searches concurrently).
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- properties

    @property
    def index(self) -> faiss.Index:
        """The FAISS index."""
        return self._index

    @property
    def images(self) -> GeoImageSet:
        """The database images; row ``i`` is FAISS id ``i``."""
        return self._images

    @property
    def metadata(self) -> IndexMetadata:
        """The index's :class:`IndexMetadata`."""
        return self._metadata

    @property
    def descriptors(self) -> np.ndarray | None:
        """The stored (N, D) database descriptors (float32/float16; a read-only memory map
        when loaded ``on_disk``), or None. With PCA (``metadata.extra["pca"]``) they are the
        reduced (N, d) ones, in the index's internal space."""
        return self._descriptors

    @property
    def pca_dim(self) -> int | None:
        """The PCA output dimension when the index compacts descriptors (``--pca``), else None."""
        info = self._metadata.extra.get("pca")
        return int(info["dim"]) if isinstance(info, dict) else None

    @property
    def dim(self) -> int:
        """Descriptor dimension."""
        return self._metadata.descriptor_dim

    def __len__(self) -> int:
        return len(self._images)

    def __repr__(self) -> str:
        m = self._metadata
        return (
            f"GeoIndex(model_spec={m.model_spec!r}, num_images={m.num_images}, "
            f"dim={m.descriptor_dim}, factory={m.faiss_factory!r})"
        )

    # ----------------------------------------------------------------- build

    @classmethod
    def build(
        cls,
        descriptors: np.ndarray,
        images: GeoImageSet,
        *,
        model_spec: str,
        image_size: Sequence[int] | str | None,
        factory: str = "Flat",
        search_params: str | None = DEFAULT_SEARCH_PARAMS,
        store_descriptors: bool = True,
        descriptor_dtype: str = "float32",
        extra: dict[str, Any] | None = None,
        train_sample: int | None = None,
        seed: int = 0,
        num_threads: int | None = None,
        progress: bool = False,
        exact_max: int = AUTO_EXACT_MAX,
        pca: int | None = None,
        pca_whiten: bool = True,
    ) -> GeoIndex:
        """Build a geo-index from database descriptors and their images.

        Args:
            descriptors: (N, D) L2-normalised descriptors, row ``i`` of image ``i``.
            images: the N database images.
            model_spec: the model that produced the descriptors (checked at load).
            image_size: (H, W) the images were resized to, or None for native size (a
                size still to resolve, such as ``"auto"``, is refused).
            factory: FAISS factory string (see :func:`vgloc.index.build_faiss_index`), or
                ``"auto"`` (:func:`vgloc.index.auto.choose_index`, up to ``exact_max``
                vectors ``Flat``); the choice is stored in ``extra["index_choice"]``.
            search_params: default search parameters, e.g. ``"nprobe=16,efSearch=64"``;
                None: the automatic choice's (with ``"auto"``) or the FAISS defaults.
            store_descriptors: keep the descriptors (``descriptors.npy``) for re-ranking
                or rebuilding with another factory.
            descriptor_dtype: ``"float32"`` or ``"float16"`` (half the disk, ~1e-3 error).
            extra: free JSON-serialisable information saved in the metadata.
            train_sample: vectors to train the index on (None: FAISS's useful maximum).
            seed: seeds training.
            num_threads: FAISS threads while building (None: FAISS's setting).
            progress: show a progress bar while adding vectors.
            exact_max: with ``factory="auto"``, the largest database searched exactly.
            pca: fit PCA-whitening to this many dimensions on ``descriptors`` and put it in
                front of the index (:mod:`vgloc.index.pca`); queries are reduced by the
                index itself and the stored descriptors are the reduced ones.
            pca_whiten: whiten the PCA components (False: projection only).

        Returns:
            The built :class:`GeoIndex` (in memory; call :meth:`save`).

        Shape:
            descriptors: (N, D) with N == len(images).
        """
        if not isinstance(model_spec, str) or not model_spec.strip():
            raise ValueError(f"model_spec must be a non-empty string, got {model_spec!r}")
        if descriptor_dtype not in DESCRIPTOR_DTYPES:
            raise ValueError(f"descriptor_dtype must be one of {DESCRIPTOR_DTYPES}, got {descriptor_dtype!r}")
        size = _check_image_size(image_size, "image_size") if image_size is not None else None
        if search_params is not None:
            parse_search_params(search_params)  # fail now on a typo, not at the first search
        extra = dict(extra or {})
        try:
            json.dumps(extra, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"extra must be JSON-serialisable: {e}") from e
        shape = np.shape(descriptors)
        if len(shape) != 2:
            raise ValueError(f"descriptors must be a 2-D array (N, D), got shape {shape}")
        if shape[0] != len(images):
            raise ValueError(
                f"{shape[0]} descriptors for {len(images)} images "
                f"({images.name or 'image set'}); they must correspond row by row"
            )
        extra_columns = _describe_extra_columns(images)
        if pca is not None:
            pca = check_pca(pca, int(shape[1]), int(shape[0]))
            extra["pca"] = pca_info(pca, int(shape[1]), pca_whiten)
        # With PCA the inner index ("auto"'s choice included) sees the reduced vectors only.
        chain = fit_pca(descriptors, pca, pca_whiten) if pca is not None else ()
        kept = apply_chain(chain, descriptors) if chain else descriptors
        factory, search_params = resolve_factory(factory, search_params, np.shape(kept), exact_max, extra)
        index = build_faiss_index(
            kept,
            factory,
            train_sample=train_sample,
            seed=seed,
            num_threads=num_threads,
            progress=progress,
        )
        if chain:
            index = wrap(chain, index)
        stored = np.ascontiguousarray(kept, dtype=descriptor_dtype) if store_descriptors else None
        metadata = IndexMetadata(
            model_spec=model_spec.strip(),
            descriptor_dim=int(shape[1]),
            faiss_factory=factory.strip(),
            num_images=int(shape[0]),
            image_size=size,
            descriptor_dtype=descriptor_dtype,
            descriptors_stored=store_descriptors,
            search_params=search_params,
            metric_frame=images.frame,
            image_set_name=images.name,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            extra=extra,
            extra_columns=extra_columns,
        )
        return cls(index, images, metadata, stored)

    # ----------------------------------------------------------------- search

    def search(
        self,
        query_desc: np.ndarray,
        k: int,
        params: str | None = None,
        *,
        strict: bool = False,
        device: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` database images per query (an "auto" IVF-PQ index re-scores with the descriptors).

        Args:
            query_desc: (Q, D) L2-normalised query descriptors (or one (D,) descriptor).
            k: neighbours per query; clipped to the number of images.
            params: search parameters; None uses the index's default
                (``metadata.search_params``). Parameters that do not apply are skipped
                unless ``strict``.
            strict: raise when a parameter does not apply to this index.
            device: where the describer runs; on a CUDA device an exact (``Flat``) index
                is searched there with torch (:func:`vgloc.index.torch_search.torch_exact_search`,
                same ids), anything else by FAISS on the CPU.

        Returns:
            ``(similarities float32 (Q, k'), ids int64 (Q, k'))``, ``k' = min(k, N)``;
            ids index :attr:`images` (-1 with similarity -inf where an approximate
            index found fewer than k').

        Shape:
            query_desc: (Q, D) -> (Q, min(k, N)).
        """
        use = self._metadata.search_params if params is None else params
        desc = self._descriptors  # re-scoring an auto index's candidates needs the stored descriptors
        if desc is not None and searches_on_gpu(device) and is_exact(self._index):
            from vgloc.index.torch_search import torch_exact_search

            assert device is not None  # (searches_on_gpu says so; narrows the type)
            check_normalized(np.atleast_2d(np.asarray(query_desc, np.float32)), "queries")
            return torch_exact_search(desc, reduce(self._index, query_desc), k, device=device)
        rerank = int(self._metadata.extra.get("index_choice", {}).get("rerank_candidates", 0))
        if desc is None or not rerank or isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            with self._lock:
                return faiss_search(self._index, query_desc, k, use, strict=strict)
        with self._lock:
            _, ids = faiss_search(self._index, query_desc, max(k, rerank), use, strict=strict)
        # Stored descriptors live in the index's internal space (PCA-reduced when it has one).
        return rerank_exact(desc, reduce(self._index, query_desc), ids, min(k, len(self)))

    # ----------------------------------------------------------------- save

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        overwrite: bool = True,
        extra_files: Mapping[str, Callable[[Path], object]] | None = None,
    ) -> Path:
        """Write the index directory atomically (temporary sibling, then rename).

        An existing vgloc index at ``path`` is replaced only once the new one is complete;
        any other existing file or non-empty directory is refused rather than deleted.

        Args:
            path: the index directory to create.
            overwrite: replace an existing index at ``path``.
            extra_files: more files to write inside the directory, name -> writer called with
                the file's temporary path (e.g. the model weights that produced the descriptors);
                they are size- and checksum-recorded like the index's own files.

        Returns:
            The path written.
        """
        path = Path(path)
        if path.exists() or path.is_symlink():
            if not overwrite:
                raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)")
            if not path.is_dir() or (any(path.iterdir()) and not _is_index_dir(path)):
                raise FileExistsError(
                    f"refusing to replace {path}: it exists and is not a vgloc index directory"
                )
        meta = self._metadata
        with atomic_path(path) as tmp:
            tmp.mkdir()
            files: dict[str, dict[str, Any]] = {}
            index_path = tmp / INDEX_FILE
            faiss.write_index(self._index, str(index_path))
            files[INDEX_FILE] = _file_record(index_path)
            if self._descriptors is not None:
                desc_path = tmp / DESCRIPTORS_FILE
                with open(desc_path, "wb") as f:
                    np.save(f, self._descriptors, allow_pickle=False)
                    _flush(f)
                files[DESCRIPTORS_FILE] = _file_record(desc_path)
            images_path = tmp / IMAGES_FILE
            _write_images(images_path, self._images, meta.extra_columns)
            files[IMAGES_FILE] = _file_record(images_path)
            for name, writer in (extra_files or {}).items():
                if name in (INDEX_FILE, DESCRIPTORS_FILE, IMAGES_FILE, METADATA_FILE) or "/" in name:
                    raise ValueError(f"extra file name {name!r} is reserved or not a plain file name")
                writer(tmp / name)
                files[name] = _file_record(tmp / name)
            meta.files = files
            text = json.dumps(meta.to_dict(), indent=2, allow_nan=False) + "\n"
            with open(tmp / METADATA_FILE, "w", encoding="utf-8") as f:
                f.write(text)
                _flush(f)
        self.path = path
        logger.info("saved %r to %s", self, path)
        return path

    # ----------------------------------------------------------------- load

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        expect_model_spec: str | None = None,
        expect_descriptor_dim: int | None = None,
        load_descriptors: bool = True,
        verify_checksums: bool = True,
        on_disk: bool | None = None,
    ) -> GeoIndex:
        """Read an index directory written by :meth:`save`, refusing any mismatch.

        Args:
            path: the index directory.
            expect_model_spec: refuse an index built by another model.
            expect_descriptor_dim: refuse an index of another descriptor dimension.
            load_descriptors: read ``descriptors.npy`` when present.
            verify_checksums: check every file's SHA-256 (reads each file once more;
                sizes are always checked, which catches truncation).
            on_disk: memory-map the large parts instead of reading them into RAM (the
                FAISS codes and inverted lists, and ``descriptors.npy``), for databases
                larger than RAM; search results are identical. None: decide by size
                (:func:`vgloc.index.ondisk.should_map`). See :mod:`vgloc.index.ondisk`.

        Returns:
            The :class:`GeoIndex`.

        Raises:
            FileNotFoundError: ``path`` is not a directory.
            IndexMismatchError: other model spec, dimension or a newer format version.
            IndexCorruptError: missing, truncated, corrupted or inconsistent files.
        """
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"no vgloc index directory at {root}")
        meta_path = root / METADATA_FILE
        if not meta_path.is_file():
            raise IndexCorruptError(f"{root} is not a vgloc index: {METADATA_FILE} is missing")
        try:
            raw = json.loads(meta_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise IndexCorruptError(f"{meta_path}: corrupted metadata (not valid JSON: {e})") from e
        meta = IndexMetadata.from_dict(raw, source=str(meta_path))

        if expect_model_spec is not None and meta.model_spec != expect_model_spec.strip():
            raise IndexMismatchError(
                f"{root}: index was built with model {meta.model_spec!r}, "
                f"expected {expect_model_spec!r}; rebuild the index with this model"
            )
        if expect_descriptor_dim is not None and meta.descriptor_dim != expect_descriptor_dim:
            raise IndexMismatchError(
                f"{root}: index holds {meta.descriptor_dim}-d descriptors, expected "
                f"{expect_descriptor_dim}-d (model {meta.model_spec!r})"
            )

        required = [INDEX_FILE, IMAGES_FILE] + ([DESCRIPTORS_FILE] if meta.descriptors_stored else [])
        for name in required:
            if name not in meta.files:
                raise IndexCorruptError(f"{meta_path}: no size/checksum recorded for {name}")
        for name, record in meta.files.items():  # extra files (e.g. model weights) too
            _verify_file(root / name, record, verify_checksums)

        index_path = root / INDEX_FILE
        if on_disk is None:
            on_disk = should_map(root, meta)
        index = read_faiss(index_path, meta, on_disk)
        images = _read_images(root / IMAGES_FILE, meta)
        descriptors = None
        if meta.descriptors_stored and load_descriptors:
            descriptors = read_descriptors(root / DESCRIPTORS_FILE, meta, on_disk)
        loaded = cls(index, images, meta, descriptors)
        loaded.path = root
        return loaded

    @staticmethod
    def read_metadata(path: str | os.PathLike[str]) -> IndexMetadata:
        """Only the metadata of an index directory (cheap: reads one small JSON file)."""
        meta_path = Path(path) / METADATA_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"no vgloc index at {path} ({METADATA_FILE} not found)")
        try:
            raw = json.loads(meta_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise IndexCorruptError(f"{meta_path}: corrupted metadata (not valid JSON: {e})") from e
        return IndexMetadata.from_dict(raw, source=str(meta_path))

    def check_model(self, model_spec: str, descriptor_dim: int) -> None:
        """Refuse a query model whose spec or descriptor dimension differs from the index's.

        Raises:
            IndexMismatchError: naming what the index expects and what was given.
        """
        where = f"{self.path}: " if self.path is not None else ""
        if model_spec.strip() != self._metadata.model_spec:
            raise IndexMismatchError(
                f"{where}index was built with model {self._metadata.model_spec!r}, but the query model is "
                f"{model_spec!r}; describe queries with the index's model or rebuild the index"
            )
        if descriptor_dim != self._metadata.descriptor_dim:
            raise IndexMismatchError(
                f"{where}index holds {self._metadata.descriptor_dim}-d descriptors, the query model gives "
                f"{descriptor_dim}-d"
            )
