"""vgloc: visual geo-localization — map photos to GPS by retrieval against geotagged images.

The top-level names are imported lazily so that ``import vgloc`` stays cheap
(no torch import, no side effects) until a function is actually used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vgloc._version import __version__

if TYPE_CHECKING:
    from vgloc.api import ExtractionOptions, build_index, evaluate, locate
    from vgloc.models import create_model, list_models

__all__ = [
    "ExtractionOptions",
    "__version__",
    "build_index",
    "create_model",
    "evaluate",
    "list_models",
    "locate",
]

_LAZY = {
    "build_index": "vgloc.api",
    "locate": "vgloc.api",
    "evaluate": "vgloc.api",
    "ExtractionOptions": "vgloc.api",
    "create_model": "vgloc.models",
    "list_models": "vgloc.models",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vgloc' has no attribute {name!r}")
