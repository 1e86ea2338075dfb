"""The add-on contract: extra behaviour plugged into every trainer through the engine's hooks.

An add-on is something a training run can do whatever the method: save snapshots,
add a loss term on the descriptors, train an extra head. It never needs an edit to
a trainer: the engine (:class:`~vgloc.training.engine.Trainer`) calls its hooks.

Registration (cheap to import: no torch at module level)::

    register_addon(TrainingAddon(
        name="snapshots",
        config_class=SnapshotsConfig,        # a dataclass with `enabled: bool = False`
        addon="vgloc.training.addons.snapshots:SnapshotsAddon",
        help="save the model after every epoch",
        resumable=True,                       # its section may change on --resume
    ))

gives every configuration a ``snapshots`` section (``--set snapshots.enabled=true``);
each enabled add-on is built with its section and called by the engine:

==================================  ===============================================================
hook                                called
==================================  ===============================================================
``setup(trainer)``                  once, after the model and the method's objects exist, before
                                    the optimizer is built and before a checkpoint is restored
``parameters()``                    then: extra trainable parameters, optimised by the model's
                                    optimizer in their own parameter group
                                    (``optimizer_options()`` sets its lr / weight decay); their
                                    gradients are averaged over DDP processes
``extra_inputs(epoch, step)``       every step, before the forward pass: images appended to the
                                    method's batch so that one forward pass describes both (DDP
                                    allows one forward per backward)
``loss_terms(batch, outputs)``      every step, after the method's loss, under the same autocast:
                                    ``{name: scalar}`` added to the loss (logged per epoch as
                                    ``loss/<addon>/<name>``)
``state_dict()``/``load_state_dict``  in every checkpoint (``addons/<name>``), for exact resume;
                                    a checkpoint without it gives ``{}``
``on_epoch_end(epoch, row)``        after each epoch's validation, before ``last.pt`` is written
``log_metrics()``                   then: numbers added to the epoch's metrics row
==================================  ===============================================================

How the next add-on, a gradient-reversal domain classifier (DANN), would plug in with
no change to the engine or the trainers:

- config ``domain_adapt: {enabled, target_domain: queries_night, weight: 0.1, lr: 1e-3}``;
- ``setup``: build a small MLP ``descriptor_dim -> 2`` on ``trainer.device``, and an
  :class:`~vgloc.training.augment.ImageLoader` over the target-domain images of the
  train split (``trainer.cfg.data.root``, the ``target_domain`` folder);
- ``parameters()``: the MLP's; ``optimizer_options()``: ``{"lr": cfg.lr}``;
- ``extra_inputs(epoch, step)``: a batch of target images drawn from
  ``sample_seeds(seed, stream, epoch, step)`` (so a resumed run draws the same ones);
- ``loss_terms(batch, outputs)``: the classifier on ``GradReverse(outputs.descriptors)``
  (source, label 0) and on ``GradReverse(outputs.extra_descriptors["domain_adapt"])``
  (target, label 1), cross-entropy times ``weight``;
- ``state_dict()``: the MLP's weights (its optimizer state is in the model optimizer's);
- ``log_metrics()``: the domain classifier's accuracy over the epoch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from vgloc.registry import TRAINING_ADDONS, Registry

if TYPE_CHECKING:
    from torch import Tensor, nn

    from vgloc.config import TrainConfig
    from vgloc.training.engine import Trainer

__all__ = [
    "ADDONS",
    "StepBatch",
    "StepOutputs",
    "TrainerAddon",
    "TrainingAddon",
    "addon_enabled",
    "addon_names",
    "build_addons",
    "get_addon",
    "register_addon",
]

#: Registered add-ons (``vgloc.registry`` declares the component kinds of the toolkit;
#: add-ons are part of training, so their table lives here).
ADDONS: Registry[Any] = TRAINING_ADDONS  # declared with the other registries in vgloc.registry


@dataclass
class StepBatch:
    """The inputs of one training step on this process.

    Attributes:
        images: ``(B, 3, H, W)`` the method's images, as given to the network.
        epoch: 0-based epoch.
        step: 0-based global step (the number of steps done before this one).
        labels: The method's targets when it has any (CosPlace class labels), else None.
        extra_images: Add-on name -> the images it appended (``extra_inputs``).
    """

    images: Tensor
    epoch: int
    step: int
    labels: Tensor | None = None
    extra_images: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class StepOutputs:
    """What the forward pass of one step produced.

    Attributes:
        descriptors: ``(B, D)`` aggregated descriptors of :attr:`StepBatch.images`.
        extra_descriptors: Add-on name -> descriptors of the images it appended.
        loss: The method's own loss (before any add-on term).
    """

    descriptors: Tensor
    extra_descriptors: dict[str, Tensor] = field(default_factory=dict)
    loss: Tensor | None = None


class TrainerAddon:
    """Base class of add-ons: every hook does nothing by default (see the module docstring).

    Args:
        config: The add-on's config section.

    Attributes:
        trainer: The trainer, set by :meth:`setup`.
    """

    name: ClassVar[str] = ""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.trainer: Trainer | None = None

    def setup(self, trainer: Trainer) -> None:
        """Attach to ``trainer`` (model built; optimizer not yet; checkpoint not yet restored)."""
        self.trainer = trainer

    def parameters(self) -> list[nn.Parameter]:
        """Extra trainable parameters (optimised with the model's optimizer)."""
        return []

    def optimizer_options(self) -> dict[str, Any]:
        """Options of the parameter group of :meth:`parameters` (e.g. ``{"lr": 1e-3}``)."""
        return {}

    def extra_inputs(self, epoch: int, step: int) -> Tensor | None:
        """Images to describe in this step's forward pass, after the method's (or None)."""
        return None

    def loss_terms(self, batch: StepBatch, outputs: StepOutputs) -> dict[str, Tensor]:
        """Scalar loss terms added to the method's loss."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """State saved in every checkpoint (plain types and tensors)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output (``{}`` when the checkpoint has none)."""

    def on_epoch_end(self, epoch: int, row: Mapping[str, Any]) -> None:
        """After epoch ``epoch`` (1-based) was validated; ``row`` holds its metrics."""

    def log_metrics(self) -> dict[str, float]:
        """Numbers for the epoch's metrics row (prefixed with the add-on's name)."""
        return {}


@dataclass(frozen=True)
class TrainingAddon:
    """One registered add-on.

    Attributes:
        name: Name of the add-on and of its config section.
        config_class: Dataclass of its section; it needs a field ``enabled: bool = False``
            (or ``enabled: bool | None = None`` with an ``auto_enabled()`` method, see
            :func:`addon_enabled`).
        addon: ``"module:Class"`` of its :class:`TrainerAddon`, imported when a run uses it.
        help: One line describing it.
        resumable: Its section may change when a run is resumed (it does not change
            what the run computes, e.g. saving snapshots).
        check: ``check(section, config) -> [problem, ...]``: value rules of its section,
            run by :meth:`vgloc.config.TrainConfig.validate`.
    """

    name: str
    config_class: type[Any]
    addon: str
    help: str = ""
    resumable: bool = False
    check: Callable[[Any, TrainConfig], list[str]] | None = None

    def __post_init__(self) -> None:
        if "enabled" not in getattr(self.config_class, "__dataclass_fields__", {}):
            raise ValueError(f"add-on {self.name!r}: its config dataclass needs an `enabled` field")

    def build(self, section: Any) -> TrainerAddon:
        """Import the add-on class and build it with its config section."""
        module, _, attr = self.addon.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        addon: TrainerAddon = cls(section)
        return addon


def register_addon(addon: TrainingAddon, *, override: bool = False) -> TrainingAddon:
    """Add ``addon`` to :data:`ADDONS`; returns it."""
    ADDONS.register(addon.name, addon, override=override, description=addon.help)
    return addon


def _load_builtins() -> None:
    importlib.import_module("vgloc.training.addons")


def get_addon(name: str) -> TrainingAddon:
    """The registered add-on ``name`` (an unknown name lists the close ones)."""
    _load_builtins()
    addon: TrainingAddon = ADDONS.get(name)
    return addon


def addon_names() -> list[str]:
    """Names of the registered add-ons, sorted."""
    _load_builtins()
    return ADDONS.names()


def build_addons(cfg: TrainConfig) -> list[TrainerAddon]:
    """The enabled add-ons of ``cfg``, built with their sections, in name order."""
    return [get_addon(n).build(cfg.section(n)) for n in addon_names() if addon_enabled(cfg.section(n))]


def addon_enabled(section: Any) -> bool:
    """Whether an add-on's section turns it on: its ``enabled`` flag.

    ``enabled=None`` means automatic: the section's ``auto_enabled()`` decides (the ``da``
    section is on when ``da.target`` is set).
    """
    if section.enabled is None:
        return bool(section.auto_enabled())
    return bool(section.enabled)
