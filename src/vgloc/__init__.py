"""vgloc: visual geo-localization — map photos to GPS by retrieval against geotagged images.

The top-level names are imported lazily so that ``import vgloc`` stays cheap
(no torch import, no side effects) until a name is actually used. No submodule
is named like a public function (``vgloc.locate`` is always the function).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vgloc._version import __version__

if TYPE_CHECKING:
    from vgloc.api import locate
    from vgloc.describers import Describer, ExtractionOptions, resolve_describer
    from vgloc.evaluation import EvalResult, evaluate, evaluate_ensemble
    from vgloc.localizer import Localizer, build_index
    from vgloc.models import create_model, list_models
    from vgloc.predict import Match, Prediction

__all__ = [
    "Describer",
    "EvalResult",
    "ExtractionOptions",
    "Localizer",
    "Match",
    "Prediction",
    "__version__",
    "build_index",
    "create_model",
    "evaluate",
    "evaluate_ensemble",
    "list_models",
    "locate",
    "resolve_describer",
]

# name -> the module that defines it (imported on first use).
_LAZY = {
    "build_index": "vgloc.indexing",
    "Localizer": "vgloc.localizer",
    "locate": "vgloc.api",
    "evaluate": "vgloc.evaluation",
    "evaluate_ensemble": "vgloc.evaluation",
    "EvalResult": "vgloc.evaluation",
    "ExtractionOptions": "vgloc.describers",
    "Describer": "vgloc.describers",
    "resolve_describer": "vgloc.describers",
    "create_model": "vgloc.models",
    "list_models": "vgloc.models",
    "Match": "vgloc.predict",
    "Prediction": "vgloc.predict",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        # Cache it as a module attribute: importing a submodule (e.g. vgloc.localizer) binds
        # that submodule's name on this package, and a public name must never be shadowed.
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vgloc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
