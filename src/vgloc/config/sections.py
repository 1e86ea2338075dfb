"""The configuration sections every training method shares: data, model, optimizer, schedule, ...

Each section is a dataclass whose defaults are the VG benchmark's values where it has
one; every default names its source (``VGB file:line``, ``CP file:line`` for
CosPlace, "vgloc" for a choice of this toolkit), as collected in PROTOCOLS.md. The
method presets (``vgloc.training.methods``) change some of them, e.g. CosPlace's 50
epochs and colour jitter. Method and add-on sections live with their method or add-on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "AugmentConfig",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "RuntimeConfig",
    "ScheduleConfig",
    "ValidationConfig",
]


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
        adapt: Change settings the data cannot support, once the training data is
            loaded (vgloc): e.g. CosPlace cells and groups on a small city, the triplet
            cache refresh on few queries, an image size larger than the images. Only
            keys not set explicitly (file, ``--set``) are changed; the log says what
            and why, and the run's ``config.yaml`` holds the values used. False: use the
            configuration as given.
    """

    root: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    train_queries: list[str] = field(default_factory=lambda: ["queries"])
    image_size: tuple[int, int] = (480, 640)
    cache_images: bool = False
    validate_images: bool = True
    adapt: bool = True


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
        precision: ``auto`` (default: the hardware's fast path, fp32 on a CPU
            without native bf16, bf16 autocast where it is native or on a CUDA GPU
            with bf16, else fp16 with loss scaling), ``fp32`` (both recipes'
            default; CP parser.py:26, README: the paper's numbers are without AMP),
            ``fp16`` (CUDA autocast with a GradScaler) or ``bf16`` (autocast on CPU
            or CUDA, no scaler).
        channels_last: NHWC memory format (faster convolutions on recent hardware);
            None: on with autocast and on CPUs, off for fp32 on CUDA.
        compile: ``torch.compile`` the training network (off by default: compiling
            costs minutes on a small CPU; see docs/training_speed.md).
        accumulation_steps: Split each step's batch into this many equal
            micro-batches, accumulating gradients before one update (the same
            update as the whole batch up to float rounding, except that BatchNorm
            statistics are per micro-batch), so a large batch fits in memory.
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
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    channels_last: bool | None = None
    compile: bool = False
    accumulation_steps: int = 1
    num_workers: int | None = None
    num_threads: int | None = None
    progress: bool = True
    step_log_every: int = 1
    checkpoint_every_steps: int = 0
    tensorboard: bool = True
    log_files: bool = True
    dist_backend: str | None = None
