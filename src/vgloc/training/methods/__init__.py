"""Training methods, each registered in :data:`vgloc.registry.TRAINING_METHODS`.

Importing this package registers the built-in methods: :mod:`.triplet` (the VG
benchmark's triplets) and :mod:`.cosplace`. A new method is a package here (config
section, trainer, registration; see :mod:`.base`) plus its name in :data:`BUILTIN`.
"""

from __future__ import annotations

import importlib

from vgloc.training.methods.base import (
    DEFAULT_METHOD,
    Preset,
    TrainingMethod,
    get_method,
    method_names,
    register_method,
)

__all__ = [
    "BUILTIN",
    "DEFAULT_METHOD",
    "Preset",
    "TrainingMethod",
    "get_method",
    "method_names",
    "register_method",
]

#: Packages of the built-in methods (imported, so registered, with this package).
BUILTIN: tuple[str, ...] = ("triplet", "cosplace", "geocell")

for _name in BUILTIN:
    importlib.import_module(f"{__name__}.{_name}")
