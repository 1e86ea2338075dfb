"""``vgloc split``: train / val / test lists with geographic separation."""

from __future__ import annotations

import argparse
from pathlib import Path

from vgloc.cli.command import Command, register
from vgloc.cli.options import add_runtime_options

SPLIT_FILES = ("train.csv", "val.csv", "test.csv", "split.json")


def _fractions(text: str) -> tuple[float, float, float]:
    """``0.8,0.1,0.1`` -> three shares summing to 1."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.8,0.1,0.1, got {text!r}") from None
    if len(values) != 3 or any(v < 0 for v in values) or abs(sum(values) - 1.0) > 1e-6:
        raise argparse.ArgumentTypeError(f"expected three non-negative shares summing to 1, got {text!r}")
    return values[0], values[1], values[2]


def _distance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a distance in km >= 0, got {text!r}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``vgloc split``."""
    p.add_argument(
        "--csv",
        type=Path,
        required=True,
        help="the images: a CSV/Parquet manifest (path,lat,lon or GeoCLIP's IMG_ID,LAT,LON) or an EXIF-GPS folder",
    )
    p.add_argument(
        "--out", type=Path, required=True, help="folder for train.csv, val.csv, test.csv, split.json"
    )
    p.add_argument(
        "--min-distance-km",
        type=_distance,
        default=25.0,
        help="images of different splits are at least this far apart, great circle (default: 25, "
        "the im2gps city level)",
    )
    p.add_argument(
        "--fractions",
        type=_fractions,
        default=(0.8, 0.1, 0.1),
        help="train,val,test shares (default: 0.8,0.1,0.1)",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing split files in --out")
    add_runtime_options(p)


def run(args: argparse.Namespace) -> int:
    """Split with :func:`vgloc.geo.separation.geographic_split` and write the lists atomically."""
    import csv
    import io
    import json
    import os

    from vgloc.data import load_image_set
    from vgloc.geo.separation import SPLIT_NAMES, geographic_split
    from vgloc.io import write_text_atomic

    existing = [f for f in SPLIT_FILES if (args.out / f).exists()]
    if existing and not args.force:
        raise ValueError(f"{args.out} already holds {', '.join(existing)}; pass --force to overwrite")
    images = load_image_set(args.csv, validate=False, progress=False)
    if not images.has_latlon:
        raise ValueError(f"{args.csv}: no latitude/longitude (metric-only data) to split geographically")
    labels, report = geographic_split(images.latlon, args.fractions, args.min_distance_km, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out.resolve()
    for s, name in enumerate(SPLIT_NAMES):
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["path", "lat", "lon"])
        for i in (labels == s).nonzero()[0]:
            # relative to the list's folder, as the manifest reader resolves them
            rel = Path(os.path.relpath(images.paths[i], out)).as_posix()
            writer.writerow([rel, f"{images.latlon[i, 0]:.7f}", f"{images.latlon[i, 1]:.7f}"])
        write_text_atomic(out / f"{name}.csv", text.getvalue())
    summary = {
        "source": str(args.csv),
        "min_distance_km": args.min_distance_km,
        "fractions": dict(zip(SPLIT_NAMES, args.fractions, strict=True)),
        "seed": args.seed,
        **report.to_dict(),
    }
    write_text_atomic(out / "split.json", json.dumps(summary, indent=2) + "\n")
    counts = ", ".join(f"{n} {c}" for n, c in zip(SPLIT_NAMES, report.counts, strict=True))
    sep = summary["min_separation_km"]
    print(
        f"{len(images)} images -> {counts} ({report.groups} linked groups, largest {report.largest_group}); "
        f"closest images of different splits: {'-' if sep is None else f'{sep:.3f} km'}"
    )
    print(f"lists: {out}/{{train,val,test}}.csv")
    return 0


COMMAND = register(
    Command(
        name="split",
        help="train/val/test lists with geographic separation (world-scale data)",
        add_arguments=add_arguments,
        run=run,
    )
)
