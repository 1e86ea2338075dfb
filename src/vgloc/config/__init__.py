"""Training configuration: typed dataclasses resolved as defaults -> method preset -> YAML -> ``key=value``.

One :class:`TrainConfig` describes a whole training run. It is built in four layers,
each overriding the previous one:

1. the dataclass defaults (the VG benchmark's values where it has one);
2. the method preset (:data:`METHOD_PRESETS`, registered with each method): the values
   where the published recipes differ, e.g. CosPlace's 50 epochs and colour jitter;
3. an optional YAML file holding the same nested sections (``optim: {lr: 1e-4}``);
4. ``key=value`` overrides with dotted keys (``optim.lr=1e-4``,
   ``data.image_size=96,128``, ``validation.domains=queries,queries_night``), as
   given to ``vgloc train ... --set``.

Values are parsed and checked against the field types (so ``optim.lr=1e-5`` is a
float even though YAML 1.1 reads ``1e-5`` as a string); an unknown key is an error
that lists the closest known keys; cross-field rules (e.g. ``queries_per_epoch`` a
multiple of ``cache_refresh_rate``) are checked by :meth:`TrainConfig.validate`.
When training starts, settings the data cannot support may be adapted
(``data.adapt``; only keys not set explicitly). The configuration used is written to
the run folder as ``config.yaml`` and stored in every checkpoint.

Every default names its source: ``VGB file:line`` for the VG benchmark
(gmberton/deep-visual-geo-localization-benchmark), ``CP file:line`` for CosPlace
(gmberton/CosPlace), as collected in the project's PROTOCOLS.md; "vgloc" marks a
choice of this toolkit where the recipes say nothing.

Modules: :mod:`.sections` (the shared sections), :mod:`.training` (:class:`TrainConfig`
and its resolution), :mod:`.extensions` (method and add-on sections, presets),
:mod:`.values` (parsing), :mod:`.checks` (value rules). The
``triplet`` and ``cosplace`` sections live with their methods
(:mod:`vgloc.training.methods`), add-on sections with their add-ons.

Example:
    >>> cfg = resolve_config("cosplace", overrides=["data.root=data/city", "optim.lr=1e-4"])
    >>> cfg.cosplace.batch_size, cfg.optim.lr
    (32, 0.0001)
"""

from __future__ import annotations

from typing import Any

from vgloc.config.sections import (
    AugmentConfig,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RuntimeConfig,
    ScheduleConfig,
    ValidationConfig,
)
from vgloc.config.training import (
    EXPLICIT_SOURCES,
    METHOD_PRESETS,
    TrainConfig,
    apply_overrides,
    config_diff,
    extension_sections,
    load_config_file,
    resolve_config,
    save_config,
)
from vgloc.config.values import ConfigError
from vgloc.training.methods.cosplace.config import CosPlaceConfig
from vgloc.training.methods.triplet.config import TripletConfig

__all__ = [
    "EXPLICIT_SOURCES",
    "METHODS",
    "METHOD_PRESETS",
    "AugmentConfig",
    "ConfigError",
    "CosPlaceConfig",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "RuntimeConfig",
    "ScheduleConfig",
    "TrainConfig",
    "TripletConfig",
    "ValidationConfig",
    "apply_overrides",
    "config_diff",
    "extension_sections",
    "load_config_file",
    "resolve_config",
    "save_config",
]


def __getattr__(name: str) -> Any:
    # METHODS is read from the registry when asked for, so that methods registered after
    # this module was imported (plugins) are listed too.
    if name == "METHODS":
        from vgloc.training.methods import method_names

        return tuple(method_names())
    raise AttributeError(f"module 'vgloc.config' has no attribute {name!r}")
