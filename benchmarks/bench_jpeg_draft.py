"""Decoding a large JPEG for a 480x640 network input, in full and at reduced scale (``--jpeg-draft``, the default).

Phone photos are 12 MP or more; the network sees 480x640. Pillow's ``draft`` lets libjpeg
decode at 1/2, 1/4 or 1/8 scale (DCT scaling) before the usual resize. The photos are the
real ones in ``../shared/data/lund-exif-gps`` (1024x768), upscaled to ``--side`` px wide
and saved as JPEG (quality 92), so the content is real and the size a phone's. Reported:
seconds per image to decode + resize, each way (median of ``--repeats`` passes), and the
mean absolute pixel difference of the two results. ``--margin 1`` drafts straight down to
the target size (vgloc's rule before it kept twice the target).

    python benchmarks/bench_jpeg_draft.py --out benchmarks/results/jpeg_draft.json
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _machine import command_line, machine_info, write_results  # benchmarks/ is on sys.path
from PIL import Image

from vgloc.data import images
from vgloc.data.datasets import DecodedImageDataset

HERE = Path(__file__).resolve().parent


def upscaled_photos(photos: Path, count: int, side: int, out: Path) -> list[Path]:
    """The first ``count`` JPEGs of ``photos`` upscaled to ``side`` px wide (bicubic, quality
    92) into ``out``, keeping their EXIF (GPS, orientation): real content at a phone's size."""
    sources = sorted(photos.glob("*.jpg"))[:count]
    if not sources:
        raise SystemExit(f"no photos in {photos}")
    big = []
    for src in sources:
        with Image.open(src) as original:
            exif = original.info.get("exif", b"")
            im = original.convert("RGB")
        size = (side, round(side * im.height / im.width))
        path = out / src.name
        im.resize(size, Image.Resampling.BICUBIC).save(path, quality=92, exif=exif)
        big.append(path)
    return big


def add_margin_option(ap: argparse.ArgumentParser) -> None:
    """``--margin N``: draft never below N times the target size (vgloc's ``DRAFT_MARGIN``)."""
    ap.add_argument(
        "--margin",
        type=int,
        default=None,
        help="draft never below this many times the target size (default: vgloc's DRAFT_MARGIN)",
    )


def apply_margin(args: argparse.Namespace) -> None:
    """Set ``--margin`` as vgloc's draft margin (read at each decode; these benchmarks
    decode in the main process, so the workers never need it)."""
    if args.margin is not None:
        images.DRAFT_MARGIN = args.margin


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=Path, default=HERE.parent.parent / "shared" / "data" / "lund-exif-gps")
    ap.add_argument("--side", type=int, default=4032, help="width of the upscaled photos (px)")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    add_margin_option(ap)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    apply_margin(args)

    with tempfile.TemporaryDirectory() as tmp:
        big = upscaled_photos(args.photos, args.images, args.side, Path(tmp))
        full = DecodedImageDataset(big, (480, 640), draft=False)
        draft = DecodedImageDataset(big, (480, 640), draft=True)

        def per_image(ds: DecodedImageDataset) -> float:
            t0 = time.perf_counter()
            for i in range(len(ds)):
                ds[i]
            return (time.perf_counter() - t0) / len(ds)

        t_full, t_draft = [], []
        for _ in range(args.repeats):  # alternating, so both see the same load
            t_full.append(per_image(full))
            t_draft.append(per_image(draft))
        diff = float(
            np.mean([(full[i][0].float() - draft[i][0].float()).abs().mean().item() for i in range(len(big))])
        )
        file_size = Image.open(big[0]).size
    a, b = statistics.median(t_full), statistics.median(t_draft)
    print(f"{len(big)} photos of {file_size[0]}x{file_size[1]} -> 480x640")
    print(f"full decode + resize : {a * 1000:7.1f} ms/image")
    print(f"draft decode + resize: {b * 1000:7.1f} ms/image  ({a / b:.1f}x)")
    print(f"mean |pixel difference|: {diff:.2f} of 255")
    write_results(
        args.out,
        command=command_line(),
        machine=machine_info(),
        draft_margin=images.DRAFT_MARGIN,
        file_size=list(file_size),
        full_ms=round(a * 1000, 2),
        draft_ms=round(b * 1000, 2),
        speedup=round(a / b, 2),
        mean_abs_pixel_difference=round(diff, 3),
    )


if __name__ == "__main__":
    main()
