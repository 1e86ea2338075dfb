"""Geotagged image collections: layouts, validation, transforms and datasets.

Reading data needs only numpy/Pillow (pyarrow for manifests); the torch-based
parts (:func:`build_transform`, :class:`ImageDataset`) are imported on first use
so that ``import vgloc.data`` stays light.

Example:
    >>> from vgloc.data import load_split, build_transform, ImageDataset
    >>> split = load_split("datasets/pitts30k", "test")
    >>> ds = ImageDataset(split.database.paths, build_transform((480, 640)))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vgloc.data.exif import ExifGPS, ExifGPSError, make_gps_exif, read_exif_gps
from vgloc.data.layouts import (
    IMAGE_EXTENSIONS,
    BenchmarkSplit,
    detect_layout,
    find_query_domains,
    load_image_set,
    load_split,
)
from vgloc.data.records import GeoImageSet
from vgloc.data.validation import DataError, validate_images

if TYPE_CHECKING:
    from vgloc.data.datasets import ImageDataset, check_batchable, collate_images, load_image
    from vgloc.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transform

# name -> module, for the attributes whose modules import torch.
_LAZY = {
    "build_transform": "vgloc.data.transforms",
    "IMAGENET_MEAN": "vgloc.data.transforms",
    "IMAGENET_STD": "vgloc.data.transforms",
    "ImageDataset": "vgloc.data.datasets",
    "check_batchable": "vgloc.data.datasets",
    "collate_images": "vgloc.data.datasets",
    "load_image": "vgloc.data.images",
}

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "BenchmarkSplit",
    "DataError",
    "ExifGPS",
    "ExifGPSError",
    "GeoImageSet",
    "ImageDataset",
    "build_transform",
    "check_batchable",
    "collate_images",
    "detect_layout",
    "find_query_domains",
    "load_image",
    "load_image_set",
    "load_split",
    "make_gps_exif",
    "read_exif_gps",
    "validate_images",
]


def __getattr__(name: str) -> Any:
    """Import torch-dependent attributes on first access (PEP 562)."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
