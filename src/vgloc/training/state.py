"""A trainer's full state as a checkpoint payload, and back (see :mod:`vgloc.training.checkpoint`).

Split from the engine: :func:`checkpoint_payload` gathers everything a run needs to
continue bit-exactly (model, optimizer, scheduler, scaler, counters, the metric
accumulators, best-so-far, history, every process's RNG states, the method's and the
add-ons' states); :func:`restore_state` puts it back into a trainer whose model,
method objects, add-ons and optimizer are built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vgloc.training.checkpoint import CheckpointMismatchError, capture_rng_state
from vgloc.training.distributed import all_gather_object

if TYPE_CHECKING:
    from vgloc.training.engine import Trainer

__all__ = ["checkpoint_payload", "restore_state"]


def checkpoint_payload(trainer: Trainer) -> dict[str, Any] | None:
    """The checkpoint of ``trainer`` (collective: every process must call it).

    Returns:
        The payload on rank 0, None on the other ranks.
    """
    t = trainer
    rng = all_gather_object(capture_rng_state(), t.dist)
    method_state = t.method_state()
    addons = {a.name: a.state_dict() for a in t.addons}
    if not t.dist.is_main:
        return None
    return {
        "method": t.method,
        "config": t.cfg.to_dict(),
        "model_spec": t.model.spec,
        "model": {k: v.detach().cpu() for k, v in t.model.state_dict().items()},
        "optimizer": t.optimizer.state_dict(),
        "scheduler": None if t.scheduler is None else t.scheduler.state_dict(),
        "scaler": t.scaler.state_dict() if t.scaler.is_enabled() else None,
        "epoch": t.epochs_done,
        "epoch_step": t.epoch_step,
        "global_step": t.global_step,
        "accum": {k: (dict(v) if isinstance(v, dict) else v) for k, v in t.accum.items()},
        "best": {
            "value": float(t.best["value"]),
            "epoch": int(t.best["epoch"]),
            "recalls": {d: {int(n): float(v) for n, v in r.items()} for d, r in t.best["recalls"].items()},
        },
        "not_improved": t.not_improved,
        "history": [dict(r) for r in t.history],
        "rng": rng,
        "method_state": method_state,
        "addons": addons,
    }


def restore_state(trainer: Trainer, ckpt: dict[str, Any]) -> None:
    """Load a checkpoint into ``trainer`` (model, optimizer, counters, method and add-on states).

    The RNG states are restored separately, last (see the engine's ``_run``).

    Raises:
        CheckpointMismatchError: The checkpoint's model or optimizer does not fit.
    """
    t = trainer
    if ckpt.get("model_spec") != t.model.spec:
        raise CheckpointMismatchError(
            f"the checkpoint holds a {ckpt.get('model_spec')!r} model, but this run builds {t.model.spec!r}"
        )
    try:
        t.model.load_state_dict(ckpt["model"], strict=True)
    except RuntimeError as err:
        raise CheckpointMismatchError(
            f"the checkpoint's weights do not fit model {t.model.spec!r}: {str(err).splitlines()[0]}"
        ) from err
    try:
        t.optimizer.load_state_dict(ckpt["optimizer"])
    except (ValueError, KeyError) as err:
        raise CheckpointMismatchError(
            f"the checkpoint's optimizer state does not fit this run's trainable parameters ({err}); "
            "was model.train_all_layers, optim.name or an add-on with parameters changed?"
        ) from err
    if t.scheduler is not None and ckpt.get("scheduler") is not None:
        t.scheduler.load_state_dict(ckpt["scheduler"])
    if t.scaler.is_enabled() and ckpt.get("scaler"):
        t.scaler.load_state_dict(ckpt["scaler"])
    t.epochs_done = int(ckpt["epoch"])
    t.epoch_step = int(ckpt["epoch_step"])
    t.global_step = int(ckpt["global_step"])
    accum = dict(ckpt.get("accum") or {})
    accum["terms"] = dict(accum.get("terms") or {})  # checkpoints before add-ons have none
    t.accum = {**t.accum, **accum}
    best = ckpt["best"]
    t.best = {"value": float(best["value"]), "epoch": int(best["epoch"]), "recalls": best["recalls"]}
    t.not_improved = int(ckpt["not_improved"])
    t.history = [dict(r) for r in ckpt.get("history", [])]
    t.load_method_state(ckpt.get("method_state") or {})
    states = ckpt.get("addons") or {}
    for addon in t.addons:
        addon.load_state_dict(states.get(addon.name) or {})
