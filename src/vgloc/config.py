"""Training configuration: typed dataclasses resolved as defaults -> method preset -> YAML -> ``key=value``.

One :class:`TrainConfig` describes a whole training run. It is built in four layers,
each overriding the previous one:

1. the dataclass defaults below (the VG benchmark's values where it has one);
2. the method preset (:data:`METHOD_PRESETS`): the values where the two published
   recipes differ, e.g. CosPlace's 50 epochs, batch of 32 and colour jitter;
3. an optional YAML file holding the same nested sections (``optim: {lr: 1e-4}``);
4. ``key=value`` overrides with dotted keys (``optim.lr=1e-4``,
   ``data.image_size=96,128``, ``validation.domains=queries,queries_night``), as
   given to ``vgloc train ... --set``.

Values are parsed and checked against the field types (so ``optim.lr=1e-5`` is a
float even though YAML 1.1 reads ``1e-5`` as a string); an unknown key is an error
that lists the closest known keys; cross-field rules (e.g. ``queries_per_epoch`` a
multiple of ``cache_refresh_rate``) are checked by :meth:`TrainConfig.validate`.
The resolved configuration is written to the run folder as ``config.yaml`` and
stored in every checkpoint.

Every default names its source: ``VGB file:line`` for the VG benchmark
(gmberton/deep-visual-geo-localization-benchmark), ``CP file:line`` for CosPlace
(gmberton/CosPlace), as collected in the project's PROTOCOLS.md; "vgloc" marks a
choice of this toolkit where the recipes say nothing.

Example:
    >>> cfg = resolve_config("cosplace", overrides=["data.root=data/city", "optim.lr=1e-4"])
    >>> cfg.cosplace.batch_size, cfg.optim.lr
    (32, 0.0001)
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

__all__ = [
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
    "load_config_file",
    "resolve_config",
    "save_config",
]

Method = Literal["triplet", "cosplace"]
METHODS: tuple[str, ...] = ("triplet", "cosplace")


class ConfigError(ValueError):
    """A configuration key or value that cannot be used; the message says which and why."""


# --------------------------------------------------------------------------- sections


@dataclass
class DataConfig:
    """Where the images come from and how they are sized.

    Attributes:
        root: Dataset root with ``images/{train,val}/{database,queries*}`` (required).
        train_split: Split whose database (and queries, for triplets) is trained on.
        val_split: Split used for validation after every epoch.
        train_queries: Query folders of the train split used as triplet anchors;
            VGB trains on ``queries`` only. Adding e.g. ``queries_night`` trains on
            the night domain too. Unused by CosPlace (it trains on the database).
        image_size: ``(H, W)`` every training image is resized to. VGB resize
            ``[480, 640]`` (VGB parser.py:61); CosPlace preset ``(512, 512)``
            (CP asserts 512x512 training images, train_dataset.py:89-90).
        cache_images: Decode and resize every training and validation image once, at
            the start, and keep them in memory (shared with DataLoader workers). For
            small datasets such as the synthetic city; vgloc option.
        validate_images: Open and decode every image when loading the dataset, so a
            corrupt file fails at minute zero rather than hours in (vgloc).
    """

    root: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    train_queries: list[str] = field(default_factory=lambda: ["queries"])
    image_size: tuple[int, int] = (480, 640)
    cache_images: bool = False
    validate_images: bool = True


@dataclass
class ModelConfig:
    """The network (see :func:`vgloc.models.create_model`).

    Attributes:
        spec: Model spec string. VGB default ``resnet18.conv4+netvlad64`` (VGB
            parser.py:36,42,44); CosPlace preset ``resnet18+gem+fc512`` (CP
            parser.py backbone ResNet18, fc_output_dim 512; cosplace_network.py:40-46).
        pretrained: ImageNet weights for the backbone. None (default): yes when the
            backbone has torchvision weights, as both recipes start from ImageNet;
            no for backbones without (``tiny``).
        weights: Start from this checkpoint (a vgloc model file, an authors' state
            dict, or a published weight name such as ``cosplace``) instead.
        train_all_layers: Train the early backbone layers too. Both recipes freeze
            them (VGB network.py:118-137, CP cosplace_network.py:66-104); CosPlace's
            ``--train_all_layers`` flag is this option.
        netvlad_init_images: Images sampled for NetVLAD k-means initialisation
            (500, VGB aggregation.py:148-174; PROTOCOLS 1.3).
        netvlad_init_per_image: Local descriptors per image for that (100, same source).
    """

    spec: str = "resnet18.conv4+netvlad64"
    pretrained: bool | None = None
    weights: str | None = None
    train_all_layers: bool = False
    netvlad_init_images: int = 500
    netvlad_init_per_image: int = 100


@dataclass
class OptimConfig:
    """Optimizer of the descriptor network.

    Attributes:
        name: ``adam`` (VGB parser.py:25; CP train.py:46), ``adamw``, ``sgd``
            (with momentum) or ``asgd``.
        lr: Learning rate, 1e-5 (VGB parser.py:22; CP parser.py:34-35).
        weight_decay: None: the recipe's value for the optimizer: 0 for Adam and
            ASGD (VGB/CP use none), 0.001 for SGD (VGB train.py:67-68), 0.01 for AdamW
            (torch's default).
        momentum: SGD momentum, 0.9 (VGB train.py:67-68).
        betas: Adam/AdamW betas, torch's default ``(0.9, 0.999)`` (both recipes keep it).
    """

    name: Literal["adam", "adamw", "sgd", "asgd"] = "adam"
    lr: float = 1e-5
    weight_decay: float | None = None
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class ScheduleConfig:
    """Epochs, model selection, early stopping and the learning-rate schedule.

    Attributes:
        epochs: Maximum epochs. VGB 1000 (parser.py:19); CosPlace preset 50
            (CP parser.py:31-33).
        patience: Stop after this many epochs without improvement of
            ``select_metric``; None disables early stopping. VGB 3 (parser.py:21);
            CosPlace preset None (CP has no early stopping, train.py:154-176).
        select_metric: ``R@N`` (validation recall, averaged over
            ``validation.domains``) that picks the best model (strict ``>``). VGB
            ``R@5`` (train.py:184-216); CosPlace preset ``R@1`` (train.py:154-176).
        scheduler: ``none`` (both recipes), ``plateau`` (ReduceLROnPlateau on
            ``select_metric``, stepped after validation) or ``cosine``
            (CosineAnnealingLR over ``epochs``, stepped per epoch).
        plateau_factor: LR multiplier on a plateau (torch default 0.1).
        plateau_patience: Epochs without improvement before the LR drops. vgloc
            default 1, so the LR can drop before VGB's early stopping (3) ends the run.
        cosine_eta_min: Final learning rate of the cosine schedule (torch default 0).
        max_minutes: Wall-clock budget of one ``train`` call (vgloc addition; neither
            recipe has one): after each epoch's validation and checkpoints, training
            stops if one more epoch as long as the last one would end past the budget.
            Counts everything the call does (data caching, validations); a resumed run
            gets a fresh budget. None (default): no limit.
    """

    epochs: int = 1000
    patience: int | None = 3
    select_metric: str = "R@5"
    scheduler: Literal["none", "plateau", "cosine"] = "none"
    plateau_factor: float = 0.1
    plateau_patience: int = 1
    cosine_eta_min: float = 0.0
    max_minutes: float | None = None


@dataclass
class TripletConfig:
    """VG-benchmark triplet training (PROTOCOLS 1.1-1.2).

    Attributes:
        batch_size: Queries per step (global, over all processes); each brings 1
            positive and ``negs_per_query`` negatives: 4 queries = 48 images
            (VGB parser.py:11; datasets_ws.py:221-229).
        infer_batch_size: Batch of the cache's descriptor pass, 16 (VGB parser.py:13).
        loss: ``triplet`` (VGB parser.py:15), ``soft_triplet``, ``multi_soft`` or
            ``contrastive`` (:func:`vgloc.losses.create_triplet_loss`).
        margin: Triplet margin on L2 distances, 0.1 (VGB parser.py:17); used by
            ``triplet`` only.
        loss_params: Extra constructor arguments of the loss (e.g. ``{alpha: 10}``).
        cache_refresh_rate: Queries mined per cache refresh, 1000 (VGB parser.py:26).
        queries_per_epoch: Queries per epoch, 5000, a multiple of
            ``cache_refresh_rate`` (VGB parser.py:28, 101-103).
        negs_per_query: Negatives per query, 10 (VGB parser.py:30).
        neg_samples: Random database images per refresh, 1000 (VGB parser.py:32).
        mining: ``partial`` (VGB parser.py:34), ``full`` or ``random``.
        pos_radius_m: Hard-positive radius, 10 m (VGB parser.py:69).
        neg_radius_m: Soft-positive radius (negatives lie beyond), 25 m (VGB parser.py:68).
        max_removed_fraction: Refuse to start when more than this share of the
            queries has no positive within ``pos_radius_m`` (vgloc; VGB drops them
            silently).
    """

    batch_size: int = 4
    infer_batch_size: int = 16
    loss: Literal["triplet", "soft_triplet", "multi_soft", "contrastive"] = "triplet"
    margin: float = 0.1
    loss_params: dict[str, float] = field(default_factory=dict)
    cache_refresh_rate: int = 1000
    queries_per_epoch: int = 5000
    negs_per_query: int = 10
    neg_samples: int = 1000
    mining: Literal["partial", "full", "random"] = "partial"
    pos_radius_m: float = 10.0
    neg_radius_m: float = 25.0
    max_removed_fraction: float = 0.5


@dataclass
class CosPlaceConfig:
    """CosPlace classification training (PROTOCOLS 2.1-2.2).

    Attributes:
        M: Cell side in metres, 10 (CP parser.py:8-13).
        alpha: Heading sector in degrees, 30 (same).
        N: Cells per group period, 5 (same).
        L: Heading sectors per group period, 2 (same).
        min_images_per_class: Smaller classes are dropped, 10 (CP train_dataset.py:129-138).
        groups_num: Groups trained, one per epoch cyclically, 8 (CP parser.py:8-13).
        heading_policy: ``error``: every image needs a heading (CP reads field 9 of
            the file name); ``ignore``: classes are UTM cells only.
        group_order: ``cosplace`` (CP's first-appearance order) or ``sorted``.
        batch_size: Images per step (global), 32 (CP parser.py:31-33).
        iterations_per_epoch: Steps per epoch, 10,000 (CP parser.py:31-33).
        loss: Margin loss of the classifiers: ``cosface`` (CP: s=30, m=0.40,
            cosface_loss.py:24-38), ``arcface`` or ``sphereface``. SphereFace's
            presets (m=4, scale = ||x|| = 1 on normalised descriptors, no annealing,
            as PML) barely learn from random weights; train it with
            ``loss_params={s: 30, annealing: true}`` (BENCHMARKS.md).
        loss_params: Overrides of the loss preset (``s``, ``m``, ...; booleans
            ``scale_by_norm`` and ``annealing``, SphereFace's Caffe lambda schedule),
            see :func:`vgloc.losses.create_margin_head`, e.g.
            ``cosplace.loss_params={s: 30, annealing: true}``.
        classifiers_lr: Adam learning rate of each group's classifier, 0.01
            (CP parser.py:34-35; train.py:53).
    """

    M: float = 10.0
    alpha: float = 30.0
    N: int = 5
    L: int = 2
    min_images_per_class: int = 10
    groups_num: int = 8
    heading_policy: Literal["error", "ignore"] = "error"
    group_order: Literal["cosplace", "sorted"] = "cosplace"
    batch_size: int = 32
    iterations_per_epoch: int = 10_000
    loss: Literal["cosface", "arcface", "sphereface"] = "cosface"
    loss_params: dict[str, float | bool] = field(default_factory=dict)
    classifiers_lr: float = 0.01


@dataclass
class AugmentConfig:
    """Training-image augmentation (torchvision ``transforms.v2``, per image).

    Triplet training augments queries only (VGB datasets_ws.py:163-175); CosPlace
    augments every training image (CP train.py:85-94).

    Attributes:
        brightness: ColorJitter brightness. VGB 0 (parser.py:73-80); CosPlace
            preset 0.7 (CP parser.py:36-46).
        contrast: ColorJitter contrast. VGB 0; CosPlace preset 0.7.
        saturation: ColorJitter saturation. VGB 0; CosPlace preset 0.7.
        hue: ColorJitter hue (<= 0.5). VGB 0; CosPlace preset 0.5.
        random_resized_crop: ``(min, max)`` area scale of a RandomResizedCrop back
            to ``data.image_size``; None: plain resize. VGB off (its crop of scale
            ``(1, 1)`` reduces to a resize, PROTOCOLS 1.2); CosPlace preset
            ``(0.5, 1.0)`` (CP parser.py:36-46).
        night_brightness: Multiply pixel values by this fixed factor (e.g. 0.15), the
            night-simulation trick; None: off (vgloc option).
        night_probability: Share of augmented images that are darkened (vgloc).
    """

    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    random_resized_crop: tuple[float, float] | None = None
    night_brightness: float | None = None
    night_probability: float = 1.0


@dataclass
class ValidationConfig:
    """Validation after every epoch, with the recall code of ``vgloc eval``.

    Attributes:
        domains: Query folders of the val split; the selection metric is their mean.
            Both recipes validate on the day queries (``queries``; CP train.py:59-63).
        recall_values: N of R@N, ``[1, 5, 10, 20]`` (VGB parser.py:70).
        threshold_m: Positive radius, 25 m (VGB parser.py:68; CP test.py).
        batch_size: Inference batch, 16 (VGB infer_batch_size parser.py:13).
        image_size: ``(H, W)`` of validation images; None: ``data.image_size`` (VGB
            validates at its training resize; CP at full resolution).
        before_training: Also validate the initial model (logged as epoch 0).
    """

    domains: list[str] = field(default_factory=lambda: ["queries"])
    recall_values: list[int] = field(default_factory=lambda: [1, 5, 10, 20])
    threshold_m: float = 25.0
    batch_size: int = 16
    image_size: tuple[int, int] | None = None
    before_training: bool = False


@dataclass
class RuntimeConfig:
    """Where and how the run executes; none of this changes the recipe.

    Attributes:
        device: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``,
            ``cuda:1``. Under torchrun each process uses ``cuda:<LOCAL_RANK>``.
        seed: Seed of model initialisation, sampling and augmentation, 0 (VGB
            parser.py:55).
        deterministic: cuDNN deterministic and no autotuning, as VGB seeds
            (commons.py:16-27).
        precision: ``fp32`` (both recipes' default; CP parser.py:26, README: the
            paper's numbers are without AMP), ``fp16`` (CUDA autocast with a
            GradScaler) or ``bf16`` (autocast on CPU or CUDA, no scaler).
        channels_last: NHWC memory format (faster convolutions on recent hardware).
        num_workers: DataLoader worker processes; None: ``min(8, CPUs per process - 1)``
            (both recipes default to 8).
        num_threads: torch intra-op CPU threads during the run (restored afterwards);
            None leaves torch's setting. Small models on a shared CPU can run many times
            faster with 1 thread than with several contending ones.
        progress: tqdm progress bars (rank 0 only).
        step_log_every: Write the loss of every N-th step to ``steps.csv``.
        checkpoint_every_steps: Also write ``last.pt`` every N steps inside an
            epoch; 0: only at the end of each epoch (both recipes).
        tensorboard: Write TensorBoard events when ``tensorboard`` is installed.
        log_files: Write ``info.log`` and ``debug.log`` into the run folder.
        dist_backend: ``torch.distributed`` backend under torchrun; None: ``nccl``
            on CUDA, ``gloo`` on CPU.
    """

    device: str = "auto"
    seed: int = 0
    deterministic: bool = True
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    channels_last: bool = False
    num_workers: int | None = None
    num_threads: int | None = None
    progress: bool = True
    step_log_every: int = 1
    checkpoint_every_steps: int = 0
    tensorboard: bool = True
    log_files: bool = True
    dist_backend: str | None = None


@dataclass
class TrainConfig:
    """A complete training run (see the module docstring for how it is resolved).

    Attributes:
        method: ``triplet`` (VG benchmark) or ``cosplace``.
        data: :class:`DataConfig`.
        model: :class:`ModelConfig`.
        optim: :class:`OptimConfig`.
        schedule: :class:`ScheduleConfig`.
        triplet: :class:`TripletConfig` (used when ``method == "triplet"``).
        cosplace: :class:`CosPlaceConfig` (used when ``method == "cosplace"``).
        augment: :class:`AugmentConfig`.
        validation: :class:`ValidationConfig`.
        runtime: :class:`RuntimeConfig`.
    """

    method: Method = "triplet"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    triplet: TripletConfig = field(default_factory=TripletConfig)
    cosplace: CosPlaceConfig = field(default_factory=CosPlaceConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    # -- conversion -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists): YAML/JSON-ready and weights_only-loadable.

        Returns:
            ``{"method": ..., "data": {...}, ...}``.
        """
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build a config from a nested dict; missing keys keep the dataclass defaults.

        The method preset is *not* applied (use :func:`resolve_config` for that).

        Args:
            data: Nested sections as in ``config.yaml``.

        Returns:
            The config (not yet validated).

        Raises:
            ConfigError: Unknown keys (with suggestions) or values of the wrong type.
        """
        cfg = cls()
        _merge(cfg, data, "")
        return cfg

    def get(self, key: str) -> Any:
        """The value at a dotted key, e.g. ``"optim.lr"``."""
        obj: Any = self
        for part in key.split("."):
            if not dataclasses.is_dataclass(obj) or part not in _field_names(obj):
                raise ConfigError(_unknown_key_message(key))
            obj = getattr(obj, part)
        return obj

    @property
    def method_section(self) -> TripletConfig | CosPlaceConfig:
        """The method's own section (``triplet`` or ``cosplace``)."""
        return self.triplet if self.method == "triplet" else self.cosplace

    @property
    def val_image_size(self) -> tuple[int, int]:
        """``validation.image_size``, or ``data.image_size`` when that is None."""
        return self.validation.image_size or self.data.image_size

    # -- checks -----------------------------------------------------------------------
    def validate(self) -> TrainConfig:
        """Check values and cross-field rules; return ``self`` for chaining.

        Raises:
            ConfigError: Listing every problem found, each with its key.
        """
        problems: list[str] = []

        def need(ok: bool, msg: str) -> None:
            if not ok:
                problems.append(msg)

        for key, value in _flat(self.to_dict()):
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(f"{key}={value} is not a finite number")
        d, m, o, s, t, c, a, v, r = (
            self.data,
            self.model,
            self.optim,
            self.schedule,
            self.triplet,
            self.cosplace,
            self.augment,
            self.validation,
            self.runtime,
        )
        need(self.method in METHODS, f"method={self.method!r}: choose one of {METHODS}")
        need(
            all(x >= 16 for x in d.image_size), f"data.image_size={list(d.image_size)}: H and W must be >= 16"
        )
        need(bool(d.train_queries), "data.train_queries is empty: name at least one query folder")
        need(bool(m.spec), "model.spec is empty")
        need(m.netvlad_init_images >= 1, f"model.netvlad_init_images={m.netvlad_init_images} must be >= 1")
        need(
            m.netvlad_init_per_image >= 1,
            f"model.netvlad_init_per_image={m.netvlad_init_per_image} must be >= 1",
        )
        need(o.lr > 0, f"optim.lr={o.lr} must be > 0")
        need(
            o.weight_decay is None or o.weight_decay >= 0, f"optim.weight_decay={o.weight_decay} must be >= 0"
        )
        need(0 <= o.momentum < 1, f"optim.momentum={o.momentum} must be in [0, 1)")
        need(all(0 <= b < 1 for b in o.betas), f"optim.betas={list(o.betas)} must be in [0, 1)")
        need(s.epochs >= 1, f"schedule.epochs={s.epochs} must be >= 1")
        need(s.patience is None or s.patience >= 1, f"schedule.patience={s.patience} must be >= 1 or null")
        n_sel = _parse_recall_metric(s.select_metric)
        need(
            n_sel is not None and n_sel in v.recall_values,
            f"schedule.select_metric={s.select_metric!r} must be R@N with N in validation.recall_values "
            f"{v.recall_values}",
        )
        need(0 < s.plateau_factor < 1, f"schedule.plateau_factor={s.plateau_factor} must be in (0, 1)")
        need(s.plateau_patience >= 0, f"schedule.plateau_patience={s.plateau_patience} must be >= 0")
        need(s.cosine_eta_min >= 0, f"schedule.cosine_eta_min={s.cosine_eta_min} must be >= 0")
        need(
            s.max_minutes is None or s.max_minutes > 0,
            f"schedule.max_minutes={s.max_minutes} must be > 0 or null",
        )
        for key in ("batch_size", "infer_batch_size", "cache_refresh_rate", "queries_per_epoch"):
            need(getattr(t, key) >= 1, f"triplet.{key}={getattr(t, key)} must be >= 1")
        need(t.negs_per_query >= 1, f"triplet.negs_per_query={t.negs_per_query} must be >= 1")
        need(
            t.neg_samples >= t.negs_per_query,
            f"triplet.neg_samples={t.neg_samples} must be >= triplet.negs_per_query={t.negs_per_query}",
        )
        need(t.margin >= 0, f"triplet.margin={t.margin} must be >= 0")
        need(
            0 < t.pos_radius_m <= t.neg_radius_m,
            f"need 0 < triplet.pos_radius_m ({t.pos_radius_m}) <= triplet.neg_radius_m ({t.neg_radius_m})",
        )
        if self.method == "triplet" and t.queries_per_epoch % max(t.cache_refresh_rate, 1):
            # VGB stops with an error here too (parser.py:101-103).
            problems.append(
                f"triplet.queries_per_epoch={t.queries_per_epoch} must be a multiple of "
                f"triplet.cache_refresh_rate={t.cache_refresh_rate}"
            )
        if self.method == "triplet" and t.cache_refresh_rate < t.batch_size:
            problems.append(
                f"triplet.cache_refresh_rate={t.cache_refresh_rate} is smaller than triplet.batch_size="
                f"{t.batch_size}: a refresh would not fill one batch"
            )
        for key in ("M", "alpha"):
            need(getattr(c, key) > 0, f"cosplace.{key}={getattr(c, key)} must be > 0")
        for key in ("N", "L", "min_images_per_class", "groups_num", "batch_size", "iterations_per_epoch"):
            need(getattr(c, key) >= 1, f"cosplace.{key}={getattr(c, key)} must be >= 1")
        need(c.classifiers_lr > 0, f"cosplace.classifiers_lr={c.classifiers_lr} must be > 0")
        for key in ("brightness", "contrast", "saturation"):
            need(getattr(a, key) >= 0, f"augment.{key}={getattr(a, key)} must be >= 0")
        need(0 <= a.hue <= 0.5, f"augment.hue={a.hue} must be in [0, 0.5]")
        if a.random_resized_crop is not None:
            lo, hi = a.random_resized_crop
            need(
                0 < lo <= hi <= 1, f"augment.random_resized_crop={[lo, hi]} must satisfy 0 < min <= max <= 1"
            )
        need(
            a.night_brightness is None or a.night_brightness > 0,
            f"augment.night_brightness={a.night_brightness} must be > 0 (e.g. 0.15)",
        )
        need(
            0 <= a.night_probability <= 1,
            f"augment.night_probability={a.night_probability} must be in [0, 1]",
        )
        need(bool(v.domains), "validation.domains is empty: name at least one val query folder")
        need(
            bool(v.recall_values) and all(n >= 1 for n in v.recall_values),
            f"validation.recall_values={v.recall_values} must be positive integers",
        )
        need(v.threshold_m > 0, f"validation.threshold_m={v.threshold_m} must be > 0")
        need(v.batch_size >= 1, f"validation.batch_size={v.batch_size} must be >= 1")
        if v.image_size is not None:
            need(
                all(x >= 16 for x in v.image_size),
                f"validation.image_size={list(v.image_size)} must be >= 16",
            )
        need(r.num_workers is None or r.num_workers >= 0, f"runtime.num_workers={r.num_workers} must be >= 0")
        need(r.num_threads is None or r.num_threads >= 1, f"runtime.num_threads={r.num_threads} must be >= 1")
        need(r.step_log_every >= 1, f"runtime.step_log_every={r.step_log_every} must be >= 1")
        need(
            r.checkpoint_every_steps >= 0,
            f"runtime.checkpoint_every_steps={r.checkpoint_every_steps} must be >= 0 (0: epoch ends only)",
        )
        need(r.seed >= 0, f"runtime.seed={r.seed} must be >= 0")
        need(
            r.dist_backend in (None, "nccl", "gloo", "mpi"),
            f"runtime.dist_backend={r.dist_backend!r}: choose nccl, gloo, mpi or null (auto)",
        )
        if problems:
            raise ConfigError("invalid training configuration:\n  - " + "\n  - ".join(problems))
        return self


# --------------------------------------------------------------------------- presets

#: Values where the two recipes differ: ``{method: {dotted key: (value, source)}}``.
#: :func:`resolve_config` applies the chosen method's entries over the dataclass defaults.
METHOD_PRESETS: dict[str, dict[str, tuple[Any, str]]] = {
    "triplet": {
        "model.spec": ("resnet18.conv4+netvlad64", "VGB parser.py:36,42,44"),
        "data.image_size": ((480, 640), "VGB parser.py:61"),
        "schedule.epochs": (1000, "VGB parser.py:19"),
        "schedule.patience": (3, "VGB parser.py:21"),
        "schedule.select_metric": ("R@5", "VGB train.py:184-216"),
        "augment.brightness": (0.0, "VGB parser.py:73-80"),
        "augment.contrast": (0.0, "VGB parser.py:73-80"),
        "augment.saturation": (0.0, "VGB parser.py:73-80"),
        "augment.hue": (0.0, "VGB parser.py:73-80"),
        "augment.random_resized_crop": (None, "VGB parser.py:73-80 (crop scale (1, 1) = resize)"),
    },
    "cosplace": {
        "model.spec": ("resnet18+gem+fc512", "CP parser.py (ResNet18, fc_output_dim 512)"),
        "data.image_size": ((512, 512), "CP train_dataset.py:89-90"),
        "schedule.epochs": (50, "CP parser.py:31-33"),
        "schedule.patience": (None, "CP train.py:154-176 (no early stopping)"),
        "schedule.select_metric": ("R@1", "CP train.py:154-176"),
        "augment.brightness": (0.7, "CP parser.py:36-46"),
        "augment.contrast": (0.7, "CP parser.py:36-46"),
        "augment.saturation": (0.7, "CP parser.py:36-46"),
        "augment.hue": (0.5, "CP parser.py:36-46"),
        "augment.random_resized_crop": ((0.5, 1.0), "CP parser.py:36-46; augmentations.py:7-35"),
    },
}


# --------------------------------------------------------------------------- resolution


def resolve_config(
    method: str | None = None,
    file: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    *,
    base: TrainConfig | Mapping[str, Any] | None = None,
    validate: bool = True,
) -> TrainConfig:
    """Resolve defaults -> method preset -> YAML file -> ``key=value`` overrides.

    Args:
        method: ``triplet`` or ``cosplace``; None takes the file's ``method`` (or an
            override ``method=...``), else ``triplet``. A file naming a different
            method is an error.
        file: Optional YAML file with the nested sections.
        overrides: ``key=value`` strings with dotted keys.
        base: Start from this config instead of defaults + preset (e.g. a
            checkpoint's config when resuming); no preset is applied then.
        validate: Run :meth:`TrainConfig.validate` at the end.

    Returns:
        The resolved config.

    Raises:
        ConfigError: Unknown keys, unparsable values, a method conflict, or (with
            ``validate``) values that break a rule.
    """
    from_file = load_config_file(file) if file is not None else {}
    pairs = [_split_override(o) for o in overrides]
    file_method = from_file.get("method")
    over_method = next((v for k, v in pairs if k == "method"), None)
    if base is not None:
        cfg = base if isinstance(base, TrainConfig) else TrainConfig.from_dict(base)
        cfg = TrainConfig.from_dict(cfg.to_dict())  # a copy
        chosen: str = cfg.method
        if method is not None and method != chosen:
            raise ConfigError(f"the base configuration is for method {chosen!r}, not {method!r}")
    else:
        chosen = method or file_method or over_method or "triplet"
        if chosen not in METHODS:
            raise ConfigError(f"unknown method {chosen!r}; choose one of {', '.join(METHODS)}")
        cfg = TrainConfig()
        cfg.method = chosen  # type: ignore[assignment]  # checked against METHODS above
        for key, (value, _source) in METHOD_PRESETS[chosen].items():
            _set(cfg, key, value)
    if file_method is not None and file_method != chosen:
        raise ConfigError(f"{file} is a {file_method!r} configuration, but method {chosen!r} was asked for")
    if over_method is not None and over_method != chosen:
        raise ConfigError(f"override method={over_method} conflicts with method {chosen!r}")
    _merge(cfg, from_file, "", source=str(file) if file is not None else "")
    cfg = apply_overrides(cfg, [o for o in overrides if _split_override(o)[0] != "method"], validate=False)
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
    out = TrainConfig.from_dict(cfg.to_dict())
    for text in overrides:
        key, raw = _split_override(text)
        if key == "method":
            if raw != out.method:
                raise ConfigError(
                    f"method cannot be changed by an override (config is {out.method!r}, got {raw!r})"
                )
            continue
        _set(out, key, raw, from_string=True)
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
    fa = dict(_flat(a.to_dict() if isinstance(a, TrainConfig) else _plain(dict(a))))
    fb = dict(_flat(b.to_dict() if isinstance(b, TrainConfig) else _plain(dict(b))))
    out = []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, "<missing>"), fb.get(key, "<missing>")
        if va != vb:
            out.append((key, va, vb))
    return out


# --------------------------------------------------------------------------- internals


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _flat(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        # loss_params are free-form dicts: compare them as one value.
        if isinstance(v, dict) and not k.endswith("params"):
            out += _flat(v, key + ".")
        else:
            out.append((key, v))
    return out


def _field_names(obj: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(obj)]


def _all_keys() -> list[str]:
    return [k for k, _ in _flat(TrainConfig().to_dict())]


def _unknown_key_message(key: str, where: str = "") -> str:
    keys = _all_keys()
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    if not close:  # match the last part alone: "lr" -> "optim.lr", "pateince" -> "schedule.patience"
        tails = difflib.get_close_matches(
            key.rsplit(".", 1)[-1], sorted({k.rsplit(".", 1)[-1] for k in keys}), n=3
        )
        close = [k for k in keys if k.rsplit(".", 1)[-1] in tails][:3]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    sections = ", ".join(f.name for f in dataclasses.fields(TrainConfig))
    return f"unknown config key {key!r}{where}{hint} (sections: {sections})"


def _split_override(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. optim.lr=1e-4)")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    return key, value.strip()


def _set(cfg: TrainConfig, key: str, value: Any, *, from_string: bool = False, where: str = "") -> None:
    parts = key.split(".")
    obj: Any = cfg
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(obj) or part not in _field_names(obj):
            raise ConfigError(_unknown_key_message(key, where))
        if i == len(parts) - 1:
            hints = get_type_hints(type(obj))
            target = getattr(obj, part)
            if dataclasses.is_dataclass(target):
                subkeys = ", ".join(f"{key}.{n}" for n in _field_names(target))
                raise ConfigError(f"{key!r}{where} is a section, not a value; set one of its keys: {subkeys}")
            setattr(obj, part, _coerce(value, hints[part], key, from_string, where))
        elif i == len(parts) - 2 and get_origin(get_type_hints(type(obj))[part]) is dict:
            # One entry of a mapping field: ``cosplace.loss_params.s=30`` updates ``s`` and keeps the rest.
            value_type = get_args(get_type_hints(type(obj))[part])[1]
            entries = dict(getattr(obj, part))
            entries[parts[-1]] = _coerce(value, value_type, key, from_string, where)
            setattr(obj, part, entries)
            return
        else:
            obj = getattr(obj, part)


def _merge(cfg: TrainConfig, data: Mapping[str, Any], prefix: str, source: str = "") -> None:
    where = f" in {source}" if source else ""
    for k, v in data.items():
        key = f"{prefix}{k}"
        if prefix == "" and k == "method":
            if v not in METHODS:
                raise ConfigError(f"unknown method {v!r}{where}; choose one of {', '.join(METHODS)}")
            cfg.method = v
            continue
        try:
            target = cfg.get(key)
        except ConfigError:
            raise ConfigError(_unknown_key_message(key, where)) from None
        if dataclasses.is_dataclass(target):
            if not isinstance(v, Mapping):
                raise ConfigError(f"{key!r}{where} is a section and needs a mapping, got {v!r}")
            _merge(cfg, v, key + ".", source)
        else:
            _set(cfg, key, v, where=where)


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null", "~", ""}


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in get_args(tp))}]"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, from_string: bool = False, where: str = "") -> Any:
    """Convert ``value`` to type ``tp`` or raise a ConfigError naming ``key`` and the value."""

    def fail(reason: str = "") -> ConfigError:
        extra = f": {reason}" if reason else ""
        return ConfigError(f"{key}={value!r}{where}: expected {_type_name(tp)}{extra}")

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
                return _coerce(value, a, key, from_string, where)
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
            items = _parse_sequence(value)
        if not isinstance(items, (list, tuple)):
            raise fail("give a list, e.g. 1,5,10 or [1, 5, 10]")
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_coerce(v, args[0], key, from_string, where) for v in items)
            if len(items) != len(args):
                raise fail(f"needs exactly {len(args)} values, got {len(items)}")
            return tuple(_coerce(v, a, key, from_string, where) for v, a in zip(items, args, strict=True))
        return [_coerce(v, args[0], key, from_string, where) for v in items]
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
            _coerce(k, kt, key, from_string, where): _coerce(v, vt, key, from_string, where)
            for k, v in items.items()
        }
    raise ConfigError(f"{key}: unsupported field type {tp!r}")  # pragma: no cover - a bug in this module


def _parse_sequence(text: str) -> list[Any]:
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


def _parse_recall_metric(name: str) -> int | None:
    """``"R@5"`` -> 5; None when the name is not of that form."""
    text = name.strip().upper()
    if not text.startswith("R@"):
        return None
    try:
        n = int(text[2:])
    except ValueError:
        return None
    return n if n >= 1 else None
