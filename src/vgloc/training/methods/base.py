"""The training-method contract: what a method registers in :data:`vgloc.registry.TRAINING_METHODS`.

A method is a package under ``vgloc.training.methods`` (or anywhere, for a plugin)
that registers one :class:`TrainingMethod` at import time::

    register_method(TrainingMethod(
        name="geocell",
        config_class=GeoCellConfig,           # a dataclass: the config section `geocell.*`
        trainer="vgloc.training.methods.geocell.trainer:GeoCellTrainer",
        presets={"paper": {"schedule.epochs": (30, "paper table 2"), ...}},
        help="one line for `vgloc train --help`",
        description="a paragraph for `vgloc train geocell --help`",
        check=check_geocell,                   # (section, config) -> [problem, ...]
    ))

From that alone the configuration gets a ``geocell`` section (defaults -> preset ->
file -> ``--set``), ``vgloc train geocell`` exists with the shared options, and
:func:`vgloc.training.train` runs the trainer. Nothing in the engine, the config
module or the CLI names a method.

The registration module must stay cheap to import (no torch): the configuration and
the CLI's help import it. The trainer class is therefore named by its import path and
imported when a run starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vgloc.registry import TRAINING_METHODS

if TYPE_CHECKING:
    from pathlib import Path

    from vgloc.config import TrainConfig
    from vgloc.training.engine import Trainer, TrainResult

__all__ = [
    "DEFAULT_METHOD",
    "Preset",
    "TrainingMethod",
    "get_method",
    "method_names",
    "register_method",
]

#: ``{dotted key: (value, source)}``: values a preset sets over the dataclass defaults,
#: each with where it comes from (``"CP parser.py:31-33"``).
Preset = Mapping[str, tuple[Any, str]]

#: The method of a configuration that names none (the VG benchmark's triplets, as before
#: methods were registered).
DEFAULT_METHOD = "triplet"


@dataclass(frozen=True)
class TrainingMethod:
    """One registered training method.

    Attributes:
        name: The method's name: ``vgloc train NAME``, ``method: NAME`` in a config
            file, and the name of its config section.
        config_class: Dataclass of the method's config section; its defaults are the
            method's recipe.
        trainer: ``"module:Class"`` of the :class:`~vgloc.training.engine.Trainer`
            subclass, imported on first use.
        presets: ``{preset name: Preset}``; the first is the default, applied by
            :func:`vgloc.config.resolve_config` over the dataclass defaults of every
            section (e.g. CosPlace's 512x512 images and colour jitter).
        help: One line (``vgloc train --help``).
        description: A paragraph (``vgloc train NAME --help``).
        check: ``check(section, config) -> [problem, ...]``: value rules of the
            section, run by :meth:`vgloc.config.TrainConfig.validate` (rules that only
            matter when the method is chosen test ``config.method``).
    """

    name: str
    config_class: type[Any]
    trainer: str
    presets: Mapping[str, Preset] = field(default_factory=dict)
    help: str = ""
    description: str = ""
    check: Callable[[Any, TrainConfig], list[str]] | None = None

    def __post_init__(self) -> None:
        if ":" not in self.trainer:
            raise ValueError(f"method {self.name!r}: trainer must be 'module:Class', got {self.trainer!r}")

    @property
    def default_preset(self) -> str | None:
        """Name of the preset applied when none is asked for (the first), or None."""
        return next(iter(self.presets), None)

    def preset(self, name: str | None = None) -> Preset:
        """The preset ``name`` (default: :attr:`default_preset`); ``{}`` when the method has none.

        Raises:
            KeyError: No preset of that name (the message lists them).
        """
        name = name or self.default_preset
        if name is None:
            return {}
        if name not in self.presets:
            raise KeyError(
                f"method {self.name!r} has no preset {name!r} (presets: {', '.join(self.presets) or 'none'})"
            )
        return self.presets[name]

    def trainer_class(self) -> type[Trainer]:
        """Import and return the trainer class."""
        module, _, attr = self.trainer.partition(":")
        cls: type[Trainer] = getattr(importlib.import_module(module), attr)
        return cls

    def train(
        self, config: TrainConfig, *, run_dir: str | Path | None = None, resume: str | Path | None = None
    ) -> TrainResult:
        """Build the trainer for ``config`` and run it (see :func:`vgloc.training.train`)."""
        return self.trainer_class()(config, run_dir=run_dir, resume=resume).run()


def register_method(method: TrainingMethod, *, override: bool = False) -> TrainingMethod:
    """Add ``method`` to :data:`vgloc.registry.TRAINING_METHODS` (its ``help`` is the description).

    Returns:
        ``method``.
    """
    TRAINING_METHODS.register(method.name, method, override=override, description=method.help)
    return method


def _load_builtins() -> None:
    # The built-in methods register when their package is imported.
    importlib.import_module("vgloc.training.methods")


def get_method(name: str) -> TrainingMethod:
    """The registered method ``name``.

    Raises:
        vgloc.registry.UnknownNameError: Not registered (the message lists close names).
    """
    _load_builtins()
    method: TrainingMethod = TRAINING_METHODS.get(name)
    return method


def method_names() -> list[str]:
    """Names of the registered methods, sorted."""
    _load_builtins()
    return TRAINING_METHODS.names()
