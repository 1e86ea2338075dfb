"""Descriptor extraction throughput (images/s) through vgloc's own extraction path.

Measures ``vgloc.models.extract_descriptors`` on in-memory random uint8 images (as the
decoding workers ship them: JPEG decoding is excluded, the host-to-device copy and the
normalisation are not), for each image size and precision asked for, the cosine between
the fast-path and fp32 descriptors, and the network alone on the same batches already
on the device (``--network``: autocast and channels-last as the path uses them), so the
ratio says how much of the network's own throughput the path keeps. ``--workers 0``
(default, as the rows recorded so far) loads the batches in the main process;
``--workers auto`` uses DataLoader workers as ``vgloc eval`` does (every core but one on a
GPU machine), which stack each batch in shared memory while the main process runs the
network.

    python benchmarks/bench_extract.py --model resnet18+gem --sizes 224x224,480x640 \
        --precisions fp32,bf16 --images 64 --out benchmarks/results/extract.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _machine import cpu_name  # benchmarks/ is on sys.path when a script runs

from vgloc.models import create_model, extract_descriptors


class RandomImages(torch.utils.data.Dataset):
    """N fixed random images of one size, yielding (tensor, index) like ImageDataset."""

    def __init__(self, n: int, height: int, width: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randint(0, 256, (n, 3, height, width), generator=g, dtype=torch.uint8)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], i


def network_throughput(
    model: torch.nn.Module, data: RandomImages, args, precision: str, channels_last: bool
) -> float:  # type: ignore[no-untyped-def]
    """img/s of the model alone on batches already on the device (normalised, in the path's format)."""
    from vgloc.models.extract import autocast_dtype

    device = torch.device(args.device)
    amp = autocast_dtype(precision, device)
    batches = [
        (data.images[i : i + args.batch_size].to(device).float() / 255.0 - 0.45) / 0.225
        for i in range(0, len(data), args.batch_size)
    ]
    if channels_last:
        batches = [b.contiguous(memory_format=torch.channels_last) for b in batches]
        model = model.to(device, memory_format=torch.channels_last)
    else:
        model = model.to(device)

    def run() -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            for b in batches:
                model(b)
        if device.type == "cuda":
            torch.cuda.synchronize()

    run()  # warm-up
    t0 = time.perf_counter()
    run()
    seconds = time.perf_counter() - t0
    model.to(memory_format=torch.contiguous_format)
    return len(data) / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet18+gem")
    ap.add_argument("--sizes", default="224x224,480x640", help="HxW list")
    ap.add_argument("--precisions", default="fp32,bf16", help="fp32, bf16 (CPU) / fp16 (CUDA)")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument(
        "--engine", default="auto", help="auto (vgloc's default: ONNX Runtime on CPU), torch, onnxruntime"
    )
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument(
        "--workers", default="0", help="DataLoader workers: a number, or auto (vgloc's automatic count)"
    )
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--network", action="store_true", help="also time the network alone on device-resident batches"
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    workers = None if args.workers == "auto" else int(args.workers)

    torch.manual_seed(0)
    model = create_model(args.model, pretrained=False).eval()
    machine = {
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(args.device),
        "torch": torch.__version__,
    }
    rows = []
    for size in args.sizes.split(","):
        h, w = (int(v) for v in size.lower().split("x"))
        data = RandomImages(args.images, h, w)
        reference = None
        for precision in args.precisions.split(","):
            channels_last = precision != "fp32"
            # one warm-up batch, then the timed pass
            extract_descriptors(
                model,
                torch.utils.data.Subset(data, range(args.batch_size)),
                batch_size=args.batch_size,
                device=args.device,
                precision=precision,
                channels_last=channels_last,
                progress=False,
                engine=args.engine,
            )
            t0 = time.perf_counter()
            desc = extract_descriptors(
                model,
                data,
                batch_size=args.batch_size,
                device=args.device,
                precision=precision,
                channels_last=channels_last,
                progress=False,
                engine=args.engine,
                num_workers=workers,
            )
            seconds = time.perf_counter() - t0
            if reference is None:
                reference = desc
            cosine = float(np.mean(np.sum(desc * reference, axis=1)))
            network = (
                network_throughput(model, data, args, precision, channels_last) if args.network else None
            )
            rows.append(
                {
                    "model": args.model,
                    "size": f"{h}x{w}",
                    "precision": precision,
                    "channels_last": channels_last,
                    "engine": args.engine,
                    "batch_size": args.batch_size,
                    "workers": args.workers,
                    "images_per_s": round(args.images / seconds, 2),
                    "network_images_per_s": None if network is None else round(network, 2),
                    "share_of_network": None
                    if network is None
                    else round(args.images / seconds / network, 3),
                    "mean_cosine_to_first_precision": round(cosine, 6),
                }
            )
            print(
                f"{args.model} {h}x{w} {precision:5s} channels_last={channels_last}: "
                f"{args.images / seconds:7.2f} img/s  cos={cosine:.6f}"
                + ("" if network is None else f"  network alone {network:7.2f} img/s"),
                flush=True,
            )
    print(
        "\n| model | size | precision | channels_last | img/s | cosine vs fp32 |\n|---|---|---|---|---:|---:|"
    )
    for r in rows:
        print(
            f"| {r['model']} | {r['size']} | {r['precision']} | {r['channels_last']} | "
            f"{r['images_per_s']} | {r['mean_cosine_to_first_precision']} |"
        )
    print(f"\nmachine: {machine}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
