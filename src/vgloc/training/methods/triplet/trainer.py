"""Triplet training as in the VG benchmark (PROTOCOLS 1.1-1.3).

An epoch is ``queries_per_epoch`` (5000) queries in ``queries_per_epoch /
cache_refresh_rate`` (5) cache refreshes. Each refresh:

1. samples ``cache_refresh_rate`` (1000) training queries without replacement, and
   the random database candidates of the mining mode (:class:`~vgloc.training.methods.triplet.mining.TripletMiner`);
2. computes, with the current model in inference mode, descriptors of exactly the
   images the miner needs (the sampled queries, their hard positives, the candidates);
3. mines one tuple per query: the best positive (nearest hard positive in descriptor
   space) and the ``negs_per_query`` (10) hardest negatives;
4. trains on the tuples in order (no shuffle, incomplete last batch dropped, VGB
   train.py:113-126), ``batch_size`` (4) queries per step, i.e. 4 x 12 images, with
   the loss of :func:`vgloc.losses.create_triplet_loss` (VGB: triplet margin 0.1 on
   L2 distances, mean over all triplets).

Queries are augmented (``augment`` section; off in VGB), positives and negatives only
resized. After each epoch the model is validated on the val split; the best model by
R@5 is kept and training stops after ``patience`` (3) epochs without improvement.
ResNet layers before ``layer3`` are frozen (VGB network.py:118-129) unless
``model.train_all_layers``. A NetVLAD aggregator is initialised from training images
(database and queries, 500 x 100 local descriptors, PROTOCOLS 1.3) when the run is
neither resumed nor started from weights.

On data with fewer trainable queries than one refresh, the refresh and the epoch
shrink to fit (:mod:`.adapt`, ``data.adapt``).

Deviations: the cache and the validation use ``data.image_size`` (VGB: 480x640 for
both by default, so the same); mining draws come from the miner's own seeded
generator (see :mod:`vgloc.training.methods.triplet.mining`).
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from vgloc.config import AugmentConfig, ConfigError, TrainConfig
from vgloc.data.records import GeoImageSet
from vgloc.training.adapt import AdaptationPlan
from vgloc.training.augment import ImageLoader, TrainAugment
from vgloc.training.data import EvalImageDataset, sample_seeds
from vgloc.training.distributed import all_gather_object
from vgloc.training.engine import Trainer, TrainResult
from vgloc.training.methods.triplet.adapt import plan_triplet
from vgloc.training.methods.triplet.mining import TripletMiner

__all__ = ["TripletDataset", "TripletTrainer", "train_triplet"]

log = logging.getLogger(__name__)

# Streams of the counter-based generators (seed, stream, epoch, refresh).
_AUG_STREAM = 11
_LOADER_STREAM = 12


class TripletDataset(Dataset[Tensor]):
    """The images of mined tuples: item ``i`` is tuple ``i`` as one stacked tensor.

    Args:
        tuples: ``(R, 2 + negs)`` int64 rows ``[query, positive, negative...]``.
        query_loader: Loads training queries by index.
        db_loader: Loads database images by index.
        query_augment: Applied to the query with its seed.
        plain: Normalisation only (positives and negatives).
        seeds: ``(R,)`` augmentation seeds, or None for no augmentation.

    Shape:
        - Output: ``(2 + negs, 3, H, W)``: query, positive, negatives.
    """

    def __init__(
        self,
        tuples: np.ndarray,
        query_loader: ImageLoader,
        db_loader: ImageLoader,
        query_augment: TrainAugment,
        plain: TrainAugment,
        seeds: np.ndarray | None,
    ) -> None:
        self.tuples = np.asarray(tuples, dtype=np.int64)
        self.query_loader = query_loader
        self.db_loader = db_loader
        self.query_augment = query_augment
        self.plain = plain
        self.seeds = seeds

    def __len__(self) -> int:
        return len(self.tuples)

    def __getitem__(self, i: int) -> Tensor:
        q, p, *negs = (int(v) for v in self.tuples[i])
        seed = None if self.seeds is None else int(self.seeds[i])
        images = [self.query_augment(self.query_loader(q), seed), self.plain(self.db_loader(p), None)]
        images += [self.plain(self.db_loader(n), None) for n in negs]
        return torch.stack(images)


def concat_image_sets(sets: list[GeoImageSet], name: str) -> GeoImageSet:
    """Concatenate image sets of one metric frame (e.g. several query folders).

    Args:
        sets: The sets, in order.
        name: Label of the result.

    Returns:
        One set with all images.
    """
    if len(sets) == 1:
        return sets[0]
    return GeoImageSet(
        paths=[p for s in sets for p in s.paths],
        utm=np.concatenate([s.utm for s in sets]),
        latlon=np.concatenate([s.latlon for s in sets]),
        heading=np.concatenate([s.heading for s in sets]),
        frame=sets[0].frame,
        name=name,
    )


class TripletTrainer(Trainer):
    """VG-benchmark triplet training (see the module docstring).

    Args:
        config: A resolved config with ``method == "triplet"``.
        run_dir: Run folder (default: the resumed run's, else ``runs/<time>-train-triplet``).
        resume: Run folder or checkpoint to continue.
    """

    method = "triplet"

    def __init__(
        self, config: TrainConfig, *, run_dir: str | Path | None = None, resume: str | Path | None = None
    ):
        super().__init__(config, run_dir=run_dir, resume=resume)
        self.tuples: np.ndarray | None = None
        self.tuples_key: tuple[int, int] | None = None

    # ------------------------------------------------------------------ data
    def load_data(self) -> None:
        """Load the splits and the training queries (``data.train_queries``), and build the miner."""
        super().load_data()
        cfg, t, train = self.cfg, self.cfg.triplet, self.train_split
        missing = [d for d in cfg.data.train_queries if d not in train.queries]
        if missing:
            raise ConfigError(
                f"data.train_queries: no folder {missing} in {train.root}/{train.split}; found {train.domains}"
            )
        self.database = train.database
        self.queries = concat_image_sets(
            [train.queries[d] for d in cfg.data.train_queries], "training queries"
        )
        # Built now (no random draw happens before the first refresh): its positives are what
        # the adaptation counts, and nothing it depends on is adapted.
        try:
            self.miner = TripletMiner(
                self.database.utm,
                self.queries.utm,
                pos_radius=t.pos_radius_m,
                neg_radius=t.neg_radius_m,
                negs_per_query=t.negs_per_query,
                mode=t.mining,
                neg_samples=t.neg_samples,
                seed=cfg.runtime.seed,
                max_removed_fraction=t.max_removed_fraction,
            )
        except ValueError as err:
            raise ConfigError(f"cannot mine triplets on {train.root} [{train.split}]: {err}") from err

    def adapt_to_data(self) -> AdaptationPlan:
        """The cache refresh and the epoch for the trainable queries (:func:`.adapt.plan_triplet`)."""
        return plan_triplet(
            self.cfg, len(self.miner.trainable_query_ids), len(self.queries), self.dist.world_size
        )

    def prepare_data(self) -> None:
        """Check everything can be mined with the final settings; build the loss and the image loaders."""
        from vgloc.losses import create_triplet_loss

        cfg, t = self.cfg, self.cfg.triplet
        n_ok = len(self.miner.trainable_query_ids)
        if t.cache_refresh_rate > n_ok:
            raise ConfigError(
                f"triplet.cache_refresh_rate={t.cache_refresh_rate} queries are drawn per cache refresh without "
                f"replacement, but only {n_ok} of the {len(self.queries)} training queries have a database image "
                f"within triplet.pos_radius_m={t.pos_radius_m} m: set triplet.cache_refresh_rate<={n_ok} and "
                "triplet.queries_per_epoch to a multiple of it (or add query folders with data.train_queries)"
            )
        self.per_rank(t.batch_size, "triplet.batch_size")
        # Draw one refresh on a copy now, so that a database too small or too concentrated to
        # give every query its negatives fails here rather than after the first epoch.
        probe = copy.deepcopy(self.miner)
        try:
            probe.plan(probe.sample_queries(t.cache_refresh_rate))
        except ValueError as err:
            raise ConfigError(f"triplet mining cannot work on this data: {err}") from err
        kwargs: dict[str, Any] = dict(t.loss_params)
        if t.loss == "triplet":
            kwargs.setdefault("margin", t.margin)
        try:
            self.loss_fn = create_triplet_loss(t.loss, **kwargs)
        except (TypeError, ValueError) as err:
            raise ConfigError(
                f"triplet.loss={t.loss!r} with triplet.loss_params={t.loss_params}: {err}"
            ) from err
        size = cfg.data.image_size
        self.query_loader = ImageLoader(self.queries.paths, size, cache=cfg.data.cache_images)
        self.db_loader = ImageLoader(self.database.paths, size, cache=cfg.data.cache_images)
        self.query_loader.preload()
        self.db_loader.preload()
        self.query_augment = TrainAugment(cfg.augment, size)
        self.plain = TrainAugment(AugmentConfig(), size)
        log.info(
            "triplet data: %d database images, %d training queries (%d with a positive within %g m), "
            "%d val database images; %d steps per epoch of %d queries",
            len(self.database),
            len(self.queries),
            n_ok,
            t.pos_radius_m,
            len(self.val_split.database),
            self.steps_per_epoch(),
            t.batch_size,
        )

    def initialize_from_data(self) -> None:
        """Initialise NetVLAD clusters from training images (PROTOCOLS 1.3) when needed."""
        from vgloc.models import initialize_netvlad

        agg = self.model.aggregator
        if not getattr(agg, "requires_data_init", False) or getattr(agg, "initialized", True):
            return
        m = self.cfg.model
        all_paths = list(self.database.paths) + list(self.queries.paths)
        loader = ImageLoader(all_paths, self.cfg.data.image_size, cache=False)
        dataset = EvalImageDataset(loader, range(len(all_paths)), self.plain)
        log.info(
            "initialising %s clusters from %d training images x %d local descriptors",
            type(agg).__name__,
            min(m.netvlad_init_images, len(all_paths)),
            m.netvlad_init_per_image,
        )
        initialize_netvlad(
            self.model,
            dataset,
            num_images=m.netvlad_init_images,
            per_image=m.netvlad_init_per_image,
            batch_size=self.cfg.triplet.infer_batch_size,
            device=self.device,
            seed=self.cfg.runtime.seed,
        )

    # ------------------------------------------------------------------ epochs
    @property
    def steps_per_refresh(self) -> int:
        """Steps trained on one refresh's tuples (incomplete last batch dropped)."""
        return self.cfg.triplet.cache_refresh_rate // self.cfg.triplet.batch_size

    @property
    def refreshes_per_epoch(self) -> int:
        """Cache refreshes per epoch."""
        return self.cfg.triplet.queries_per_epoch // self.cfg.triplet.cache_refresh_rate

    def steps_per_epoch(self) -> int:
        """``refreshes_per_epoch * steps_per_refresh`` (VGB: 5 x 250 = 1250)."""
        return self.refreshes_per_epoch * self.steps_per_refresh

    def mine(self, epoch: int, refresh: int) -> np.ndarray:
        """Sample queries, compute the cache with the current model and mine tuples.

        Args:
            epoch: 0-based epoch (for messages).
            refresh: Refresh within the epoch.

        Returns:
            ``(cache_refresh_rate, 2 + negs_per_query)`` int64 rows.
        """
        t = self.cfg.triplet
        start = time.perf_counter()
        query_ids = self.miner.sample_queries(t.cache_refresh_rate)
        plan = self.miner.plan(query_ids)
        q_desc = self.extract(
            EvalImageDataset(self.query_loader, plan.query_ids, self.plain),
            t.infer_batch_size,
            "training queries",
        )
        db_desc = self.extract(
            EvalImageDataset(self.db_loader, plan.db_ids, self.plain),
            t.infer_batch_size,
            "the database cache",
        )
        tuples = self.miner.mine(plan, q_desc, db_desc)
        log.debug(
            "epoch %d refresh %d: mined %d tuples from a cache of %d queries + %d database images in %.1f s",
            epoch + 1,
            refresh + 1,
            len(tuples),
            len(plan.query_ids),
            len(plan.db_ids),
            time.perf_counter() - start,
        )
        self.reset_step_timer()  # images/s measures training steps, not the cache pass
        return np.array([[tr.query_id, tr.positive_id, *tr.negative_ids] for tr in tuples], dtype=np.int64)

    def train_epoch(self, epoch: int, start_step: int) -> None:
        """Run the refreshes of one epoch from ``start_step`` on."""
        r0, s0 = divmod(start_step, self.steps_per_refresh)
        for refresh in range(r0, self.refreshes_per_epoch):
            first = s0 if refresh == r0 else 0
            if first == 0 or self.tuples is None or self.tuples_key != (epoch, refresh):
                if first:
                    raise RuntimeError(
                        f"resuming inside refresh {refresh + 1} of epoch {epoch + 1} needs that refresh's tuples, "
                        "which the checkpoint does not hold"
                    )
                self.tuples = self.mine(epoch, refresh)
                self.tuples_key = (epoch, refresh)
                self._check_same_tuples()
            self._train_on_tuples(epoch, refresh, first)
        self.tuples, self.tuples_key = None, None

    def _check_same_tuples(self) -> None:
        """Every process must train on the same tuples (each takes its slice of every batch)."""
        if not self.dist.enabled or self.tuples is None:
            return
        import hashlib

        digest = hashlib.sha1(np.ascontiguousarray(self.tuples).tobytes()).hexdigest()
        digests = all_gather_object(digest, self.dist)
        if len(set(digests)) > 1:
            raise RuntimeError(
                "the processes mined different triplets (their gathered descriptors differ); mining must be "
                "deterministic across processes"
            )

    def _train_on_tuples(self, epoch: int, refresh: int, first: int) -> None:
        assert self.tuples is not None
        t, seed = self.cfg.triplet, self.cfg.runtime.seed
        big_b = t.batch_size
        b = self.per_rank(big_b, "triplet.batch_size")
        k = 2 + t.negs_per_query
        seeds = (
            sample_seeds(seed, _AUG_STREAM, epoch, refresh, n=len(self.tuples))
            if self.query_augment.enabled
            else None
        )
        offset = self.dist.rank * b
        batches = [[s * big_b + offset + j for j in range(b)] for s in range(first, self.steps_per_refresh)]
        dataset = TripletDataset(
            self.tuples, self.query_loader, self.db_loader, self.query_augment, self.plain, seeds
        )
        loader = DataLoader(
            dataset,
            batch_sampler=batches,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=self.loader_generator(seed, _LOADER_STREAM, epoch, refresh),
        )
        for images in loader:
            x = self.to_device(images.flatten(0, 1))

            def compute_loss(x: Tensor = x) -> Tensor:
                desc = self.forward(x).float().view(b, k, -1)
                return self.loss_fn(desc[:, 0], desc[:, 1:2], desc[:, 2:])

            loss = self.optimizer_step(compute_loss, optimizers=[self.optimizer])
            self.after_step(epoch, loss, images=big_b * k)

    # ------------------------------------------------------------------ state
    def method_state(self) -> dict[str, Any]:
        """The miner's random state and negative cache, and the current refresh's tuples."""
        mid = self.epoch_step % self.steps_per_refresh != 0 and self.tuples is not None
        return {
            "miner": {
                "rng": self.miner.rng.bit_generator.state,
                "neg_cache": {
                    int(q): torch.from_numpy(v.astype(np.int64)) for q, v in self.miner.neg_cache.items()
                },
            },
            "tuples": torch.from_numpy(self.tuples) if mid and self.tuples is not None else None,
            "tuples_key": list(self.tuples_key) if mid and self.tuples_key is not None else None,
        }

    def load_method_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`method_state` output."""
        miner = state.get("miner")
        if miner:
            self.miner.load_state_dict(
                {
                    "rng": miner["rng"],
                    "neg_cache": {int(q): np.asarray(v) for q, v in miner["neg_cache"].items()},
                }
            )
        if state.get("tuples") is not None:
            self.tuples = np.asarray(state["tuples"], dtype=np.int64)
            key = state["tuples_key"]
            self.tuples_key = (int(key[0]), int(key[1]))


def train_triplet(
    config: TrainConfig, *, run_dir: str | Path | None = None, resume: str | Path | None = None
) -> TrainResult:
    """Train with VG-benchmark triplets (see the module docstring).

    Args:
        config: Resolved config (``method: triplet``), e.g. from
            :func:`vgloc.config.resolve_config`.
        run_dir: Run folder; default ``runs/<time>-train-triplet`` (or the resumed run's).
        resume: A run folder or ``last.pt`` to continue.

    Returns:
        The :class:`~vgloc.training.engine.TrainResult`.

    Example:
        >>> cfg = resolve_config("triplet", overrides=["data.root=data/city"])  # doctest: +SKIP
        >>> result = train_triplet(cfg, run_dir="runs/triplet")  # doctest: +SKIP
    """
    return TripletTrainer(config, run_dir=run_dir, resume=resume).run()
