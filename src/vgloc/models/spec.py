"""Model spec strings: ``backbone[.cut]+aggregator[+head]``.

Examples: ``resnet18+gem+fc512``, ``resnet50.conv4+netvlad64``, ``tiny+avg``.

Canonical form (what ``str(ModelSpec)`` returns): lower case; the backbone's
default cut omitted (``resnet18.conv5`` -> ``resnet18``); the aggregator's numeric
argument always written (``netvlad`` -> ``netvlad64``); the ``none`` head omitted.
``ModelSpec.parse(str(s)) == s`` for every valid spec ``s``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from vgloc.registry import AGGREGATORS, BACKBONES, HEADS, Registry, UnknownNameError

__all__ = ["ModelSpec"]

_TOKEN = re.compile(r"^(?P<base>[a-z_][a-z0-9_]*?)(?P<arg>\d+)?$")


def _split_param(registry: Registry[Any], token: str, what: str) -> tuple[str, int | None]:
    """Resolve ``netvlad64`` -> ``("netvlad", 64)`` or ``gem`` -> ``("gem", None)``."""
    if token in registry and "arg" not in registry.metadata(token):
        return token, None
    m = _TOKEN.match(token)
    if m is not None and m.group("base") in registry:
        base, arg = m.group("base"), m.group("arg")
        if "arg" in registry.metadata(base):
            return base, (int(arg) if arg is not None else None)
        raise ValueError(f"{what} {base!r} takes no number, got {token!r}")
    # Unknown: suggest on the name with and without its number (netvald64 -> netvlad).
    close = registry.suggest(token) or (registry.suggest(m.group("base")) if m else [])
    hint = f"; did you mean: {', '.join(close)}?" if close else ""
    known = ", ".join(_display_names(registry))
    raise UnknownNameError(f"unknown {what} {token!r}{hint} (known: {known})")


def _display_names(registry: Registry[Any]) -> list[str]:
    """Registry names as written in specs (``netvlad{clusters}``)."""
    out = []
    for name in registry.names():
        meta = registry.metadata(name)
        out.append(f"{name}{{{meta['arg']}}}" if "arg" in meta else name)
    return out


@dataclass(frozen=True)
class ModelSpec:
    """A parsed, validated model spec.

    Args:
        backbone: Backbone registry name (``"resnet50"``).
        aggregator: Aggregator registry name without its number (``"netvlad"``).
        head: Head registry name without its number (``"fc"``), ``"none"`` by default.
        cut: Backbone output stage; ``None`` means the backbone's default.
        aggregator_arg: The aggregator's number (NetVLAD clusters); ``None`` means its
            default.
        head_arg: The head's number (fc output size).

    Raises:
        UnknownNameError: A part is not registered (the message suggests close names).
        ValueError: A cut or numeric argument is not valid for its part.

    Example:
        >>> s = ModelSpec.parse("ResNet50.conv4+NetVLAD")
        >>> str(s)
        'resnet50.conv4+netvlad64'
        >>> ModelSpec.parse(str(s)) == s
        True
    """

    backbone: str
    aggregator: str
    head: str = "none"
    cut: str | None = None
    aggregator_arg: int | None = None
    head_arg: int | None = None

    def __post_init__(self) -> None:
        bb = BACKBONES.entry(self.backbone)
        channels = bb.metadata["channels"]
        cut = self.cut or bb.metadata["default_cut"]
        if cut not in channels:
            raise ValueError(
                f"backbone {self.backbone!r} has no cut {cut!r}; "
                f"available: {', '.join(f'.{c}' for c in sorted(channels))}"
            )
        object.__setattr__(self, "cut", cut)
        agg_arg = self._check_arg(AGGREGATORS, self.aggregator, self.aggregator_arg, "aggregator")
        object.__setattr__(self, "aggregator_arg", agg_arg)
        head_arg = self._check_arg(HEADS, self.head, self.head_arg, "head")
        object.__setattr__(self, "head_arg", head_arg)

    @staticmethod
    def _check_arg(registry: Registry[Any], name: str, arg: int | None, what: str) -> int | None:
        meta = registry.entry(name).metadata
        if "arg" not in meta:
            if arg is not None:
                raise ValueError(f"{what} {name!r} takes no number, got {name}{arg}")
            return None
        if arg is None:
            arg = meta.get("arg_default")
            if arg is None:
                raise ValueError(f"{what} {name!r} needs its {meta['arg']}, e.g. {name}512")
        if isinstance(arg, bool) or not isinstance(arg, int) or arg <= 0:
            raise ValueError(f"{what} {name!r}: {meta['arg']} must be a positive int, got {arg!r}")
        return arg

    @classmethod
    def parse(cls, spec: str | ModelSpec) -> ModelSpec:
        """Parse ``backbone[.cut]+aggregator[+head]`` (case-insensitive).

        Args:
            spec: The spec string (or a ModelSpec, returned unchanged).

        Returns:
            The validated spec.

        Raises:
            UnknownNameError: Unknown backbone, aggregator or head, with suggestions.
            ValueError: Malformed string, unknown cut or invalid number.
        """
        if isinstance(spec, ModelSpec):
            return spec
        if not isinstance(spec, str):
            raise TypeError(f"a model spec is a string like 'resnet18+gem+fc512', got {spec!r}")
        text = spec.strip().lower().replace(" ", "")
        parts = text.split("+")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(
                f"malformed model spec {spec!r}: expected backbone[.cut]+aggregator[+head], "
                "e.g. 'resnet18+gem+fc512' or 'resnet50.conv4+netvlad64'"
            )
        bb_part, agg_part = parts[0], parts[1]
        head_part = parts[2] if len(parts) == 3 else "none"
        backbone, _, cut = bb_part.partition(".")
        if backbone not in BACKBONES:
            raise UnknownNameError(BACKBONES.unknown_message(backbone))
        aggregator, agg_arg = _split_param(AGGREGATORS, agg_part, "aggregator")
        head, head_arg = _split_param(HEADS, head_part, "head")
        return cls(backbone, aggregator, head, cut or None, agg_arg, head_arg)

    @property
    def out_channels(self) -> int:
        """Channels of the backbone feature map at this cut."""
        return int(BACKBONES.metadata(self.backbone)["channels"][self.cut])

    def __str__(self) -> str:
        default_cut = BACKBONES.metadata(self.backbone)["default_cut"]
        out = self.backbone if self.cut == default_cut else f"{self.backbone}.{self.cut}"
        out += f"+{self.aggregator}{self.aggregator_arg if self.aggregator_arg is not None else ''}"
        if self.head != "none":
            out += f"+{self.head}{self.head_arg if self.head_arg is not None else ''}"
        return out
