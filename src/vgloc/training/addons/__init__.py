"""Training add-ons: behaviour plugged into every trainer through the engine's hooks.

Importing this package registers the built-in add-ons (:mod:`.domain_adapt`, :mod:`.snapshots`). The
contract and the registry are in :mod:`.base`; a new add-on is a module here with its
config dataclass, its :class:`~vgloc.training.addons.base.TrainerAddon` subclass and
its registration, plus its name in :data:`BUILTIN`.
"""

from __future__ import annotations

import importlib

from vgloc.training.addons.base import (
    ADDONS,
    StepBatch,
    StepOutputs,
    TrainerAddon,
    TrainingAddon,
    addon_names,
    build_addons,
    get_addon,
    register_addon,
)

__all__ = [
    "ADDONS",
    "BUILTIN",
    "StepBatch",
    "StepOutputs",
    "TrainerAddon",
    "TrainingAddon",
    "addon_names",
    "build_addons",
    "get_addon",
    "register_addon",
]

#: Modules of the built-in add-ons (imported, so registered, with this package).
BUILTIN: tuple[str, ...] = ("domain_adapt", "snapshots")

for _name in BUILTIN:
    importlib.import_module(f"{__name__}.{_name}")
