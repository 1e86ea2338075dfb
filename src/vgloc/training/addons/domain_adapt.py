"""Domain adaptation with a gradient reversal layer (DANN) as a training add-on: the ``da`` section.

Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML 2015
(arXiv:1409.7495). A small domain classifier (an MLP ``D -> hidden -> hidden -> 2``)
reads the aggregated descriptor through a gradient reversal layer
(:mod:`vgloc.models.grl`): it learns to tell training images (source, label 0) from
unlabelled images of the target domain (label 1, e.g. night photos or the test
queries), while the reversed gradient pushes the network towards descriptors in
which the two domains cannot be told apart. The reference code of the VG-benchmark
lineage (``grl_util.py``, reused by the CosPlace extension projects whose night
results issue 13 cites) uses a constant factor 1, a loss weight of 0.1
(``grl_loss_weight``) and a discriminator ``D -> 50 -> 20 -> 2`` on the average-pooled
backbone features, with its own batch of domain images; vgloc puts it on the
aggregated descriptor (the issue's choice) and appends the target images to the
method's forward pass (one forward per backward, as DDP requires).

``vgloc train triplet|cosplace ... --set da.target=DIR`` turns it on (``da.enabled``
is automatic: on exactly when ``da.target`` is set). Every step appends as many
target images as the method's batch has source images (``da.batch_size`` to choose
another count) to the same forward pass, drawn from ``sample_seeds(seed, stream,
epoch, step, rank)`` so that a resumed run draws the same ones. They are decoded and
resized like training images (:class:`~vgloc.training.augment.ImageLoader`) and go
through the run's augmentation (the ``augment`` section, batched on the device by
:class:`~vgloc.training.batch_augment.BatchAugment` as CosPlace's own images are) with
their own seeds: otherwise the classifier could separate
the domains by the augmentation alone. The loss term ``da/domain`` (``weight`` times
the cross-entropy over source and target) is logged per epoch as
``loss/da/domain``; the classifier's accuracy over the epoch as ``da/accuracy`` and
the current GRL factor as ``da/lambda``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from vgloc.training.addons.base import StepBatch, StepOutputs, TrainerAddon, TrainingAddon, register_addon

if TYPE_CHECKING:
    from torch import Tensor, nn

    from vgloc.training.engine import Trainer

__all__ = ["DomainAdaptAddon", "DomainAdaptConfig", "check_domain_adapt", "find_target_images"]

log = logging.getLogger(__name__)

# Key of the target-image draws in sample_seeds (distinct from the methods' streams).
_TARGET_STREAM = 0xDA
# Key of the classifier's initialisation (so that turning the add-on on does not change
# the global random stream the rest of the run draws from).
_INIT_STREAM = 0xDA1


@dataclass
class DomainAdaptConfig:
    """Gradient-reversal domain adaptation (DANN, Ganin & Lempitsky 2015), the ``da`` section.

    Attributes:
        enabled: None (default): on exactly when ``target`` is set; true without a
            target is an error; false turns it off even with a target.
        target: Folder of unlabelled target-domain images (searched recursively). A
            path that does not exist as given is looked up as a folder of the training
            split (``queries_night`` -> ``<data.root>/images/train/queries_night``).
        weight: Weight of the domain-classification loss (0.1: the VG benchmark's
            ``grl_loss_weight``).
        grl_lambda: The gradient reversal factor: the constant (``schedule=constant``)
            or the value the DANN schedule rises to (``schedule=dann``).
        schedule: ``constant`` (the reference code), or ``dann``: ``grl_lambda * (2 / (1 +
            exp(-10 p)) - 1)`` with ``p`` = steps done / total steps (the paper's Sec. 5.2.2).
        lr: Learning rate of the domain classifier (its own parameter group of the
            model's optimizer); None: ``optim.lr``. 1e-3: a freshly initialised head
            learns faster than the pretrained network (1e-5 in both recipes), as
            CosPlace's classifiers do (``classifiers_lr`` 0.01); the base contract's sketch.
        hidden: Width of the classifier's two hidden layers (the reference code: 50, then 20).
        batch_size: Target images per step and process; None: as many as the method's
            batch has images (balanced source/target batches).
    """

    enabled: bool | None = None
    target: str | None = None
    weight: float = 0.1
    grl_lambda: float = 1.0
    schedule: Literal["constant", "dann"] = "constant"
    lr: float | None = 1e-3
    hidden: int = 50
    batch_size: int | None = None

    def auto_enabled(self) -> bool:
        """``enabled=None``: on when a target folder is set."""
        return self.target is not None


def find_target_images(target: str | Path, split_dir: Path | None = None) -> list[Path]:
    """The image files under the target folder, sorted (recursive, hidden files skipped).

    Args:
        target: The folder, or the name of a folder of ``split_dir``.
        split_dir: The training split's folder, tried when ``target`` does not exist as given.

    Returns:
        Absolute paths of the images.

    Raises:
        ConfigError: The folder does not exist or holds no images.
    """
    from vgloc.config import ConfigError
    from vgloc.data.scanning import IMAGE_EXTENSIONS, scan_folder

    folder = Path(target).expanduser()
    if not folder.is_dir() and split_dir is not None and not folder.is_absolute():
        folder = split_dir / folder
    if not folder.is_dir():
        where = (
            f" (nor {split_dir / target})" if split_dir is not None and not Path(target).is_absolute() else ""
        )
        raise ConfigError(
            f"da.target={str(target)!r}: no such folder{where}; give a folder of target-domain images"
        )
    scan = scan_folder(folder.resolve(), recursive=True)
    if not scan.images:
        raise ConfigError(
            f"da.target={str(target)!r}: {folder} holds no images (extensions {', '.join(IMAGE_EXTENSIONS)})"
        )
    return scan.images


def _domain_classifier(dim: int, hidden: int) -> nn.Sequential:
    """``D -> hidden -> hidden -> 2`` with ReLU (the reference's discriminator, one width)."""
    from torch import nn

    return nn.Sequential(
        nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2)
    )


class DomainAdaptAddon(TrainerAddon):
    """The domain classifier behind a gradient reversal layer (see the module docstring).

    Args:
        config: The ``da`` section.
    """

    name = "da"

    def __init__(self, config: DomainAdaptConfig) -> None:
        super().__init__(config)
        self.classifier: nn.Sequential | None = None
        self.paths: list[Path] = []
        self.total_steps = 1
        self.lambda_ = 0.0
        # Classifier accuracy over the current epoch (checkpointed: a resumed epoch continues it).
        self.epoch = -1
        self.correct = 0
        self.seen = 0

    def setup(self, trainer: Trainer) -> None:
        """Find the target images (clear error before training), build the classifier and the loaders."""
        import torch

        from vgloc.training.augment import ImageLoader
        from vgloc.training.batch_augment import BatchAugment
        from vgloc.training.data import sample_seeds

        super().setup(trainer)
        cfg = trainer.cfg
        split = trainer.train_split
        split_dir = None if split is None else Path(split.root) / split.split
        assert self.config.target is not None, "check_domain_adapt requires a target"
        self.paths = find_target_images(self.config.target, split_dir)
        size = tuple(cfg.data.image_size)
        self.loader = ImageLoader(self.paths, (size[0], size[1]), cache=cfg.data.cache_images)
        # Batched on the training device, as CosPlace's own images are (same pixels as
        # TrainAugment per image with the same seed).
        self.augment = BatchAugment(cfg.augment, (size[0], size[1]))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(sample_seeds(cfg.runtime.seed, _INIT_STREAM, n=1)[0]))
            self.classifier = _domain_classifier(trainer.model.descriptor_dim, self.config.hidden)
        self.classifier.to(trainer.device)
        self.total_steps = max(1, cfg.schedule.epochs * trainer.steps_per_epoch())
        self.lambda_ = self._lambda(trainer.global_step)
        log.info(
            "da: %d target images in %s, weight %g, GRL lambda %g (%s)",
            len(self.paths),
            self.config.target,
            self.config.weight,
            self.config.grl_lambda,
            self.config.schedule,
        )

    def _lambda(self, step: int) -> float:
        from vgloc.models.grl import dann_lambda

        if self.config.schedule == "constant":
            return float(self.config.grl_lambda)
        return dann_lambda(step / self.total_steps, self.config.grl_lambda)

    def parameters(self) -> list[nn.Parameter]:
        """The domain classifier's parameters."""
        assert self.classifier is not None, "setup() was not called"
        return list(self.classifier.parameters())

    def optimizer_options(self) -> dict[str, Any]:
        """``{"lr": da.lr}`` when set (else the model's learning rate)."""
        return {} if self.config.lr is None else {"lr": float(self.config.lr)}

    def extra_inputs(self, epoch: int, step: int) -> Tensor:
        """``(N, 3, H, W)`` augmented, normalised target images for global step ``step``, on the device.

        ``N`` is ``da.batch_size``, or the number of images of the method's batch. The
        draw is a function of (seed, epoch, step, rank) only: a resumed run draws the same.
        """
        import numpy as np
        import torch

        from vgloc.training.data import sample_seeds

        trainer = self.trainer
        assert trainer is not None, "setup() was not called"
        n = self.config.batch_size or trainer.step_images
        key = (trainer.cfg.runtime.seed, _TARGET_STREAM, epoch, step, trainer.dist.rank)
        draw_seed, *aug_seeds = sample_seeds(*key, n=n + 1)
        rng = np.random.default_rng(int(draw_seed))
        picked = rng.choice(len(self.paths), size=n, replace=n > len(self.paths))
        images = torch.stack([self.loader(int(i)) for i in picked])
        return trainer.augment_on_device(self.augment, images, torch.as_tensor(aug_seeds))

    def loss_terms(self, batch: StepBatch, outputs: StepOutputs) -> dict[str, Tensor]:
        """``{"domain": weight * cross-entropy}`` of the classifier on GRL(source), GRL(target)."""
        import torch
        from torch.nn import functional as F

        from vgloc.models.grl import grad_reverse

        assert self.classifier is not None, "setup() was not called"
        source = outputs.descriptors
        target = outputs.extra_descriptors[self.name]
        if batch.epoch != self.epoch:
            self.epoch, self.correct, self.seen = batch.epoch, 0, 0
        self.lambda_ = self._lambda(batch.step)
        x = torch.cat([source, target]).float()
        labels = torch.cat(
            [
                torch.zeros(len(source), dtype=torch.long, device=x.device),
                torch.ones(len(target), dtype=torch.long, device=x.device),
            ]
        )
        # The classifier is small: fp32 whatever the run's autocast precision.
        with torch.autocast(device_type=x.device.type, enabled=False):
            logits = self.classifier(grad_reverse(x, self.lambda_))
            loss = F.cross_entropy(logits, labels)
        self.correct += int((logits.detach().argmax(1) == labels).sum())
        self.seen += len(labels)
        return {"domain": self.config.weight * loss}

    def state_dict(self) -> dict[str, Any]:
        """The classifier's weights and the epoch's accuracy counters."""
        assert self.classifier is not None, "setup() was not called"
        return {
            "classifier": {k: v.detach().cpu().clone() for k, v in self.classifier.state_dict().items()},
            "epoch": self.epoch,
            "correct": self.correct,
            "seen": self.seen,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (a checkpoint without it keeps the fresh classifier)."""
        if not state:
            return
        assert self.classifier is not None, "setup() was not called"
        self.classifier.load_state_dict(state["classifier"])
        self.epoch, self.correct, self.seen = int(state["epoch"]), int(state["correct"]), int(state["seen"])

    def log_metrics(self) -> dict[str, float]:
        """``{"accuracy": classifier accuracy over the epoch in %, "lambda": the GRL factor now}``."""
        import torch

        from vgloc.training.distributed import all_reduce_mean

        trainer = self.trainer
        assert trainer is not None, "setup() was not called"
        counts = torch.tensor([float(self.correct), float(self.seen)], device=trainer.device)
        # Every process sees as many images per step: the mean of the counts gives the global ratio.
        correct, seen = all_reduce_mean(counts, trainer.dist).tolist()
        accuracy = 100.0 * correct / seen if seen else float("nan")
        return {"accuracy": accuracy, "lambda": self.lambda_}


def check_domain_adapt(s: DomainAdaptConfig, cfg: Any) -> list[str]:
    """Value rules of the ``da`` section."""
    problems = []
    if s.enabled and s.target is None:
        problems.append("da.enabled=true needs da.target=DIR (a folder of unlabelled target-domain images)")
    if (
        s.target is not None
        and Path(s.target).expanduser().is_absolute()
        and not Path(s.target).expanduser().is_dir()
    ):
        # Cheap, and found before the datasets are loaded; a relative name may be a folder of
        # the training split, which the add-on's setup resolves (and refuses when missing).
        problems.append(f"da.target={s.target!r}: no such folder")
    if s.weight < 0:
        problems.append(f"da.weight={s.weight} must be >= 0")
    if s.grl_lambda < 0:
        problems.append(f"da.grl_lambda={s.grl_lambda} must be >= 0")
    if s.lr is not None and s.lr <= 0:
        problems.append(f"da.lr={s.lr} must be > 0 or null (optim.lr)")
    if s.hidden < 1:
        problems.append(f"da.hidden={s.hidden} must be >= 1")
    if s.batch_size is not None and s.batch_size < 1:
        problems.append(f"da.batch_size={s.batch_size} must be >= 1 or null (the method's batch)")
    return problems


register_addon(
    TrainingAddon(
        name="da",
        config_class=DomainAdaptConfig,
        addon="vgloc.training.addons.domain_adapt:DomainAdaptAddon",
        help="domain adaptation: a domain classifier behind a gradient reversal layer (DANN); --set da.target=DIR",
        check=check_domain_adapt,
    )
)
