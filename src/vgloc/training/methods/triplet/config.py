"""The ``triplet`` config section and preset: VG-benchmark triplet training (PROTOCOLS 1.1-1.3).

Cheap to import (no torch): :mod:`vgloc.config` builds its ``triplet`` section from
:class:`TripletConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from vgloc.config import TrainConfig

__all__ = ["TRIPLET_PRESET", "TripletConfig", "check_triplet"]


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


#: Values where the VG benchmark differs from the shared defaults (none differ today: the
#: shared defaults are the VG benchmark's; listed so that the recipe reads in one place).
TRIPLET_PRESET: dict[str, tuple[Any, str]] = {
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
}


def check_triplet(t: TripletConfig, cfg: TrainConfig) -> list[str]:
    """Value rules of the ``triplet`` section (cross-field ones only when the method is triplet)."""
    problems: list[str] = []

    def need(ok: bool, msg: str) -> None:
        if not ok:
            problems.append(msg)

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
    if cfg.method == "triplet" and t.queries_per_epoch % max(t.cache_refresh_rate, 1):
        # VGB stops with an error here too (parser.py:101-103).
        problems.append(
            f"triplet.queries_per_epoch={t.queries_per_epoch} must be a multiple of "
            f"triplet.cache_refresh_rate={t.cache_refresh_rate}"
        )
    if cfg.method == "triplet" and t.cache_refresh_rate < t.batch_size:
        problems.append(
            f"triplet.cache_refresh_rate={t.cache_refresh_rate} is smaller than triplet.batch_size="
            f"{t.batch_size}: a refresh would not fill one batch"
        )
    return problems
