"""``vgloc demo``: the whole pipeline on the built-in synthetic city, in a few minutes.

Generates (or reuses) a small synthetic city in the cache folder, then, for the
same small architecture (``tiny+gem``): indexes the city's test database with random
weights and geolocates every query domain (day, night, fog, occluded); trains it
briefly with CosPlace on the train split (best epoch chosen on val;
:mod:`vgloc.demo_training`) and evaluates that on the same test split. It prints
Recall@N per domain for both models next to the chance level and writes an HTML page
with both side by side (:mod:`vgloc.demo_report`), linking each model's full report
(maps, per-query errors, example retrievals).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vgloc.demo_report import comparison_table, write_comparison_report
from vgloc.demo_training import DemoTraining, train_demo_model
from vgloc.describers import ExtractionOptions
from vgloc.evaluation import EvalResult, evaluate
from vgloc.indexing import build_index
from vgloc.io import cache_dir, write_text_atomic  # cache_dir re-exported: benchmarks and tests use it

if TYPE_CHECKING:
    from vgloc.data.records import GeoImageSet

log = logging.getLogger(__name__)

#: Small enough to train for a few epochs within the demo's budget on 2 CPU cores
#: (benchmarks/results/train_defaults.json); the untrained row is the same architecture.
DEFAULT_DEMO_MODEL = "tiny+gem"
#: Training budget: with city generation and both evaluations the demo stays well under
#: 5 minutes on 2 idle cores (docs/demo.md).
DEFAULT_TRAIN_MINUTES = 1.5


@dataclass
class DemoResult:
    """What the demo produced.

    Attributes:
        dataset: the synthetic city's root.
        index: the untrained model's index of the test database.
        report: the page to open (both models side by side, or the untrained one alone).
        result: the untrained model's evaluation of the test split.
        trained: the trained model's evaluation of the same split, or None.
        trained_index: its index, or None.
        training: the training run (None with ``train_minutes=0``).
        note: why there is no trained row (empty when there is one).
        seconds: wall time of the whole demo.
    """

    dataset: Path
    index: Path
    report: Path
    result: EvalResult
    trained: EvalResult | None = None
    trained_index: Path | None = None
    training: DemoTraining | None = None
    note: str = ""
    seconds: float = 0.0

    def table(self) -> str:
        """Recall@N per domain: chance, untrained and (when there is one) trained rows."""
        return comparison_table(self.result, self.trained)


def run_demo(
    out_dir: str | Path,
    *,
    size: str = "small",
    seed: int = 0,
    model: str = DEFAULT_DEMO_MODEL,
    dataset_dir: str | Path | None = None,
    options: ExtractionOptions | None = None,
    progress: bool = True,
    train_minutes: float = DEFAULT_TRAIN_MINUTES,
    train_overrides: Sequence[str] = (),
) -> DemoResult:
    """Run the demo and return where its outputs are.

    The untrained model is evaluated first, so its row exists whatever happens next;
    then ``model`` is trained from the same random initialisation scheme with CosPlace
    on the city's train split (best epoch picked on the val split,
    :func:`vgloc.demo_training.train_demo_model`) and evaluated on the test split.

    Args:
        out_dir: the run folder: ``report.html`` (the comparison), ``summary.json``,
            ``untrained/`` and ``trained/`` (each an index, ``results.json`` and its full
            ``report.html``), ``train/`` (the training run folder).
        size: synthetic city size (``tiny`` for tests, ``small`` by default).
        seed: city, model and training seed.
        model: the model spec, evaluated with random weights and trained (no weights
            can be downloaded here).
        dataset_dir: where the city is generated/reused (default: the cache folder).
        options: extraction options (default: native resolution of the rendered images,
            bf16 + channels-last on CPUs that run bf16 natively, fp32 otherwise).
        progress: show progress bars.
        train_minutes: the training budget (checked after each epoch; the first epoch
            always runs); 0 skips training.
        train_overrides: more ``key=value`` training settings (``vgloc train --set``).

    Returns:
        A :class:`DemoResult`. When training fails or finishes no epoch, ``trained`` is
        None and ``note`` says why; the untrained result and report are still there.
    """
    if not train_minutes >= 0:
        raise ValueError(f"train_minutes must be >= 0 (0: no training), got {train_minutes}")
    from vgloc.data import load_split
    from vgloc.data.synthetic import generate_city

    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(dataset_dir) if dataset_dir else cache_dir() / "synthetic" / f"{size}-seed{seed}"
    t0 = time.perf_counter()
    root = generate_city(root, size=size, seed=seed, progress=progress)
    log.info("synthetic city ready at %s (%.0f s)", root, time.perf_counter() - t0)
    if options is None:
        # precision "auto" is the hardware's fast path (vgloc.models.extract.resolve_fast_path).
        options = ExtractionOptions(image_size=None, batch_size=32, precision="auto", progress=progress)
    bench = load_split(root, "test", progress=progress)
    untrained_dir = out / "untrained"
    index_path = untrained_dir / "index"
    build_index(bench.database, model, index_path, options=options, validate=False, seed=seed)
    # The index's own describer (the very weights that described the database) describes the queries.
    result = evaluate(root, "test", index=index_path, options=options, out_dir=untrained_dir, seed=seed)
    demo = DemoResult(dataset=root, index=index_path, report=out / "report.html", result=result)
    if train_minutes == 0:
        demo.note = "training skipped (--no-train)"
    else:
        training = train_demo_model(
            root,
            out / "train",
            model=model,
            minutes=train_minutes,
            seed=seed,
            device=options.device,
            progress=progress,
            overrides=train_overrides,
        )
        _evaluate_trained(demo, training, bench.database, out / "trained", seed, options)
    demo.seconds = time.perf_counter() - t_start
    links = {"untrained model's report": "untrained/report.html"}
    if demo.trained is not None:
        links["trained model's report"] = "trained/report.html"
    write_comparison_report(
        result,
        demo.trained,
        bench.database,
        bench.queries,
        demo.report,
        title=f"vgloc demo: {result.model_spec}, untrained and trained, on the synthetic city [{size}]",
        training_line=demo.training.describe() if demo.training and demo.trained else demo.note,
        links=links,
    )
    _write_summary(demo, out / "summary.json", size=size, seed=seed, train_minutes=train_minutes)
    return demo


def _evaluate_trained(
    demo: DemoResult,
    training: DemoTraining,
    database: GeoImageSet,
    trained_dir: Path,
    seed: int,
    options: ExtractionOptions,
) -> None:
    """Index the test database with the trained model and evaluate the test queries, into ``demo``.

    Any failure leaves ``demo.trained`` None with the reason in ``demo.note``: the
    untrained baseline is already evaluated and must still be shown.
    """
    demo.training = training
    if training.checkpoint is None:
        demo.note = training.describe()
        return
    try:
        build_index(
            database,
            training.model_spec,
            trained_dir / "index",
            checkpoint=training.checkpoint,
            options=options,
            validate=False,
            seed=seed,
        )
        # The checkpoint named again (the index holds the same weights) so the report and
        # results.json record which trained weights were evaluated.
        demo.trained = evaluate(
            demo.dataset,
            "test",
            training.model_spec,
            checkpoint=training.checkpoint,
            index=trained_dir / "index",
            options=options,
            out_dir=trained_dir,
            seed=seed,
        )
        demo.trained_index = trained_dir / "index"
    except Exception as err:  # the baseline is still worth showing
        log.warning("evaluating the trained model failed: %s", err, exc_info=True)
        demo.note = f"the trained model could not be evaluated ({type(err).__name__}: {err})"


def _write_summary(demo: DemoResult, path: Path, *, size: str, seed: int, train_minutes: float) -> None:
    """``summary.json``: both models' Recall@N per domain, the chance level and the training run."""
    from vgloc.demo_report import comparison_rows

    def finite(x: float) -> float | None:
        return x if math.isfinite(x) else None

    rows = [
        {
            "domain": domain,
            "weights": label,
            "recall": {str(n): r for n, r in recalls.items()},
            "median_error_m": finite(err),
        }
        for domain, label, recalls, err in comparison_rows(demo.result, demo.trained)
    ]
    t = demo.training
    summary = {
        "model_spec": demo.result.model_spec,
        "city": {"size": size, "seed": seed, "root": str(demo.dataset)},
        "split": demo.result.split,
        "threshold_m": demo.result.threshold_m,
        "rows": rows,
        "train_minutes": train_minutes,
        "training": None
        if t is None
        else {
            "method": "cosplace",
            "run_dir": str(t.run_dir),
            "checkpoint": None if t.checkpoint is None else str(t.checkpoint),
            "seconds": round(t.seconds, 1),
            "epochs": t.epochs,
            "best_epoch": t.best_epoch,
            "select_metric": t.select_metric,
            "best_val": finite(t.best_val),
            "stopped_by_time": t.stopped_by_time,
        },
        "note": demo.note,
        "seconds": round(demo.seconds, 1),
    }
    write_text_atomic(path, json.dumps(summary, indent=2) + "\n")
