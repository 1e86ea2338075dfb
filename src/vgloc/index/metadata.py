"""What a geo-index directory records about itself: ``metadata.json``, file names, errors.

:class:`IndexMetadata` parses and checks ``metadata.json`` (format name and version
first); the errors here are raised by every part of :mod:`vgloc.index.store`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

from vgloc._version import __version__
from vgloc.geo import MetricFrame
from vgloc.index.faiss_search import DEFAULT_SEARCH_PARAMS

__all__ = [
    "DESCRIPTORS_FILE",
    "DESCRIPTOR_DTYPES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "IMAGES_FILE",
    "INDEX_FILE",
    "METADATA_FILE",
    "IndexCorruptError",
    "IndexMetadata",
    "IndexMismatchError",
    "IndexStoreError",
]

FORMAT_NAME = "vgloc-index"
#: Bump when the layout changes in a way older readers cannot handle; readers refuse newer.
FORMAT_VERSION = 1

INDEX_FILE = "index.faiss"
DESCRIPTORS_FILE = "descriptors.npy"
IMAGES_FILE = "images.parquet"
METADATA_FILE = "metadata.json"

DESCRIPTOR_DTYPES = ("float32", "float16")


class IndexStoreError(ValueError):
    """A geo-index that cannot be used: base class of the errors below."""


class IndexMismatchError(IndexStoreError):
    """The index is valid but not what the caller expects (model, dimension, format version)."""


class IndexCorruptError(IndexStoreError):
    """A file of the index is missing, truncated, corrupted or inconsistent with the others."""


# --------------------------------------------------------------------------- metadata


@dataclass
class IndexMetadata:
    """What ``metadata.json`` records about a geo-index.

    Attributes:
        model_spec: the model that produced the descriptors, e.g. ``"resnet18+gem+fc512"``.
        descriptor_dim: descriptor dimension D.
        faiss_factory: the FAISS factory string the index was built with.
        num_images: number of database images (= FAISS ``ntotal``).
        image_size: (H, W) the images were resized to for the descriptors, or None (native).
        descriptor_dtype: dtype of ``descriptors.npy`` (``"float32"``/``"float16"``).
        descriptors_stored: whether ``descriptors.npy`` is part of the index.
        search_params: default FAISS search parameters.
        metric: always ``"inner_product"`` (on L2-normalised descriptors).
        metric_frame: the UTM frame of ``utm_east``/``utm_north``; None for metric-only
            images (no zone, NaN lat/lon) and for world-wide ones (no single planar
            frame: NaN ``utm_east``/``utm_north``, lat/lon kept; see ``vgloc.data.records``).
        image_set_name: ``GeoImageSet.name`` of the database.
        created: ISO 8601 UTC time of the build.
        vgloc_version: vgloc version that built the index.
        faiss_version: FAISS version that built the index.
        extra: free JSON-serialisable information (checkpoint hash, precision, ...).
        extra_columns: per-image arrays of ``GeoImageSet.extra``: name -> dtype and shape.
        files: name -> {"bytes", "sha256"} of the data files, written by :meth:`GeoIndex.save`.
        format: ``"vgloc-index"``.
        format_version: layout version (see :data:`FORMAT_VERSION`).
    """

    model_spec: str
    descriptor_dim: int
    faiss_factory: str
    num_images: int
    image_size: tuple[int, int] | None = None
    descriptor_dtype: str = "float32"
    descriptors_stored: bool = True
    search_params: str = DEFAULT_SEARCH_PARAMS
    metric: str = "inner_product"
    metric_frame: MetricFrame | None = None
    image_set_name: str = ""
    created: str = ""
    vgloc_version: str = __version__
    faiss_version: str = field(default_factory=lambda: str(faiss.__version__))
    extra: dict[str, Any] = field(default_factory=dict)
    extra_columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    @property
    def stored_dim(self) -> int:
        """Dimension of the stored descriptors: the PCA dimension when the index has one
        (``extra["pca"]``, :mod:`vgloc.index.pca`), else :attr:`descriptor_dim`."""
        info = self.extra.get("pca")
        return int(info["dim"]) if isinstance(info, dict) and "dim" in info else self.descriptor_dim

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, format name and version first."""
        return {
            "format": self.format,
            "format_version": self.format_version,
            "vgloc_version": self.vgloc_version,
            "faiss_version": self.faiss_version,
            "created": self.created,
            "model_spec": self.model_spec,
            "image_size": list(self.image_size) if self.image_size is not None else None,
            "descriptor_dim": self.descriptor_dim,
            "descriptor_dtype": self.descriptor_dtype,
            "descriptors_stored": self.descriptors_stored,
            "metric": self.metric,
            "faiss_factory": self.faiss_factory,
            "search_params": self.search_params,
            "num_images": self.num_images,
            "image_set_name": self.image_set_name,
            "metric_frame": self.metric_frame.to_dict() if self.metric_frame is not None else None,
            "extra_columns": self.extra_columns,
            "files": self.files,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = METADATA_FILE) -> IndexMetadata:
        """Parse and check a metadata dict (format name and version first).

        Args:
            d: the parsed ``metadata.json``.
            source: the file name for error messages.

        Raises:
            IndexCorruptError: not a vgloc index, or missing/ill-typed fields.
            IndexMismatchError: a format version this vgloc cannot read.
        """
        if not isinstance(d, dict):
            raise IndexCorruptError(f"{source}: expected a JSON object, found {type(d).__name__}")
        if d.get("format") != FORMAT_NAME:
            raise IndexCorruptError(
                f"{source}: not a vgloc index (format {d.get('format')!r}, expected {FORMAT_NAME!r})"
            )
        version = d.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise IndexCorruptError(f"{source}: invalid format_version {version!r}")
        if version > FORMAT_VERSION:
            raise IndexMismatchError(
                f"{source}: index format version {version} was written by a newer vgloc "
                f"({d.get('vgloc_version')}); this vgloc {__version__} reads format version "
                f"{FORMAT_VERSION} at most. Upgrade vgloc or rebuild the index."
            )

        def get(key: str, types: type | tuple[type, ...], *, optional: bool = False) -> Any:
            if key not in d:
                raise IndexCorruptError(f"{source}: missing field {key!r}")
            value = d[key]
            if value is None and optional:
                return None
            if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
                raise IndexCorruptError(f"{source}: field {key!r} has invalid value {value!r}")
            if not isinstance(value, types):
                raise IndexCorruptError(f"{source}: field {key!r} has invalid value {value!r}")
            return value

        image_size = get("image_size", list, optional=True)
        if image_size is not None:
            image_size = _check_image_size(image_size, source, IndexCorruptError)
        frame = get("metric_frame", dict, optional=True)
        try:
            metric_frame = MetricFrame.from_dict(frame) if frame is not None else None
        except (KeyError, TypeError, ValueError) as e:
            raise IndexCorruptError(f"{source}: invalid metric_frame {frame!r}") from e
        meta = cls(
            model_spec=get("model_spec", str),
            descriptor_dim=get("descriptor_dim", int),
            faiss_factory=get("faiss_factory", str),
            num_images=get("num_images", int),
            image_size=image_size,
            descriptor_dtype=get("descriptor_dtype", str),
            descriptors_stored=get("descriptors_stored", bool),
            search_params=get("search_params", str),
            metric=get("metric", str),
            metric_frame=metric_frame,
            image_set_name=get("image_set_name", str),
            created=get("created", str),
            vgloc_version=get("vgloc_version", str),
            faiss_version=get("faiss_version", str),
            extra=get("extra", dict),
            extra_columns=get("extra_columns", dict),
            files=get("files", dict),
            format=FORMAT_NAME,
            format_version=version,
        )
        if meta.descriptor_dim < 1 or meta.num_images < 0:
            raise IndexCorruptError(
                f"{source}: invalid descriptor_dim {meta.descriptor_dim} or num_images {meta.num_images}"
            )
        if meta.descriptor_dtype not in DESCRIPTOR_DTYPES:
            raise IndexCorruptError(
                f"{source}: descriptor_dtype {meta.descriptor_dtype!r} is not one of {DESCRIPTOR_DTYPES}"
            )
        if meta.metric != "inner_product":
            raise IndexCorruptError(f"{source}: unsupported metric {meta.metric!r}")
        return meta


def _check_image_size(image_size: Any, what: str, err: type[ValueError] = ValueError) -> tuple[int, int]:
    """(H, W) of positive integers, or ``err`` naming ``what``."""
    if (
        not isinstance(image_size, (list, tuple))
        or len(image_size) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in image_size)
    ):
        raise err(f"{what}: image_size must be (H, W) of positive integers or None, got {image_size!r}")
    return int(image_size[0]), int(image_size[1])
