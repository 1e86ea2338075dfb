"""Network speed, size and descriptor length of registered models (random weights).

Each entry is a published name (its spec and evaluation size come from the registry) or
``SPEC@HxW``. Models are timed **interleaved**: every round runs one batch through each
model in turn, so a change in machine load hits all of them alike; the median over rounds
is reported. Only the network is timed (random in-memory input, fp32, eval, no_grad).

    nice python benchmarks/bench_models_speed.py --models boq-resnet50,mixvpr \
        --batch-size 2 --rounds 5 --out benchmarks/results/models_speed.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from _machine import machine_info  # benchmarks/ is on sys.path when a script runs

from vgloc.models import GeoLocalizationModel
from vgloc.registry import PUBLISHED_MODELS


def resolve(entry: str) -> tuple[str, str, tuple[int, int]]:
    """``name`` or ``SPEC@HxW`` -> (label, spec, (H, W))."""
    if "@" in entry:
        spec, size = entry.split("@", 1)
        h, w = (int(v) for v in size.lower().split("x"))
        return entry, spec, (h, w)
    pub = PUBLISHED_MODELS.get(entry)
    if pub.preprocessing.image_size is None:
        raise ValueError(f"{entry} has no fixed evaluation size; write SPEC@HxW")
    return entry, pub.spec, pub.preprocessing.image_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="boq-resnet50,boq-dinov2,mixvpr")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    torch.manual_seed(0)
    device = torch.device(args.device)
    rows = []
    for entry in args.models.split(","):
        label, spec, (h, w) = resolve(entry.strip())
        model = GeoLocalizationModel(spec).eval().to(device)
        x = torch.randn(args.batch_size, 3, h, w, device=device)
        with torch.no_grad():
            model(x)  # warm-up (allocations, kernel selection)
        params = sum(p.numel() for p in model.parameters())
        rows.append(
            {
                "model": label,
                "spec": spec,
                "size": f"{h}x{w}",
                "params_M": round(params / 1e6, 2),
                "dim": model.descriptor_dim,
                "_model": model,
                "_x": x,
                "times": [],
            }
        )
    for _ in range(args.rounds):
        for row in rows:
            with torch.no_grad():
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                row["_model"](row["_x"])
                if device.type == "cuda":
                    torch.cuda.synchronize()
                row["times"].append(time.perf_counter() - t0)
    out = []
    for row in rows:
        med = statistics.median(row["times"])
        clean = {k: v for k, v in row.items() if not k.startswith("_")}
        clean["img_per_s"] = round(args.batch_size / med, 2)
        out.append(clean)
        print(
            f"{clean['model']:<40} {clean['size']:>9} {clean['params_M']:>8.2f}M {clean['dim']:>6}-d "
            f"{clean['img_per_s']:>8.2f} img/s"
        )
    result = {
        "machine": machine_info(),
        "device": str(device),
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "rows": out,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
