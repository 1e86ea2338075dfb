"""Options and value parsers that several ``vgloc`` commands share.

One setting has one option name in every command (``--image-size``, ``--rerank``,
...). Older names stay accepted as aliases, listed in :data:`OPTION_ALIASES` and
shown in ``--help`` as "(alias: --resize)"; commands add such options with
:func:`add_option` so that the canonical name and its aliases cannot drift apart.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "OPTION_ALIASES",
    "add_extraction_options",
    "add_model_options",
    "add_option",
    "add_precision_option",
    "add_rerank_options",
    "add_runtime_options",
    "add_scale_options",
    "default_run_dir",
    "extraction_options",
    "option_names",
    "parse_image_size",
    "parse_int_list",
    "parse_scales",
    "positive_float",
    "positive_int",
    "setup_logging",
]

# Canonical option name -> the older names still accepted for it. The old names are
# the ones commands used before they were unified (v0.x); scripts and the README's
# older examples keep working with them.
OPTION_ALIASES: dict[str, tuple[str, ...]] = {
    # index build, eval and demo said --resize; train already said --image-size.
    "--image-size": ("--resize",),
    # rerank-show said --spec for what locate and eval call --rerank.
    "--rerank": ("--spec",),
    # demo said --dataset-dir for the dataset root that eval and train call --dataset.
    "--dataset": ("--dataset-dir",),
}


def option_names(canonical: str) -> tuple[str, ...]:
    """``canonical`` followed by its aliases, e.g. ``("--image-size", "--resize")``."""
    return (canonical, *OPTION_ALIASES.get(canonical, ()))


def add_option(p: Any, canonical: str, *, help: str, **kwargs: Any) -> argparse.Action:
    """Add the option ``canonical`` with its aliases, noting them in the help text.

    Args:
        p: A parser or argument group.
        canonical: The option's one name (``"--image-size"``); its aliases come from
            :data:`OPTION_ALIASES`.
        help: The help text; " (alias: --old)" is appended when there are aliases.
        **kwargs: Passed to ``add_argument``. ``dest`` defaults to the canonical
            name, so every alias fills the same attribute.

    Returns:
        The argparse action.
    """
    aliases = OPTION_ALIASES.get(canonical, ())
    if aliases:
        help = f"{help} (alias: {', '.join(aliases)})"
    action: argparse.Action = p.add_argument(canonical, *aliases, help=help, **kwargs)
    return action


# --------------------------------------------------------------------------- parsing helpers


def parse_int_list(text: str) -> list[int]:
    """``"1,5,10"`` -> ``[1, 5, 10]`` (argparse type)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def parse_image_size(text: str) -> Any:
    """``"480,640"`` -> (480, 640); ``"native"`` -> None; ``"auto"`` -> ``"auto"`` (argparse type).

    ``"auto"`` is the describer's own size (a published model's evaluation size, an
    index's recorded size, else 480x640; see ``vgloc.describers.AUTO_IMAGE_SIZE``).
    """
    if text.lower() in ("native", "none", "full"):
        return None
    if text.lower() == "auto":
        return "auto"
    parts = text.replace("x", ",").split(",")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H,W (e.g. 480,640) or 'native', got {text!r}") from None
    if h < 16 or w < 16:
        raise argparse.ArgumentTypeError(f"image size {h}x{w} is too small (at least 16x16)")
    return h, w


def parse_scales(text: str) -> tuple[float, ...]:
    """``"0.5,1,1.5"`` -> ``(0.5, 1.0, 1.5)``: positive, distinct numbers (argparse type)."""
    from vgloc.config.scales import check_scales

    try:
        return check_scales([float(v) for v in text.split(",") if v.strip()])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (in {text!r}; expected e.g. 0.5,1,1.5)") from None


def positive_float(text: str) -> float:
    """argparse type for a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type for an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


# --------------------------------------------------------------------------- shared options


def add_runtime_options(p: argparse.ArgumentParser) -> None:
    """Options every command shares: device, seed, logging, run folder."""
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 ... (default: cpu)")
    g.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed for random initialisation and sampling (default: 0)",
    )
    g.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="console log level (default: info); the run folder always gets debug",
    )
    g.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="folder for this run's log and outputs (default: runs/<time>-<command> for "
        "commands that write results; none for `locate` and `models`)",
    )


def add_model_options(
    p: argparse.ArgumentParser, required: bool = True, default: str | None = None, multiple: bool = False
) -> None:
    """Model spec, checkpoint and pretrained-weight options (``multiple``: repeatable, values in lists)."""
    g = p.add_argument_group("model")
    again = " (repeat for an ensemble: one per model, in order)" if multiple else ""
    g.add_argument(
        "--model",
        required=required and default is None,
        default=default,
        action="append" if multiple else "store",
        help="model spec backbone+aggregator+head (e.g. resnet18+gem+fc512, resnet50.conv4+netvlad64), "
        "or a published model's name (e.g. megaloc, cosplace:resnet50+gem+fc2048), whose weights are "
        f"fetched into the torch hub cache unless --checkpoint gives a local copy (see `vgloc models`){again}",
    )
    g.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        action="append" if multiple else "store",
        help="weights: a vgloc checkpoint, an authors' state dict (CosPlace, VG benchmark), or, with "
        f"--model NAME, a local copy of NAME's published file (.pth/.ckpt/.safetensors){again}",
    )
    g.add_argument(
        "--pretrained",
        action="store_true",
        help="start from ImageNet backbone weights (downloads once; offline it needs a cached file)",
    )


def add_extraction_options(
    p: argparse.ArgumentParser,
    default_size: str = "auto",
    default_batch: int = 16,
    size_note: str = "a published model's evaluation size, else 480,640, the VG benchmark's",
    auto_note: str = "auto = fp16 on CUDA; on CPU bf16 + channels-last where bf16 is native, else fp32 (ONNX Runtime when installed)",
) -> None:
    """How images become descriptors."""
    g = p.add_argument_group("descriptor extraction")
    add_option(
        g,
        "--image-size",
        metavar="H,W",
        type=parse_image_size,
        default=parse_image_size(default_size),
        help=f"resize every image to H,W before description, or 'native' to keep full "
        f"resolution, or 'auto' (default: {default_size}, {size_note})",
    )
    g.add_argument(
        "--batch-size",
        type=positive_int,
        default=default_batch,
        help=f"images per forward pass (default: {default_batch})",
    )
    add_precision_option(g, auto_note)
    g.add_argument(
        "--channels-last", action="store_true", help="NHWC memory format (faster with bf16 on CPU)"
    )
    g.add_argument(
        "--workers",
        type=int,
        default=None,
        help="image-decoding worker processes (default: min(4, CPU cores), none for a couple of batches)",
    )
    g.add_argument(
        "--decode",
        choices=["cpu", "device"],
        default="cpu",
        help="where JPEGs are decoded: cpu (Pillow in the workers, default) or device (nvJPEG on the "
        "GPU, resized there; needs vgloc[nvjpeg]; for GPUs with few CPU cores to feed them)",
    )
    add_jpeg_draft_option(g)
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_scale_options(g)


def add_jpeg_draft_option(p: Any) -> None:
    """``--jpeg-draft/--no-jpeg-draft``: reduced-scale JPEG decoding (default on)."""
    p.add_argument(
        "--jpeg-draft",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="decode JPEGs at 1/2, 1/4 or 1/8 scale, never below twice the image size (libjpeg's DCT "
        "scaling: 12 MP photos to 480x640 2.8x faster, descriptors within cosine 0.9999 of a full "
        "decode; default); --no-jpeg-draft decodes every file in full, as the reference scripts do",
    )


def add_scale_options(p: Any) -> None:
    """``--scales S1,S2,...`` and ``--scale-fusion avg|sum|max|min``: multi-scale testing."""
    from vgloc.config.scales import FUSIONS

    p.add_argument(
        "--scales",
        type=parse_scales,
        default=None,
        metavar="S1,S2,...",
        help="multi-scale testing: describe database and queries at each scale of the image size "
        "(e.g. 0.5,1,1.5) and fuse the descriptors (renormalised); an index records its scales and "
        "locate/eval --index reuse them (default: the index's, else a single scale, 1)",
    )
    p.add_argument(
        "--scale-fusion",
        default=None,
        choices=list(FUSIONS),
        help="how --scales are fused, element-wise: avg (default), sum (same ranking as avg after "
        "renormalisation), max or min",
    )


def add_precision_option(p: Any, auto_note: str = "auto = fp16 on CUDA, fp32 on CPU") -> None:
    """``--precision auto|fp32|bf16|fp16|int8``, the precision of description."""
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16", "int8"],
        help="autocast precision: bf16 is ~2.5x faster on CPUs with AVX-512 BF16; fp16 on CUDA; "
        "int8 (CPU, ONNX Runtime) a quantised network, ~2.9x fp32 on CPUs with VNNI, descriptors "
        f"within cosine 0.999 of fp32 (checked on the first image); {auto_note} (default: auto)",
    )


def extraction_options(
    args: argparse.Namespace,
    brightness: float | None = None,
    contrast: float | None = None,
    saturation: float | None = None,
) -> Any:
    """The :class:`vgloc.api.ExtractionOptions` of parsed extraction and runtime options
    (``brightness``/``contrast``/``saturation``: the query-only photometric factors)."""
    from vgloc.api import ExtractionOptions

    return ExtractionOptions(
        image_size=args.image_size,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        channels_last=args.channels_last,
        num_workers=args.workers,
        brightness=brightness,
        contrast=contrast,
        saturation=saturation,
        scales=args.scales,
        scale_fusion=args.scale_fusion,
        decode=getattr(args, "decode", "cpu"),
        jpeg_draft=bool(getattr(args, "jpeg_draft", True)),
        progress=not args.no_progress,
    )


def add_rerank_options(p: argparse.ArgumentParser, evaluation: bool = False) -> None:
    """Local-feature re-ranking of the retrieved candidates (``locate`` and ``eval``)."""
    g = p.add_argument_group("re-ranking (local features + geometric verification)")
    add_option(
        g,
        "--rerank",
        metavar="SPEC",
        default=None,
        help="re-rank the top candidates with extractor+matcher+verifier, e.g. rootsift+mnn+ransac, "
        "sift+ratio+fundamental, orb+mnn+ransac, akaze+mnn+ransac, rootsift+mnn+rss (default: off)",
    )
    g.add_argument(
        "--rerank-k",
        type=positive_int,
        default=100,
        metavar="K",
        help="candidates to re-rank per query, clipped to the database size (default: 100)",
    )
    g.add_argument(
        "--rerank-cache",
        type=Path,
        default=None,
        metavar="FILE.h5",
        help="HDF5 cache of local features, so database features are extracted once across runs",
    )
    g.add_argument(
        "--rerank-fusion",
        default=None,
        choices=["zscore", "linear"],
        help="also weigh in the global similarity (default: rank by the verification score alone)",
    )
    if evaluation:
        g.add_argument(
            "--rerank-fusion-weight",
            type=float,
            default=0.5,
            metavar="W",
            help="weight of the global similarity in the fusion (default: 0.5)",
        )
        g.add_argument(
            "--rerank-sweep",
            type=parse_int_list,
            default=None,
            metavar="K1,K2,...",
            help="also sweep K (e.g. 1,5,10,20,50,100): the top-max(K) are verified once and "
            "re-ordered for each K using only the first K scores; the time at K is the query's "
            "feature extraction plus the measured verification time of its first K candidates. "
            "Writes rerank_sweep.csv/.md/.png (Recall@N and ms/query against K) to the output folder",
        )


# --------------------------------------------------------------------------- logging


def launcher_rank(env: Mapping[str, str] | None = None) -> int:
    """This process's rank under ``torchrun`` (its ``RANK`` when ``WORLD_SIZE`` > 1), else 0."""
    env = os.environ if env is None else env
    try:
        return int(env["RANK"]) if int(env.get("WORLD_SIZE", "1")) > 1 else 0
    except (KeyError, ValueError):
        return 0


def setup_logging(level: str, run_dir: Path | None, rank: int = 0) -> list[logging.Handler]:
    """Console logging at ``level``; a debug log file in ``run_dir`` when given.

    Configured here (the CLI entry point), never at import, so library users keep
    control of logging. Under ``torchrun`` each rank other than 0 writes its own file
    (``log.rank<R>.txt``), so the processes' lines never interleave in one file.
    Returns the handlers so :func:`main` can remove them again.
    """
    root = logging.getLogger("vgloc")
    root.setLevel(logging.DEBUG)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(getattr(logging, level.upper()))
    console.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root.addHandler(console)
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(run_dir / ("log.txt" if rank == 0 else f"log.rank{rank}.txt"))
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(fh)
    return list(root.handlers)


def default_run_dir(command: str) -> Path:
    """``runs/<YYYYmmdd-HHMMSS>-<command>``: the run folder of commands that write results."""
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{command}"
