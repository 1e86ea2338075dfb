"""The whole training configuration: :class:`TrainConfig`, resolved as defaults -> preset -> YAML -> ``key=value``.

A :class:`TrainConfig` has the shared sections (:mod:`vgloc.config.sections`), one
section per registered training method (``triplet``, ``cosplace``: their dataclasses
live with the method, see :mod:`vgloc.training.methods`) and one per registered
add-on (``snapshots``; :mod:`vgloc.training.addons`). Nothing here names a method:
a new method or add-on brings its section with its registration.

Every value is recorded with where it came from (:meth:`TrainConfig.source`):
``default``, ``preset``, ``file``, ``override``, ``given`` (a dict, e.g. a checkpoint's
config) or ``adapted`` (changed by training to fit the data). Training only adapts
keys that were not set explicitly (``file``, ``override``, ``given``).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from vgloc.config.extensions import METHOD_PRESETS, extension_sections, registries
from vgloc.config.sections import (
    AugmentConfig,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RuntimeConfig,
    ScheduleConfig,
    ValidationConfig,
)
from vgloc.config.values import (
    ConfigError,
    coerce_value,
    flatten,
    plain,
    split_override,
)

__all__ = [
    "EXPLICIT_SOURCES",
    "METHOD_PRESETS",
    "TrainConfig",
    "apply_overrides",
    "config_diff",
    "extension_sections",
    "load_config_file",
    "resolve_config",
    "save_config",
]

#: Sources of values the user chose; training never adapts these.
EXPLICIT_SOURCES: tuple[str, ...] = ("file", "override", "given")

# The shared sections, in the order config.yaml lists them around the extensions.
_HEAD = ("data", "model", "optim", "schedule")
_TAIL = ("augment", "validation", "runtime")


def _default_sections() -> dict[str, Any]:
    return {name: cls() for name, cls, _ in extension_sections()}


@dataclass
class TrainConfig:
    """A complete training run (see the module docstring for how it is resolved).

    Attributes:
        method: A registered training method (``triplet``, ``cosplace``, ...).
        data: :class:`~vgloc.config.DataConfig`.
        model: :class:`~vgloc.config.ModelConfig`.
        optim: :class:`~vgloc.config.OptimConfig`.
        schedule: :class:`~vgloc.config.ScheduleConfig`.
        augment: :class:`~vgloc.config.AugmentConfig`.
        validation: :class:`~vgloc.config.ValidationConfig`.
        runtime: :class:`~vgloc.config.RuntimeConfig`.
        sections: The method and add-on sections by name; each is also an attribute
            (``cfg.cosplace``, ``cfg.snapshots``) and a key prefix (``cosplace.M``).
    """

    method: str = "triplet"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    sections: dict[str, Any] = field(default_factory=_default_sections, repr=False)

    def __post_init__(self) -> None:
        # Where each value came from (not a field: equality and to_dict ignore it).
        self._sources: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not regular attributes: the extension sections.
        sections = self.__dict__.get("sections")
        if sections is not None and name in sections:
            return sections[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or section {name!r}")

    # -- sections ---------------------------------------------------------------------
    def section_names(self) -> list[str]:
        """Top-level sections in config.yaml order: shared, method and add-on, shared."""
        return [*_HEAD, *self.sections, *_TAIL]

    def section(self, name: str) -> Any:
        """The section ``name`` (shared or extension)."""
        if name in self.sections:
            return self.sections[name]
        if name in (*_HEAD, *_TAIL):
            return getattr(self, name)
        raise ConfigError(_unknown_key_message(name))

    @property
    def method_section(self) -> Any:
        """The chosen method's own section (e.g. ``cfg.cosplace`` for ``method: cosplace``)."""
        return self.section(self.method)

    @property
    def val_image_size(self) -> tuple[int, int]:
        """``validation.image_size``, or ``data.image_size`` when that is None."""
        return self.validation.image_size or self.data.image_size

    # -- provenance -------------------------------------------------------------------
    def source(self, key: str) -> str:
        """Where the value of ``key`` came from: ``default``, ``preset``, ``file``, ``override``,
        ``given`` or ``adapted``."""
        return self._sources.get(key, "default")

    def is_explicit(self, key: str) -> bool:
        """True when the user set ``key`` (a file, an override, a given dict)."""
        return self.source(key) in EXPLICIT_SOURCES

    def set(self, key: str, value: Any, *, source: str = "override", from_string: bool = False) -> None:
        """Set the value at a dotted key in place, recording ``source``.

        Raises:
            ConfigError: Unknown key or a value of the wrong type.
        """
        _set(self, key, value, from_string=from_string, source=source)

    def copy(self) -> TrainConfig:
        """A deep copy, sources included."""
        return copy.deepcopy(self)

    # -- conversion -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists): YAML/JSON-ready and weights_only-loadable.

        Returns:
            ``{"method": ..., "data": {...}, ...}``.
        """
        out: dict[str, Any] = {"method": self.method}
        for name in self.section_names():
            out[name] = plain(dataclasses.asdict(self.section(name)))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build a config from a nested dict; missing keys keep the dataclass defaults.

        The method preset is *not* applied (use :func:`resolve_config` for that); the
        dict's values count as set explicitly (source ``given``).

        Args:
            data: Nested sections as in ``config.yaml``.

        Returns:
            The config (not yet validated).

        Raises:
            ConfigError: Unknown keys (with suggestions) or values of the wrong type.
        """
        cfg = cls()
        _merge(cfg, data, "", source="given")
        return cfg

    def get(self, key: str) -> Any:
        """The value at a dotted key, e.g. ``"optim.lr"``."""
        obj: Any = self
        for part in key.split("."):
            if part not in _children(obj):
                raise ConfigError(_unknown_key_message(key))
            obj = self.section(part) if obj is self else getattr(obj, part)
        return obj

    # -- checks -----------------------------------------------------------------------
    def validate(self) -> TrainConfig:
        """Check values and cross-field rules; return ``self`` for chaining.

        Raises:
            ConfigError: Listing every problem found, each with its key.
        """
        from vgloc.config.checks import check_shared

        methods, _ = registries()
        problems: list[str] = []
        for key, value in flatten(self.to_dict()):
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(f"{key}={value} is not a finite number")
        names = methods.method_names()
        if self.method not in names:
            problems.append(f"method={self.method!r}: choose one of {', '.join(names)}")
        problems += check_shared(self)
        for name, _cls, registration in extension_sections():
            if registration.check is not None:
                problems += registration.check(self.section(name), self)
        if problems:
            raise ConfigError("invalid training configuration:\n  - " + "\n  - ".join(problems))
        return self


# --------------------------------------------------------------------------- resolution


def resolve_config(
    method: str | None = None,
    file: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    *,
    base: TrainConfig | Mapping[str, Any] | None = None,
    validate: bool = True,
    preset: str | None = None,
) -> TrainConfig:
    """Resolve defaults -> method preset -> YAML file -> ``key=value`` overrides.

    Args:
        method: A registered method; None takes the file's ``method`` (or an override
            ``method=...``), else ``triplet``. A file naming a different method is an
            error.
        file: Optional YAML file with the nested sections.
        overrides: ``key=value`` strings with dotted keys.
        base: Start from this config instead of defaults + preset (e.g. a
            checkpoint's config when resuming); no preset is applied then.
        validate: Run :meth:`TrainConfig.validate` at the end.
        preset: The method's preset to apply (default: its first).

    Returns:
        The resolved config.

    Raises:
        ConfigError: Unknown method, keys or preset, unparsable values, a method
            conflict, or (with ``validate``) values that break a rule.
    """
    methods, _ = registries()
    from_file = load_config_file(file) if file is not None else {}
    pairs = [split_override(o) for o in overrides]
    file_method = from_file.get("method")
    over_method = next((v for k, v in pairs if k == "method"), None)
    if base is not None:
        cfg = base.copy() if isinstance(base, TrainConfig) else TrainConfig.from_dict(base)
        chosen: str = cfg.method
        if method is not None and method != chosen:
            raise ConfigError(f"the base configuration is for method {chosen!r}, not {method!r}")
    else:
        chosen = method or file_method or over_method or methods.DEFAULT_METHOD
        known = methods.method_names()
        if chosen not in known:
            close = difflib.get_close_matches(str(chosen), known, n=2)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise ConfigError(f"unknown method {chosen!r}{hint} (choose one of {', '.join(known)})")
        cfg = TrainConfig()
        cfg.method = chosen
        try:
            values = methods.get_method(chosen).preset(preset)
        except KeyError as err:
            raise ConfigError(str(err.args[0])) from None
        for key, (value, _source) in values.items():
            _set(cfg, key, value, source="preset")
    if file_method is not None and file_method != chosen:
        raise ConfigError(f"{file} is a {file_method!r} configuration, but method {chosen!r} was asked for")
    if over_method is not None and over_method != chosen:
        raise ConfigError(f"override method={over_method} conflicts with method {chosen!r}")
    _merge(cfg, from_file, "", source="file", where=str(file) if file is not None else "")
    cfg = apply_overrides(cfg, [o for o in overrides if split_override(o)[0] != "method"], validate=False)
    return cfg.validate() if validate else cfg


def apply_overrides(cfg: TrainConfig, overrides: Iterable[str], *, validate: bool = True) -> TrainConfig:
    """Apply ``key=value`` overrides to a copy of ``cfg``.

    Values are parsed for the field's type: numbers (``1e-5``), booleans
    (``true``/``false``/``yes``/``no``), ``null``/``none`` for optional fields,
    comma lists (``96,128``, ``queries,queries_night``) or YAML flow syntax
    (``[96, 128]``, ``{alpha: 10}``). A key one level inside a mapping field sets one
    entry and keeps the others (``cosplace.loss_params.s=30``).

    Args:
        cfg: The config (not modified).
        overrides: Strings ``section.key=value``.
        validate: Run :meth:`TrainConfig.validate` on the result.

    Returns:
        The new config.

    Raises:
        ConfigError: Malformed override, unknown key (with suggestions) or bad value.
    """
    out = cfg.copy()
    for text in overrides:
        key, raw = split_override(text)
        if key == "method":
            if raw != out.method:
                raise ConfigError(
                    f"method cannot be changed by an override (config is {out.method!r}, got {raw!r})"
                )
            continue
        _set(out, key, raw, from_string=True, source="override")
    return out.validate() if validate else out


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config file into a nested dict (keys checked later, on merge).

    Args:
        path: The YAML file.

    Returns:
        The mapping (empty for an empty file).

    Raises:
        FileNotFoundError: No such file.
        ConfigError: Not YAML, or not a mapping at the top level.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{p} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{p} must hold a mapping of sections (data:, model:, optim: ...), got {type(data).__name__}"
        )
    return data


def save_config(cfg: TrainConfig, path: str | os.PathLike[str]) -> Path:
    """Write ``cfg`` as YAML, atomically.

    Args:
        cfg: The config.
        path: Destination, conventionally ``<run>/config.yaml``.

    Returns:
        ``path``.
    """
    from vgloc.io import write_text_atomic

    header = "# vgloc training configuration (resolved): defaults -> method preset -> file -> overrides\n"
    adapted = [k for k, s in cfg._sources.items() if s == "adapted"]
    if adapted:
        header += f"# adapted to the training data (data.adapt): {', '.join(sorted(adapted))}\n"
    return write_text_atomic(path, header + yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def config_diff(
    a: TrainConfig | Mapping[str, Any], b: TrainConfig | Mapping[str, Any]
) -> list[tuple[str, Any, Any]]:
    """Keys whose values differ between two configs.

    Args:
        a: First config (or its dict).
        b: Second config (or its dict).

    Returns:
        ``[(dotted key, value in a, value in b), ...]`` sorted by key; keys missing
        on one side show ``"<missing>"``.
    """
    fa = dict(flatten(a.to_dict() if isinstance(a, TrainConfig) else plain(dict(a))))
    fb = dict(flatten(b.to_dict() if isinstance(b, TrainConfig) else plain(dict(b))))
    out = []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, "<missing>"), fb.get(key, "<missing>")
        if va != vb:
            out.append((key, va, vb))
    return out


# --------------------------------------------------------------------------- internals


def _children(obj: Any) -> list[str]:
    if isinstance(obj, TrainConfig):
        return obj.section_names()
    if dataclasses.is_dataclass(obj):
        return [f.name for f in dataclasses.fields(obj)]
    return []


def _child(obj: Any, name: str) -> Any:
    return obj.section(name) if isinstance(obj, TrainConfig) else getattr(obj, name)


def _all_keys() -> list[str]:
    return [k for k, _ in flatten(TrainConfig().to_dict())]


def _unknown_key_message(key: str, where: str = "") -> str:
    keys = _all_keys()
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    if not close:  # match the last part alone: "lr" -> "optim.lr", "pateince" -> "schedule.patience"
        tails = difflib.get_close_matches(
            key.rsplit(".", 1)[-1], sorted({k.rsplit(".", 1)[-1] for k in keys}), n=3
        )
        close = [k for k in keys if k.rsplit(".", 1)[-1] in tails][:3]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    sections = ", ".join(TrainConfig().section_names())
    return f"unknown config key {key!r}{where}{hint} (sections: {sections})"


def _set(
    cfg: TrainConfig, key: str, value: Any, *, from_string: bool = False, where: str = "", source: str
) -> None:
    parts = key.split(".")
    obj: Any = cfg
    for i, part in enumerate(parts):
        if part not in _children(obj):
            raise ConfigError(_unknown_key_message(key, where))
        if obj is cfg and len(parts) == 1:  # a whole section, e.g. optim=3
            raise ConfigError(_section_message(cfg, key, where))
        if i == len(parts) - 1:
            hints = get_type_hints(type(obj))
            target = getattr(obj, part)
            if dataclasses.is_dataclass(target):
                raise ConfigError(_section_message(cfg, key, where))
            setattr(obj, part, coerce_value(value, hints[part], key, from_string, where))
            cfg._sources[key] = source
            return
        if i == len(parts) - 2 and obj is not cfg and get_origin(get_type_hints(type(obj))[part]) is dict:
            # One entry of a mapping field: ``cosplace.loss_params.s=30`` updates ``s`` and keeps the rest.
            value_type = get_args(get_type_hints(type(obj))[part])[1]
            entries = dict(getattr(obj, part))
            entries[parts[-1]] = coerce_value(value, value_type, key, from_string, where)
            setattr(obj, part, entries)
            cfg._sources[".".join(parts[:-1])] = source
            return
        obj = _child(obj, part)


def _section_message(cfg: TrainConfig, key: str, where: str) -> str:
    subkeys = ", ".join(f"{key}.{n}" for n in _children(cfg.get(key)))
    return f"{key!r}{where} is a section, not a value; set one of its keys: {subkeys}"


def _merge(cfg: TrainConfig, data: Mapping[str, Any], prefix: str, *, source: str, where: str = "") -> None:
    at = f" in {where}" if where else ""
    for k, v in data.items():
        key = f"{prefix}{k}"
        if prefix == "" and k == "method":
            methods, _ = registries()
            if v not in methods.method_names():
                raise ConfigError(
                    f"unknown method {v!r}{at}; choose one of {', '.join(methods.method_names())}"
                )
            cfg.method = v
            continue
        try:
            target = cfg.get(key)
        except ConfigError:
            raise ConfigError(_unknown_key_message(key, at)) from None
        if dataclasses.is_dataclass(target):
            if not isinstance(v, Mapping):
                raise ConfigError(f"{key!r}{at} is a section and needs a mapping, got {v!r}")
            _merge(cfg, v, key + ".", source=source, where=where)
        else:
            _set(cfg, key, v, where=at, source=source)
