"""Parsing and checking of configuration values: ``key=value`` strings and YAML values to field types.

Every value that enters a :class:`~vgloc.config.TrainConfig` goes through
:func:`coerce_value`, which converts it to the field's annotated type (``float`` for
``optim.lr=1e-5`` although YAML 1.1 reads ``1e-5`` as a string; ``(96, 128)`` for
``data.image_size=96,128``) or raises a :class:`ConfigError` that names the key, the
value and the expected type.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin

import yaml

__all__ = [
    "ConfigError",
    "coerce_value",
    "flatten",
    "parse_recall_metric",
    "parse_sequence",
    "plain",
    "split_override",
    "type_name",
]


class ConfigError(ValueError):
    """A configuration key or value that cannot be used; the message says which and why."""


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null", "~", ""}


def plain(obj: Any) -> Any:
    """``obj`` with tuples as lists and keys as strings (YAML/JSON-ready, weights_only-loadable)."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def flatten(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``[(dotted key, value), ...]`` of a nested dict; ``*params`` mappings stay one value."""
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        # loss_params are free-form dicts: compare them as one value.
        if isinstance(v, dict) and not k.endswith("params"):
            out += flatten(v, key + ".")
        else:
            out.append((key, v))
    return out


def split_override(text: str) -> tuple[str, str]:
    """``"optim.lr=1e-4"`` -> ``("optim.lr", "1e-4")``.

    Raises:
        ConfigError: No ``=`` or an empty key.
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. optim.lr=1e-4)")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    return key, value.strip()


def type_name(tp: Any) -> str:
    """A readable name of a type annotation (``'adam' | 'sgd'``, ``int | null``)."""
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in get_args(tp))
    if origin is not None:
        return f"{origin.__name__}[{', '.join(type_name(a) for a in get_args(tp))}]"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def coerce_value(value: Any, tp: Any, key: str, from_string: bool = False, where: str = "") -> Any:
    """Convert ``value`` to the annotated type ``tp``.

    Args:
        value: A string from ``key=value``, or a YAML value.
        tp: The field's type annotation.
        key: Dotted key, for messages.
        from_string: The value came from a ``key=value`` string.
        where: Where it came from (`` in file.yaml``), for messages.

    Returns:
        The converted value.

    Raises:
        ConfigError: Naming ``key``, the value and the expected type.
    """

    def fail(reason: str = "") -> ConfigError:
        extra = f": {reason}" if reason else ""
        return ConfigError(f"{key}={value!r}{where}: expected {type_name(tp)}{extra}")

    origin = get_origin(tp)
    args = get_args(tp)
    if origin in (Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if type(None) in args and (
            value is None or (isinstance(value, str) and value.strip().lower() in _NONE)
        ):
            return None
        for a in non_none:
            try:
                return coerce_value(value, a, key, from_string, where)
            except ConfigError:
                continue
        raise fail()
    if origin is Literal:
        if value in args:
            return value
        if isinstance(value, str):
            close = difflib.get_close_matches(value, [str(a) for a in args], n=2)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise fail(f"not one of the choices{hint}")
        raise fail()
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise fail("use true or false")
    if tp is int:
        return _to_int(value, fail)
    if tp is float:
        if isinstance(value, bool):
            raise fail()
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                raise fail() from None
        raise fail()
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. a YAML number where a name is expected
        raise fail()
    if origin in (list, tuple):
        items = value
        if isinstance(value, str):
            items = parse_sequence(value)
        if not isinstance(items, (list, tuple)):
            raise fail("give a list, e.g. 1,5,10 or [1, 5, 10]")
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(coerce_value(v, args[0], key, from_string, where) for v in items)
            if len(items) != len(args):
                raise fail(f"needs exactly {len(args)} values, got {len(items)}")
            return tuple(
                coerce_value(v, a, key, from_string, where) for v, a in zip(items, args, strict=True)
            )
        return [coerce_value(v, args[0], key, from_string, where) for v in items]
    if origin is dict:
        items = value
        if isinstance(value, str):
            try:
                items = yaml.safe_load(value) if value.strip() else {}
            except yaml.YAMLError:
                raise fail("give a mapping, e.g. {alpha: 10}") from None
        if items is None:
            items = {}
        if not isinstance(items, Mapping):
            raise fail("give a mapping, e.g. {alpha: 10}")
        kt, vt = args
        return {
            coerce_value(k, kt, key, from_string, where): coerce_value(v, vt, key, from_string, where)
            for k, v in items.items()
        }
    raise ConfigError(f"{key}: unsupported field type {tp!r}")  # pragma: no cover - a bug in a section


def _to_int(value: Any, fail: Any) -> int:
    if isinstance(value, bool):
        raise fail()
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip().replace("_", ""))
        except ValueError:
            try:
                f = float(value)
            except ValueError:
                raise fail() from None
            if f.is_integer():
                return int(f)
    raise fail()


def parse_sequence(text: str) -> list[Any]:
    """``"96,128"``, ``"96x128"`` or ``"[96, 128]"`` -> a list of strings/values.

    Raises:
        ConfigError: A ``[...]`` that is not a YAML list.
    """
    s = text.strip()
    if s.startswith("["):
        try:
            loaded = yaml.safe_load(s)
        except yaml.YAMLError as err:
            raise ConfigError(f"cannot parse list {text!r}: {err}") from None
        if not isinstance(loaded, list):
            raise ConfigError(f"cannot parse list {text!r}")
        return loaded
    if not s:
        return []
    sep = "," if "," in s else ("x" if "x" in s and all(p.strip().isdigit() for p in s.split("x")) else None)
    return [p.strip() for p in s.split(sep)] if sep else [s]


def parse_recall_metric(name: str) -> int | None:
    """``"R@5"`` -> 5; None when the name is not of that form."""
    text = name.strip().upper()
    if not text.startswith("R@"):
        return None
    try:
        n = int(text[2:])
    except ValueError:
        return None
    return n if n >= 1 else None
