"""Shared by the study scripts (``study_*.py``): one recipe, a cache of trained runs, evaluation.

Every study trains the same way (the CosPlace method with CosFace on the synthetic
city, model ``tiny+gem+fc64`` at 72x96 from the same random weights, seed 0) and
changes only what its table compares. Budgets are fixed *steps* (epochs x iterations
per epoch), never wall-clock, so a run gives the same model however loaded the
machine is.

Trained runs are cached by their settings (:func:`run_key`): the folder
``<work>/runs/<key>/`` holds the run and ``study_run.json`` once it finished, so a
study that needs a model another study trained (multi-scale, ensembles, soups)
reuses it instead of training again. A lock file per key lets two studies running at
the same time wait for each other instead of training the same run twice.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

SPLITS = ("test",)
DOMAINS = ("queries", "queries_night")
DOMAIN_NAMES = {"queries": "day", "queries_night": "night"}
MODEL = "tiny+gem+fc64"
IMAGE_SIZE = "72,96"

# Keys that only change how a run reports or where it lives, not the model it trains:
# left out of the cache key.
NOT_IN_KEY = ("data.root", "runtime.progress", "runtime.tensorboard", "runtime.log_files")

# Colour jitter off (as bench_train_city): a random-weight model needs many more steps with it.
NO_JITTER = ["augment.brightness=0", "augment.contrast=0", "augment.saturation=0", "augment.hue=0"]


@dataclass(frozen=True)
class Budget:
    """A fixed step budget: ``epochs`` x ``iterations`` steps of ``batch`` images."""

    epochs: int = 8
    iterations: int = 800
    batch: int = 32

    @property
    def steps(self) -> int:
        """Total optimisation steps."""
        return self.epochs * self.iterations


@dataclass
class RunSpec:
    """One training run: a label for tables and the ``key=value`` settings that define it.

    ``settings`` are added to :func:`base_settings` (later ones win, as in ``--set``).
    """

    label: str
    settings: list[str] = field(default_factory=list)
    method: str = "cosplace"


def base_settings(budget: Budget, seed: int = 0) -> list[str]:
    """The study recipe as ``key=value`` overrides of the ``cosplace`` preset (no data root).

    Adam lr 1e-3 constant, CosFace, validation on val day queries after every epoch
    (the best val R@1 epoch is ``best_model.pt``), snapshots after every epoch (for
    soups), one torch thread.
    """
    return [
        f"model.spec={MODEL}",
        "model.pretrained=false",
        f"data.image_size={IMAGE_SIZE}",
        "data.cache_images=true",
        "data.validate_images=false",
        "optim.name=adam",
        "optim.lr=0.001",
        f"schedule.epochs={budget.epochs}",
        "schedule.patience=null",
        "schedule.max_minutes=null",
        "schedule.select_metric=R@1",
        "schedule.scheduler=none",
        *NO_JITTER,
        "cosplace.loss=cosface",
        f"cosplace.batch_size={budget.batch}",
        f"cosplace.iterations_per_epoch={budget.iterations}",
        "validation.domains=queries",
        "validation.recall_values=1,5",
        "validation.before_training=true",
        "snapshots.enabled=true",
        "runtime.device=cpu",
        "runtime.num_workers=0",
        "runtime.num_threads=1",
        f"runtime.seed={seed}",
        "runtime.progress=false",
        "runtime.tensorboard=false",
    ]


def effective_settings(settings: Sequence[str]) -> dict[str, str]:
    """``key=value`` list -> dict, the last value of a key winning (as ``--set`` does)."""
    out: dict[str, str] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"not a key=value setting: {item!r}")
        out[key.strip()] = value.strip()
    return out


def run_key(method: str, city: str, settings: Sequence[str]) -> str:
    """The cache key of a run: a hash of the method, the city and the settings that shape the model.

    Order of the settings does not matter, a repeated key counts with its last value,
    and keys in ``NOT_IN_KEY`` (paths, logging) are ignored.
    """
    eff = {k: v for k, v in effective_settings(settings).items() if k not in NOT_IN_KEY}
    blob = json.dumps({"method": method, "city": city, "settings": sorted(eff.items())})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def city_root(size: str, seed: int) -> tuple[str, Path]:
    """(name, root) of the synthetic city, generated on first use."""
    from vgloc.data.synthetic import generate_city
    from vgloc.demo import cache_dir

    name = f"{size}-seed{seed}"
    return name, generate_city(cache_dir() / "synthetic" / name, size, seed)


def default_work_dir() -> Path:
    """Where the run cache lives by default (``<vgloc cache>/study``)."""
    from vgloc.demo import cache_dir

    return cache_dir() / "study"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _train_one(method: str, city: str, root: str, settings: list[str], work: str) -> dict[str, Any]:
    """Train one run unless cached; return its ``study_run.json`` record (runs in a worker process)."""
    key = run_key(method, city, settings)
    run_dir = Path(work) / "runs" / key
    import torch

    torch.set_num_threads(1)  # also for the evaluations in this process
    done = run_dir / "study_run.json"
    with _locked(Path(work) / "runs" / f"{key}.lock"):
        if done.is_file():
            return json.loads(done.read_text())
        if run_dir.exists():  # an unfinished run (killed): start again from scratch
            shutil.rmtree(run_dir)
        from vgloc.config import resolve_config
        from vgloc.io import write_json_atomic
        from vgloc.training import train

        # "{root}" in a value (e.g. a da.target folder of the city) stands for the city's root, so
        # the key does not depend on where the cache lives.
        settings = [s.replace("{root}", root) for s in settings]
        cfg = resolve_config(method, overrides=[f"data.root={root}", *settings])
        t0 = time.perf_counter()
        result = train(cfg, run_dir=run_dir)
        history = [{k: v for k, v in r.items() if isinstance(v, (int, float))} for r in result.history]
        record = {
            "key": key,
            "method": method,
            "city": city,
            "settings": list(settings),
            "global_step": result.global_step,
            "train_seconds": time.perf_counter() - t0,
            "history": history,
        }
        write_json_atomic(done, record)
        return record


def train_runs(
    specs: Sequence[RunSpec],
    *,
    city: str,
    root: Path,
    base: Sequence[str],
    work: Path,
    jobs: int,
    cached_only: bool = False,
) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Train (or reuse) every run, ``jobs`` at a time; label -> (run folder, record).

    With ``cached_only``, runs not in the cache are left out (and named on stderr).
    """
    out: dict[str, tuple[Path, dict[str, Any]]] = {}
    if cached_only:
        for spec in specs:
            key = run_key(spec.method, city, [*base, *spec.settings])
            done = work / "runs" / key / "study_run.json"
            if done.is_file():
                out[spec.label] = (work / "runs" / key, json.loads(done.read_text()))
            else:
                print(f"[study] {spec.label}: run {key} not in the cache, left out", file=sys.stderr)
        return out
    ctx = get_context("spawn")  # fresh interpreters: no torch state shared with the parent
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=ctx) as pool:
        futures = {}
        for spec in specs:
            settings = [*base, *spec.settings]
            key = run_key(spec.method, city, settings)
            print(f"[study] {spec.label}: run {key}", file=sys.stderr)
            futures[spec.label] = (
                key,
                pool.submit(_train_one, spec.method, city, str(root), settings, str(work)),
            )
        for label, (key, fut) in futures.items():
            record = fut.result()
            print(
                f"[study] {label}: done ({record['global_step']} steps, "
                f"{record['train_seconds'] / 60:.1f} min when trained)",
                file=sys.stderr,
            )
            out[label] = (work / "runs" / key, record)
    return out


def evaluate_model(
    root: Path,
    checkpoint: Path | Sequence[Path],
    *,
    cache: Path | None = None,
    splits: Sequence[str] = SPLITS,
    extraction: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, dict[str, dict[str, float]]]:
    """R@1/R@5 per split and domain (day, night) of one model file; cached in ``cache`` (JSON) by arguments.

    ``extraction`` adds fields of :class:`vgloc.api.ExtractionOptions` (e.g. ``scales``,
    ``scale_fusion``); ``kwargs`` go to :func:`vgloc.api.evaluate`, or with several
    checkpoints (an ensemble) to :func:`vgloc.api.evaluate_ensemble` (``ensemble=``,
    ``lead=``). The result is ``{split: {domain: {"R@1": ..., "R@5": ...}}}``.
    """
    import torch

    from vgloc.api import ExtractionOptions, evaluate, evaluate_ensemble

    torch.set_num_threads(1)  # as the trainings: one core per process on a shared machine
    extraction = dict(extraction or {})
    ident = json.dumps(
        {
            "checkpoint": [str(c) for c in checkpoint] if isinstance(checkpoint, list) else str(checkpoint),
            "splits": list(splits),
            "extraction": extraction,
            "kwargs": kwargs,
        },
        sort_keys=True,
        default=str,
    )
    if cache is not None and cache.is_file():
        stored = json.loads(cache.read_text())
        if ident in stored:
            return stored[ident]  # type: ignore[no-any-return]
    h, w = (int(v) for v in IMAGE_SIZE.split(","))
    # Full JPEG decoding (jpeg_draft=False), as when the studies' tables were measured: the
    # default draft decoding moves single queries (benchmarks/bench_draft_recall.py).
    base = {"image_size": (h, w), "batch_size": 32, "precision": "fp32", "num_workers": 0, "progress": False}
    options = ExtractionOptions(**base | {"jpeg_draft": False} | extraction)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for split in splits:
        common = {"domains": list(DOMAINS), "options": options, "report": False}
        if isinstance(checkpoint, list):
            # Each member retrieves K = max(recall_values) and the fused list keeps K: the
            # field's usual 1, 5, 10, 20, so the rules have candidates to merge.
            res = evaluate_ensemble(
                root, split, MODEL, checkpoints=checkpoint, recall_values=(1, 5, 10, 20), **common, **kwargs
            )
        else:
            res = evaluate(
                root, split, MODEL, checkpoint=checkpoint, recall_values=(1, 5), **common, **kwargs
            )
        out[split] = {d: {f"R@{k}": float(v) for k, v in res.domains[d].recalls.items()} for d in DOMAINS}
    if cache is not None:
        from vgloc.io import write_json_atomic

        stored = json.loads(cache.read_text()) if cache.is_file() else {}
        stored[ident] = out
        write_json_atomic(cache, stored)
    return out


def best_val(record: dict[str, Any]) -> tuple[int, float]:
    """(epoch, val day R@1) of the best validation in a run's history (epoch 0 = before training)."""
    best = (0, -1.0)
    for row in record["history"]:
        r1 = row.get("val/queries/R@1", row.get("val/R@1"))
        if r1 is not None and float(r1) > best[1]:
            best = (int(row["epoch"]), float(r1))
    return best


def add_common_args(ap: argparse.ArgumentParser) -> None:
    """The options every study script takes (city, budget, jobs, cache, output)."""
    ap.add_argument("--size", default="medium", help="synthetic city size (default: medium)")
    ap.add_argument("--seed", type=int, default=0, help="city and training seed (default: 0)")
    ap.add_argument("--epochs", type=int, default=Budget.epochs, help="epochs per run")
    ap.add_argument("--iterations", type=int, default=Budget.iterations, help="steps per epoch")
    ap.add_argument("--batch-size", type=int, default=Budget.batch, help="images per step")
    ap.add_argument("--jobs", type=int, default=2, help="runs trained at once, one thread each (default: 2)")
    ap.add_argument("--work-dir", type=Path, default=None, help="run cache (default: <vgloc cache>/study)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ap.add_argument(
        "--cached-only", action="store_true", help="tabulate only the runs already trained (train nothing)"
    )


def budget_of(args: argparse.Namespace) -> Budget:
    """The :class:`Budget` the command line asks for."""
    return Budget(epochs=args.epochs, iterations=args.iterations, batch=args.batch_size)


def recipe_line(args: argparse.Namespace) -> str:
    """One Markdown sentence with the shared recipe and budget."""
    b = budget_of(args)
    return (
        f"City: {args.size} (seed {args.seed}). CosPlace + CosFace, `{MODEL}` at {IMAGE_SIZE.replace(',', 'x')}, "
        f"random init (seed {args.seed}, the same weights for every run), batch {b.batch}, "
        f"{b.epochs} epochs x {b.iterations} steps = {b.steps:,} steps, colour jitter off, "
        "Adam lr 1e-3 constant unless the table says otherwise; best val day R@1 epoch evaluated "
        "on the test district (day `queries`, night `queries_night`)."
    )


def fmt(x: float) -> str:
    """A recall with one decimal."""
    return f"{x:.1f}"


def model_row(label: str, model: Path, root: Path, *, cache: Path, **kwargs: Any) -> dict[str, Any]:
    """``{"label", "model", "test": {domain: {R@1, R@5}}}`` of one model file (evaluation cached)."""
    res = evaluate_model(root, model, cache=cache, **kwargs)
    return {"label": label, "model": str(model), "test": res["test"]}


def run_row(label: str, run_dir: Path, record: dict[str, Any], root: Path, **kwargs: Any) -> dict[str, Any]:
    """:func:`model_row` of a run's ``best_model.pt``, with its best epoch, val R@1 and steps."""
    epoch, val_r1 = best_val(record)
    row = model_row(label, run_dir / "best_model.pt", root, cache=run_dir / "study_eval.json", **kwargs)
    return {
        **row,
        "run": record["key"],
        "best_epoch": epoch,
        "val_day_R@1": val_r1,
        "steps": record["global_step"],
        "train_minutes": record["train_seconds"] / 60,
    }


def recall_cells(row: dict[str, Any]) -> str:
    """``day R@1 | day R@5 | night R@1 | night R@5`` cells of a row."""
    t = row["test"]
    return " | ".join(fmt(t[d][k]) for d in DOMAINS for k in ("R@1", "R@5"))


RECALL_HEADER = "test day R@1 | test day R@5 | test night R@1 | test night R@5"


def print_header(args: argparse.Namespace, title: str) -> dict[str, Any]:
    """Print the command, machine and recipe lines; return the machine record for the JSON."""
    from _machine import command_line, describe_machine, machine_info

    machine = {**machine_info(), "torch_threads": 1}  # every run trains with one thread
    print(f"\n### {title}\n")
    print(f"Command: `{command_line()}`\n")
    print(describe_machine(machine) + "\n")
    print(recipe_line(args) + "\n")
    return machine
