"""``vgloc crossview train|eval|index|locate``: street views located and oriented against aerial tiles.

The issue's spellings work too and run the same code:

- ``vgloc train crossview ...``: :mod:`vgloc.cli.train` adds a ``crossview`` sub-command
  with :func:`add_train_arguments` (the same options; the run is the fixed-step
  cross-view trainer, not the training engine's epochs/validation contract).
- ``vgloc eval crossview ...``: ``vgloc eval`` has no sub-commands, so the entry point
  rewrites it to ``vgloc crossview eval ...`` (:data:`vgloc.cli.ALIASES`).
- ``vgloc locate PHOTO --index AERIAL_INDEX``: :mod:`vgloc.cli.locate` hands an index
  folder holding ``aerial_index.pt`` (see :func:`is_aerial_index`) to :func:`print_locations`.

See docs/crossview.md.

Example::

    vgloc synth --out data/city --size tiny
    vgloc train crossview --dataset data/city --model tiny+gem+fc64 --loss exhaustive_dbl \\
        --rotation-range 360 --orientation-head --steps 300 --run-dir runs/xv
    vgloc eval crossview --dataset data/city --checkpoint runs/xv/crossview.pt --samples 4
    vgloc crossview index --dataset data/city --checkpoint runs/xv/crossview.pt --out runs/xv/index
    vgloc locate --index runs/xv/index photo1.jpg photo2.jpg
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from vgloc.cli.command import Command, register
from vgloc.cli.options import add_option, add_runtime_options, parse_image_size, positive_float, positive_int

__all__ = [
    "AERIAL_INDEX_FILE",
    "COMMAND",
    "add_arguments",
    "add_train_arguments",
    "is_aerial_index",
    "parse_loss_arg",
    "print_locations",
]

log = logging.getLogger("vgloc")

# The file `vgloc crossview index` writes (vgloc.crossview.locate.INDEX_FILE, tested equal):
# named here so that `vgloc locate` can tell an aerial index without importing torch.
AERIAL_INDEX_FILE = "aerial_index.pt"


def parse_loss_arg(text: str) -> tuple[str, Any]:
    """``margin=0.5`` -> ``("margin", 0.5)``; non-numbers stay strings (argparse type)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), float(value)
    except ValueError:
        return key.strip(), value.strip()


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _rotation(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 360:
        raise argparse.ArgumentTypeError(
            f"expected degrees within 0..360 (e.g. 0, 45, 90, 180, 360), got {text!r}"
        )
    return value


def _add_data(p: argparse.ArgumentParser, split: str, folder: str) -> None:
    g = p.add_argument_group("data")
    add_option(
        g,
        "--dataset",
        type=Path,
        required=True,
        help="a synthetic city (vgloc synth; its aerial/ folders are the reference side), a folder "
        "with <split>.csv, or a CSV of ground,aerial,lat,lon[,heading]",
    )
    g.add_argument("--split", default=split, help=f"split (default: {split})")
    g.add_argument(
        "--folder", default=folder, help=f"street-view folder of a synthetic city (default: {folder})"
    )
    g.add_argument("--batch-size", type=positive_int, default=16, help="pairs per batch (default: 16)")
    g.add_argument("--workers", type=_non_negative_int, default=0, help="data-loading processes (default: 0)")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``vgloc crossview train`` (and of ``vgloc train crossview``, which shares them)."""
    _add_data(p, "train", "database")
    m = p.add_argument_group("network")
    m.add_argument(
        "--model", default="tiny+gem+fc64", help="street-view branch spec (default: tiny+gem+fc64)"
    )
    m.add_argument("--aerial-model", default="", help="aerial branch spec (default: the same as --model)")
    m.add_argument(
        "--sharing",
        choices=["separate", "shared", "shared_last"],
        default="separate",
        help="weights shared between the branches (default: separate)",
    )
    m.add_argument(
        "--arch",
        choices=["embedding", "classification", "hybrid"],
        default="embedding",
        help="embedding: two branches compared by distance (indexable; default); classification: one "
        "network on the stacked pair; hybrid: two branches + FC layers on [g, a] (the study's slow "
        "pair classifiers, trained with --loss bce)",
    )
    m.add_argument("--orientation-head", action="store_true", help="add the orientation-regression head")
    m.add_argument(
        "--ground-size", type=parse_image_size, default=(64, 96), help="street-view H,W (default: 64,96)"
    )
    m.add_argument("--aerial-size", type=positive_int, default=64, help="tile side after crop (default: 64)")
    t = p.add_argument_group("training")
    t.add_argument(
        "--loss",
        default=None,
        help="a cross-view loss (see docs/crossview.md; default: exhaustive_dbl, or bce for the pair "
        "classifiers)",
    )
    t.add_argument(
        "--loss-arg",
        type=parse_loss_arg,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="loss argument, repeatable: margin=0.5, alpha=10, negatives=all, temperature=0.07 "
        "(bce: negatives=N|all, non-matching pairs per street view; default 1)",
    )
    t.add_argument("--steps", type=positive_int, default=200, help="optimiser steps (default: 200)")
    t.add_argument(
        "--chunk-size", type=_non_negative_int, default=0, help="gradient caching chunk; 0 = off (default: 0)"
    )
    t.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    t.add_argument(
        "--rotation-range", type=_rotation, default=0.0, help="random tile rotation in degrees (default: 0)"
    )
    t.add_argument(
        "--orientation-weight", type=float, default=1.0, help="orientation loss weight (default: 1)"
    )
    add_runtime_options(p)
    # writes_results: a run folder (runs/<time>-<command>) when --run-dir is not given, also
    # under `vgloc train crossview`, whose parent command picks its folder itself.
    p.set_defaults(func=_run_train, writes_results=True)


def _add_eval(p: argparse.ArgumentParser) -> None:
    _add_data(p, "test", "queries")
    p.add_argument(
        "--checkpoint", type=Path, required=True, help="a crossview.pt from `vgloc crossview train`"
    )
    p.add_argument("--samples", type=positive_int, default=1, help="tile rotations at test time (default: 1)")
    p.add_argument(
        "--fusion",
        choices=["best", "mean"],
        default="best",
        help="best rotation, or averaged features (default: best)",
    )
    p.add_argument("--out", type=Path, default=None, help="folder for results.json (default: the run folder)")
    add_runtime_options(p)
    p.set_defaults(func=_run_eval)


def _add_index(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint", type=Path, required=True, help="a crossview.pt from `vgloc crossview train`"
    )
    add_option(
        p, "--dataset", type=Path, required=True, help="a synthetic city, a folder with <split>.csv, or a CSV"
    )
    p.add_argument("--split", default="test", help="split whose aerial tiles are indexed (default: test)")
    p.add_argument(
        "--folder", default="database", help="street-view folder of a synthetic city (default: database)"
    )
    p.add_argument("--samples", type=positive_int, default=8, help="rotations per tile (default: 8)")
    p.add_argument("--out", type=Path, default=None, help="index folder (default: the run folder)")
    add_runtime_options(p)
    p.set_defaults(func=_run_index)


def _add_locate(p: argparse.ArgumentParser) -> None:
    p.add_argument("photos", nargs="+", type=Path, help="street-level photos to locate")
    p.add_argument("--index", type=Path, required=True, help="a folder from `vgloc crossview index`")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    add_runtime_options(p)
    p.set_defaults(func=_run_locate, writes_results=False)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``train``, ``eval``, ``index`` and ``locate`` sub-commands of ``vgloc crossview``."""
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_train_arguments(sub.add_parser("train", help="train a two-branch street-view / aerial network"))
    _add_eval(
        sub.add_parser(
            "eval",
            help="recall and orientation error of a cross-view checkpoint",
            description="Recall@1/5/10, recall at top 1 %% and orientation error of a cross-view "
            "checkpoint (console + results.json). Also spelled `vgloc eval crossview`.",
        )
    )
    _add_index(sub.add_parser("index", help="describe a split's aerial tiles into an aerial index"))
    _add_locate(
        sub.add_parser(
            "locate",
            help="tile centre, heading and confidence of street photos",
            description="Tile centre, heading and confidence of street photos against an aerial "
            "index. `vgloc locate --index AERIAL_INDEX PHOTO` does the same.",
        )
    )


def _run_index(args: argparse.Namespace) -> int:
    from vgloc.crossview.locate import build_aerial_index

    out = args.out or args.run_dir or Path("runs/crossview-index")
    path = build_aerial_index(
        args.checkpoint, args.dataset, out, split=args.split, folder=args.folder, samples=args.samples,
        device=args.device,
    )  # fmt: skip
    print(f"aerial index: {path}")
    return 0


def is_aerial_index(path: Path) -> bool:
    """Whether ``path`` is an aerial index of ``vgloc crossview index`` (its folder or its file).

    The index records its kind (``format: vgloc-aerial-index`` inside the file, checked
    when it is read); this cheap test only looks for the file, so ``vgloc locate`` can
    pick the cross-view search before any heavy import.
    """
    path = Path(path)
    return (path / AERIAL_INDEX_FILE).is_file() if path.is_dir() else path.name == AERIAL_INDEX_FILE


def print_locations(index: Path, photos: list[Path], device: str = "cpu", as_json: bool = False) -> int:
    """Locate ``photos`` against an aerial index and print CSV (or JSON lines); returns 0.

    Columns: ``image,lat,lon,heading_deg,confidence`` (the tile centre, the estimated
    heading clockwise from north, the softmax probability of the chosen tile).
    """
    from vgloc.crossview.locate import locate_photos

    rows = locate_photos(index, [str(p) for p in photos], device=device)
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print("image,lat,lon,heading_deg,confidence")
    for row in rows:
        print(
            f"{row['image']},{row['lat']:.7f},{row['lon']:.7f},{row['heading_deg']:.1f},{row['confidence']:.4f}"
        )
    return 0


def _run_locate(args: argparse.Namespace) -> int:
    return print_locations(args.index, args.photos, args.device, args.json)


def _run_train(args: argparse.Namespace) -> int:
    from vgloc.crossview.network import CrossViewConfig
    from vgloc.crossview.train import TrainSettings, train_crossview

    settings = TrainSettings(
        dataset=str(args.dataset),
        loss=args.loss or ("exhaustive_dbl" if args.arch == "embedding" else "bce"),
        loss_args=dict(args.loss_arg),
        split=args.split,
        folder=args.folder,
        steps=args.steps,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        lr=args.lr,
        orientation_weight=args.orientation_weight,
        seed=args.seed,
        device=args.device,
        workers=args.workers,
    )
    if args.ground_size is None or args.ground_size == "auto":
        raise ValueError("--ground-size needs H,W")
    config = CrossViewConfig(
        ground_spec=args.model,
        aerial_spec=args.aerial_model,
        sharing=args.sharing,
        orientation_head=args.orientation_head,
        ground_size=args.ground_size,
        aerial_size=args.aerial_size,
        rotation_range=args.rotation_range,
        arch=args.arch,
    )
    out = args.run_dir or Path("runs/crossview")
    path = train_crossview(settings, config, out)
    print(f"checkpoint: {path}")
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from vgloc.crossview.evaluate import evaluate_crossview

    res = evaluate_crossview(
        args.checkpoint,
        args.dataset,
        split=args.split,
        folder=args.folder,
        samples=args.samples,
        fusion=args.fusion,
        batch_size=args.batch_size,
        device=args.device,
        workers=args.workers,
        out_dir=args.out or args.run_dir,
    )
    print(
        f"{res['queries']} queries, {res['tiles']} tiles ({res['samples']} rotation(s), {res['fusion']})\n"
        f"R@1 {res['recall@1']:.2f}  R@5 {res['recall@5']:.2f}  R@10 {res['recall@10']:.2f}  "
        f"R@top1% (k={res['top1%_k']}) {res['recall@top1%']:.2f}  median rank {res['median_rank']:.0f}\n"
        f"median orientation error: {res['median_orientation_error_deg']} deg ({res['orientation_method']})\n"
        f"histogram (10 deg bins, 0..180): {json.dumps(res['orientation_histogram_10deg'])}"
    )
    return 0


COMMAND = register(
    Command(
        "crossview",
        "cross-view geo-localization: train / evaluate street-view vs aerial-tile networks",
        add_arguments,
        _run_train,
        writes_results=True,
    )
)
