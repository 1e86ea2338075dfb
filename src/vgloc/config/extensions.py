"""The configuration sections that come from registrations: methods and add-ons, and their presets.

:class:`~vgloc.config.TrainConfig` asks here which extension sections exist; nothing
in :mod:`vgloc.config` names a method or an add-on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["METHOD_PRESETS", "extension_sections", "registries"]


def registries() -> tuple[Any, Any]:
    """The ``vgloc.training.methods`` and ``vgloc.training.addons`` modules (their registries filled)."""
    # Imported here, not at module level: the method and add-on packages import nothing
    # from this module, but keeping the import lazy makes any import order safe.
    from vgloc.training import addons, methods

    return methods, addons


def extension_sections() -> list[tuple[str, type[Any], Any]]:
    """``[(section name, dataclass, registration), ...]``: the registered methods, then add-ons."""
    methods, addons = registries()
    out: list[tuple[str, type[Any], Any]] = []
    for name in methods.method_names():
        m = methods.get_method(name)
        out.append((name, m.config_class, m))
    for name in addons.addon_names():
        a = addons.get_addon(name)
        out.append((name, a.config_class, a))
    return out


class _MethodPresets(Mapping[str, Mapping[str, tuple[Any, str]]]):
    """``{method: {dotted key: (value, source)}}``: each registered method's default preset."""

    def __getitem__(self, name: str) -> Mapping[str, tuple[Any, str]]:
        methods, _ = registries()
        if name not in methods.method_names():
            raise KeyError(name)
        preset: Mapping[str, tuple[Any, str]] = methods.get_method(name).preset()
        return preset

    def __iter__(self) -> Iterator[str]:
        methods, _ = registries()
        return iter(methods.method_names())

    def __len__(self) -> int:
        methods, _ = registries()
        return len(methods.method_names())


#: Values where the recipes differ from the shared defaults, read from the registered
#: methods: ``{method: {dotted key: (value, source)}}``.
METHOD_PRESETS: Mapping[str, Mapping[str, tuple[Any, str]]] = _MethodPresets()
