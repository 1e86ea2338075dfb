"""Value rules of the shared sections, run by :meth:`vgloc.config.TrainConfig.validate`.

Method and add-on sections bring their own rules with their registration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vgloc.config.values import parse_recall_metric

if TYPE_CHECKING:
    from vgloc.config.training import TrainConfig

__all__ = ["check_shared"]


def check_shared(cfg: TrainConfig) -> list[str]:
    """Problems with the shared sections' values, one message per broken rule (each names its key)."""
    problems: list[str] = []

    def need(ok: bool, msg: str) -> None:
        if not ok:
            problems.append(msg)

    d, m, o, s, a, v, r = (
        cfg.data,
        cfg.model,
        cfg.optim,
        cfg.schedule,
        cfg.augment,
        cfg.validation,
        cfg.runtime,
    )
    need(all(x >= 16 for x in d.image_size), f"data.image_size={list(d.image_size)}: H and W must be >= 16")
    need(bool(d.train_queries), "data.train_queries is empty: name at least one query folder")
    need(bool(m.spec), "model.spec is empty")
    need(m.netvlad_init_images >= 1, f"model.netvlad_init_images={m.netvlad_init_images} must be >= 1")
    need(
        m.netvlad_init_per_image >= 1,
        f"model.netvlad_init_per_image={m.netvlad_init_per_image} must be >= 1",
    )
    need(o.lr > 0, f"optim.lr={o.lr} must be > 0")
    need(o.weight_decay is None or o.weight_decay >= 0, f"optim.weight_decay={o.weight_decay} must be >= 0")
    need(0 <= o.momentum < 1, f"optim.momentum={o.momentum} must be in [0, 1)")
    need(all(0 <= b < 1 for b in o.betas), f"optim.betas={list(o.betas)} must be in [0, 1)")
    need(s.epochs >= 1, f"schedule.epochs={s.epochs} must be >= 1")
    need(s.patience is None or s.patience >= 1, f"schedule.patience={s.patience} must be >= 1 or null")
    n_sel = parse_recall_metric(s.select_metric)
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
    for key in ("brightness", "contrast", "saturation"):
        need(getattr(a, key) >= 0, f"augment.{key}={getattr(a, key)} must be >= 0")
    need(0 <= a.hue <= 0.5, f"augment.hue={a.hue} must be in [0, 0.5]")
    if a.random_resized_crop is not None:
        lo, hi = a.random_resized_crop
        need(0 < lo <= hi <= 1, f"augment.random_resized_crop={[lo, hi]} must satisfy 0 < min <= max <= 1")
    need(
        a.night_brightness is None or a.night_brightness > 0,
        f"augment.night_brightness={a.night_brightness} must be > 0 (e.g. 0.15)",
    )
    need(0 <= a.night_probability <= 1, f"augment.night_probability={a.night_probability} must be in [0, 1]")
    need(bool(v.domains), "validation.domains is empty: name at least one val query folder")
    need(
        bool(v.recall_values) and all(n >= 1 for n in v.recall_values),
        f"validation.recall_values={v.recall_values} must be positive integers",
    )
    need(v.threshold_m > 0, f"validation.threshold_m={v.threshold_m} must be > 0")
    need(v.batch_size >= 1, f"validation.batch_size={v.batch_size} must be >= 1")
    if v.image_size is not None:
        need(all(x >= 16 for x in v.image_size), f"validation.image_size={list(v.image_size)} must be >= 16")
    need(r.num_workers is None or r.num_workers >= 0, f"runtime.num_workers={r.num_workers} must be >= 0")
    need(r.num_threads is None or r.num_threads >= 1, f"runtime.num_threads={r.num_threads} must be >= 1")
    need(r.accumulation_steps >= 1, f"runtime.accumulation_steps={r.accumulation_steps} must be >= 1")
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
    return problems
