"""Named registries of components (backbones, aggregators, heads, re-rankers).

One :class:`Registry` per kind maps a short name to a builder (a class or a
factory function) plus free-form metadata (output channels, a description, ...).
Modules register their components with a decorator at import time, and user
input (spec strings, config files, CLI flags) is resolved through
:meth:`Registry.get`, which answers an unknown name with the closest known ones.

Example:
    >>> from vgloc.registry import Registry
    >>> POOLS = Registry("pool")
    >>> @POOLS.register("avg", description="global average pooling")
    ... def build_avg():
    ...     ...
    >>> POOLS.names("a*")
    ['avg']
    >>> POOLS.get("agv")  # doctest: +SKIP
    UnknownNameError: unknown pool 'agv'; did you mean: avg? (known: avg)
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar, overload

__all__ = [
    "AGGREGATORS",
    "BACKBONES",
    "COMMANDS",
    "CROSSVIEW_LOSSES",
    "CROSSVIEW_NETWORKS",
    "DESCRIBERS",
    "ENSEMBLES",
    "HEADS",
    "METRICS",
    "PREDICTORS",
    "PUBLISHED_MODELS",
    "RERANKERS",
    "TRAINING_ADDONS",
    "TRAINING_METHODS",
    "Registry",
    "RegistryEntry",
    "UnknownNameError",
]

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """An unknown registry name; the message lists close matches.

    It is both a ``KeyError`` (a failed lookup) and a ``ValueError`` (bad user
    input), so callers may catch whichever reads naturally where they are.
    """

    def __str__(self) -> str:
        # KeyError.__str__ would show the message in quotes, like a repr.
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class RegistryEntry(Generic[T]):
    """One registered component.

    Attributes:
        name: The registered name.
        obj: The registered object (class or factory function).
        metadata: Read-only metadata given at registration.
    """

    name: str
    obj: T
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        """The ``description`` metadata, or an empty string."""
        return str(self.metadata.get("description", ""))


class Registry(Generic[T]):
    """A name -> object table for one kind of component.

    Args:
        kind: What the entries are, in the singular ("backbone"); used in error
            messages.

    Example:
        >>> HEADS = Registry("head")
        >>> @HEADS.register("none", dim="input")
        ... class NoHead: ...
        >>> HEADS.get("none") is NoHead
        True
        >>> HEADS.metadata("none")["dim"]
        'input'
    """

    def __init__(self, kind: str) -> None:
        if not kind:
            raise ValueError("a registry needs a non-empty kind, e.g. 'backbone'")
        self.kind = kind
        self._entries: dict[str, RegistryEntry[T]] = {}

    # -- registration ------------------------------------------------------------
    @overload
    def register(
        self, name: str, obj: None = None, *, override: bool = False, **metadata: Any
    ) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T, *, override: bool = False, **metadata: Any) -> T: ...

    def register(
        self, name: str, obj: T | None = None, *, override: bool = False, **metadata: Any
    ) -> T | Callable[[T], T]:
        """Register ``obj`` under ``name``; without ``obj``, return a decorator.

        Args:
            name: Registry name: a non-empty string without whitespace.
            obj: The object to register. Omit it to use ``register`` as a decorator.
            override: Replace an existing entry of the same name instead of raising.
            **metadata: Free-form metadata stored with the entry (e.g. ``channels=512``,
                ``description="..."``).

        Returns:
            ``obj`` itself (so decorated classes and functions stay usable), or the
            decorator when ``obj`` is omitted.

        Raises:
            ValueError: The name is empty or contains whitespace, or it is already
                registered and ``override`` is false.
        """
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise ValueError(f"invalid {self.kind} name {name!r}: use a non-empty word")

        def add(item: T) -> T:
            if name in self._entries and not override:
                raise ValueError(
                    f"{self.kind} {name!r} is already registered "
                    f"(to {self._entries[name].obj!r}); pass override=True to replace it"
                )
            self._entries[name] = RegistryEntry(name, item, MappingProxyType(dict(metadata)))
            return item

        if obj is None:
            return add
        return add(obj)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (mainly for tests that register temporary entries)."""
        self.entry(name)  # raises the usual error for unknown names
        del self._entries[name]

    # -- lookup ------------------------------------------------------------------
    def entry(self, name: str) -> RegistryEntry[T]:
        """Return the full entry of ``name``.

        Raises:
            UnknownNameError: ``name`` is not registered; the message lists close
                matches and the known names.
        """
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.unknown_message(name)) from None

    def get(self, name: str) -> T:
        """Return the object registered under ``name``.

        Raises:
            UnknownNameError: ``name`` is not registered; the message lists close
                matches and the known names.
        """
        return self.entry(name).obj

    def metadata(self, name: str) -> Mapping[str, Any]:
        """Return the read-only metadata of ``name``."""
        return self.entry(name).metadata

    def claimant(self, spec: str) -> T:
        """The entry that claims ``spec``: the first (by name) whose ``obj.claims(spec)`` is true,
        else the one registered with ``fallback=True``.

        For kinds whose members read spec strings (describers, re-rankers): each registered
        class says which specs it reads, and one member takes everything else.

        Raises:
            RuntimeError: nothing claims ``spec`` and no fallback is registered.
        """
        fallback = None
        for name in self.names():
            entry = self._entries[name]
            if entry.metadata.get("fallback"):
                fallback = entry.obj
            elif entry.obj.claims(spec):  # type: ignore[attr-defined]
                return entry.obj
        if fallback is None:
            raise RuntimeError(f"no {self.kind} claims {spec!r} and no fallback {self.kind} is registered")
        return fallback

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching a shell-style ``pattern`` (case-insensitive).

        Args:
            pattern: An ``fnmatch`` pattern such as ``"resnet*"``.

        Returns:
            The matching names, sorted.
        """
        pat = pattern.lower()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n.lower(), pat))

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """Up to ``n`` registered names that look like ``name`` (difflib ratio >= 0.5)."""
        lowered = {k.lower(): k for k in self._entries}
        hits = difflib.get_close_matches(str(name).lower(), list(lowered), n=n, cutoff=0.5)
        return [lowered[h] for h in hits]

    def unknown_message(self, name: object) -> str:
        """The error text for an unknown ``name`` (close matches first, then all names)."""
        close = self.suggest(str(name))
        hint = f"; did you mean: {', '.join(close)}?" if close else ""
        known = ", ".join(self.names()) or "none registered"
        return f"unknown {self.kind} {name!r}{hint} (known: {known})"

    # -- container protocol --------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} entries)"


# One registry per kind of component. They are filled by the modules that define
# the components, at import time of the package that owns them:
#   BACKBONES, AGGREGATORS, HEADS   vgloc.models         (network parts of a spec string)
#   DESCRIBERS                      vgloc.describers     (spec -> images-to-descriptors object)
#   ENSEMBLES                       vgloc.ensemble       (several models' ranked lists -> one: nif, sif, rrf)
#   PREDICTORS                      vgloc.predict        (neighbours -> position + confidence)
#   METRICS                         vgloc.evaluation     (predictions + truth -> numbers)
#   RERANKERS                       vgloc.rerank         (top-K candidates -> re-ordered)
#   TRAINING_METHODS                vgloc.training       (trainer, config section, preset, help)
#   TRAINING_ADDONS                 vgloc.training       (loss terms, parameters, state through hooks)
#   COMMANDS                        vgloc.cli            (one module per command)
#   CROSSVIEW_LOSSES                vgloc.crossview      (ground/aerial pair losses)
#   CROSSVIEW_NETWORKS              vgloc.crossview      (embedding, classification, hybrid)
BACKBONES: Registry[Any] = Registry("backbone")
AGGREGATORS: Registry[Any] = Registry("aggregator")
HEADS: Registry[Any] = Registry("head")
DESCRIBERS: Registry[Any] = Registry("describer")
ENSEMBLES: Registry[Any] = Registry("ensemble")
PREDICTORS: Registry[Any] = Registry("predictor")
METRICS: Registry[Any] = Registry("metric")
RERANKERS: Registry[Any] = Registry("reranker")
TRAINING_METHODS: Registry[Any] = Registry("training method")
TRAINING_ADDONS: Registry[Any] = Registry("training add-on")
COMMANDS: Registry[Any] = Registry("command")
PUBLISHED_MODELS: Registry[Any] = Registry("published model")
CROSSVIEW_LOSSES: Registry[Any] = Registry("cross-view loss")
CROSSVIEW_NETWORKS: Registry[Any] = Registry("cross-view network")
