"""Training-step throughput (images/s) of vgloc's training update, without data loading.

One step = forward of a batch of random in-memory images, the CosPlace loss (a CosFace
:class:`~vgloc.losses.MarginHead` over 1,000 classes), backward, and the Adam steps of
the model and of the classifier: the update :class:`vgloc.training.engine.Trainer`
performs (early ResNet layers frozen, as both recipes do). ``bf16`` runs the forward
under ``torch.autocast`` (CPU or CUDA); ``fp16`` adds a GradScaler (CUDA only).
Images are generated once, so JPEG decoding and augmentation are excluded: the number
is the network's training speed.

    nice python benchmarks/bench_train.py --model resnet18+gem --size 224 --batch-size 32 \\
        --precisions fp32,bf16 --steps 5 --out benchmarks/results/train.json

A Markdown table with the command and the machine is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import torch
from _machine import (  # benchmarks/ is on sys.path when a script runs
    command_line,
    describe_machine,
    machine_info,
    write_results,
)

from vgloc.losses import create_margin_head
from vgloc.models import create_model, freeze_early_layers


def measure(
    spec: str,
    size: tuple[int, int],
    batch: int,
    precision: str,
    device: torch.device,
    steps: int,
    warmup: int,
    channels_last: bool,
) -> dict[str, Any]:
    """Images/s of the training step for one configuration."""
    torch.manual_seed(0)
    model = create_model(spec).to(device).train()
    freeze_early_layers(model)
    head = create_margin_head("cosface", model.descriptor_dim, 1000).to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opts = [
        torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5),
        torch.optim.Adam(head.parameters(), lr=1e-2),
    ]
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    x = torch.randn(batch, 3, *size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=device)

    def step() -> float:
        ctx = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with ctx:
            loss = head.loss(model(x).float(), y)
        scaler.scale(loss).backward()
        for o in opts:
            scaler.step(o)
        scaler.update()
        for o in opts:
            o.zero_grad(set_to_none=True)
        return float(loss.detach())

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    best, mean = min(times), sum(times) / len(times)
    return {
        "model": spec,
        "size": f"{size[0]}x{size[1]}",
        "batch": batch,
        "precision": precision,
        "channels_last": channels_last,
        "device": str(device),
        "steps": steps,
        "s_per_step_mean": mean,
        "s_per_step_best": best,
        "images_per_s_mean": batch / mean,
        "images_per_s_best": batch / best,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet18+gem", help="model spec (default: resnet18+gem)")
    ap.add_argument("--size", default="224", help="image size: N or HxW (default: 224)")
    ap.add_argument("--batch-size", type=int, default=32, help="images per step (default: 32, CosPlace's)")
    ap.add_argument("--precisions", default="fp32,bf16", help="comma list of fp32, bf16, fp16 (CUDA)")
    ap.add_argument("--devices", default=None, help="comma list (default: cpu, plus cuda when available)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per configuration (default: 5)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: 2)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--channels-last", action="store_true", help="NHWC for the low-precision runs")
    ap.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = (int(v) for v in (args.size.lower().split("x") if "x" in args.size.lower() else [args.size] * 2))
    devices = (
        args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    )
    rows = []
    for dev in devices:
        device = torch.device(dev)
        for precision in args.precisions.split(","):
            if precision == "fp16" and device.type != "cuda":
                continue
            cl = args.channels_last and precision != "fp32"
            rows.append(
                measure(args.model, (h, w), args.batch_size, precision, device, args.steps, args.warmup, cl)
            )
            r = rows[-1]
            print(f"{dev} {precision}: {r['images_per_s_mean']:.1f} images/s", file=sys.stderr)

    machine = machine_info()
    command = command_line()
    print(f"\n`{command}`\n")
    print(describe_machine(machine) + "\n")
    print(
        "| model | image | batch | device | precision | s/step (mean) | images/s (mean) | images/s (best) |"
    )
    print("|---|---|---:|---|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['size']} | {r['batch']} | {r['device']} | {r['precision']}"
            f"{' NHWC' if r['channels_last'] else ''} | {r['s_per_step_mean']:.2f} | "
            f"{r['images_per_s_mean']:.1f} | {r['images_per_s_best']:.1f} |"
        )
    write_results(args.out, command=command, machine=machine, rows=rows)


if __name__ == "__main__":
    main()
