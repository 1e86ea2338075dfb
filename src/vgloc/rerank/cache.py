"""Former home of the HDF5 feature cache, now :mod:`vgloc.local.cache`; kept so existing imports work."""

from __future__ import annotations

from vgloc.local.cache import CacheCorruptError, CacheMismatchError, FeatureCache, image_fingerprint

__all__ = ["CacheCorruptError", "CacheMismatchError", "FeatureCache", "image_fingerprint"]
