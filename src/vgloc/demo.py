"""``vgloc demo``: the whole pipeline on the built-in synthetic city, in a few minutes.

Generates (or reuses) a small synthetic city in the cache folder, builds an index
of its test database, geolocates every query domain (day, night, fog, occluded),
prints Recall@N per domain and writes an HTML report with example retrievals and
a map of predicted against true positions.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from vgloc.describers import ExtractionOptions
from vgloc.evaluation import EvalResult, evaluate
from vgloc.io import cache_dir  # re-exported: benchmarks and tests import it from here
from vgloc.localizer import build_index

log = logging.getLogger(__name__)

DEFAULT_DEMO_MODEL = "resnet18+gem"


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU runs bf16 convolutions natively (AVX-512 BF16 or AMX).

    There, bf16 autocast with channels-last is 2-2.5x faster than fp32 for a ResNet,
    with descriptors at cosine 0.99999 of fp32 (BENCHMARKS.md).
    """
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass
class DemoResult:
    """What the demo produced."""

    dataset: Path
    index: Path
    report: Path
    result: EvalResult


def run_demo(
    out_dir: str | Path,
    *,
    size: str = "small",
    seed: int = 0,
    model: str = DEFAULT_DEMO_MODEL,
    dataset_dir: str | Path | None = None,
    options: ExtractionOptions | None = None,
    progress: bool = True,
) -> DemoResult:
    """Run the demo and return where its outputs are.

    Args:
        out_dir: the run folder (index, ``results.json``, ``report.html``).
        size: synthetic city size (``tiny`` for tests, ``small`` by default).
        seed: city and model seed.
        model: the model spec (random initialisation: no weights can be downloaded here).
        dataset_dir: where the city is generated/reused (default: the cache folder).
        options: extraction options (default: native resolution of the rendered images,
            bf16 + channels-last on CPUs that run bf16 natively, fp32 otherwise).
        progress: show progress bars.

    Returns:
        A :class:`DemoResult`.
    """
    from vgloc.data import load_split
    from vgloc.data.synthetic import generate_city

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(dataset_dir) if dataset_dir else cache_dir() / "synthetic" / f"{size}-seed{seed}"
    t0 = time.perf_counter()
    root = generate_city(root, size=size, seed=seed, progress=progress)
    log.info("synthetic city ready at %s (%.0f s)", root, time.perf_counter() - t0)
    if options is None:
        fast = cpu_has_fast_bf16()
        options = ExtractionOptions(
            image_size=None,
            batch_size=32,
            precision="bf16" if fast else "auto",
            channels_last=fast,
            progress=progress,
        )
    bench = load_split(root, "test", progress=progress)
    index_path = out / "index"
    build_index(bench.database, model, index_path, options=options, validate=False, seed=seed)
    # The index's own describer (the very weights that described the database) describes the queries.
    result = evaluate(root, "test", index=index_path, options=options, out_dir=out, seed=seed)
    return DemoResult(dataset=root, index=index_path, report=out / "report.html", result=result)
