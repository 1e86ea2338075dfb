"""Where a CPU training step's time goes, before and after issue 10's changes, measured interleaved.

Three parts of a CosPlace step at ``--size`` px, batch ``--batch-size``, ResNet-18 + GeM +
FC 512 with the early layers frozen:

* augmentation of a batch: per image with torchvision in a worker (``TrainAugment``,
  before) against the batched on-device ops (``BatchAugment``, after);
* the update: Adam over the trainable parameters, torch's default kernels (before)
  against ``fused=True`` (after);
* forward + backward in fp32, contiguous (NCHW) against channels_last.

Each pair runs alternately ``--repeats`` times; the median seconds of each are printed.
Then the channels_last forward + backward is split: the frozen early layers' forward alone
(no gradients; BatchNorm in training mode, as in both recipes) against the whole, which
bounds what any trick confined to the frozen layers could save, and the same frozen layers
run by ONNX Runtime (its inference kernels are ~1.6x torch's on this network) with BatchNorm
written out in training mode (batch statistics, as torch computes them there), the one
inference engine trick that keeps the recipe's arithmetic.

    nice python benchmarks/bench_train_parts.py --repeats 3 --out benchmarks/results/train_parts.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _machine import command_line, machine_info, write_results  # benchmarks/ is on sys.path

from vgloc.config import resolve_config
from vgloc.losses import create_margin_head
from vgloc.models import create_model, freeze_early_layers
from vgloc.training.augment import TrainAugment
from vgloc.training.batch_augment import BatchAugment


def seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class _TrainModeBatchNorm(torch.nn.Module):
    """BatchNorm in training mode as plain ops (batch mean and biased variance), so the
    ONNX export keeps the batch statistics (torch's exporter folds BatchNorm to eval mode)."""

    def __init__(self, bn: torch.nn.BatchNorm2d) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = bn.weight, bn.bias, bn.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = (x * x).mean(dim=(0, 2, 3), keepdim=True) - mean * mean
        scale = torch.rsqrt(var + self.eps) * self.weight.view(1, -1, 1, 1)
        return (x - mean) * scale + self.bias.view(1, -1, 1, 1)


def onnx_frozen_forward(prefix: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median seconds of ``prefix`` (training-mode BatchNorm) under ONNX Runtime on ``x``."""
    import copy
    import io

    import onnxruntime as ort

    plain = copy.deepcopy(prefix).to(memory_format=torch.contiguous_format)

    def swap(module: torch.nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, torch.nn.BatchNorm2d):
                setattr(module, name, _TrainModeBatchNorm(child))
            else:
                swap(child)

    swap(plain)
    with torch.no_grad():
        expected = prefix.train()(x)
    buf = io.BytesIO()
    # (Constant folding de-duplicates the identical fresh BatchNorm constants into a dangling name.)
    torch.onnx.export(
        plain,
        (x,),
        buf,
        input_names=["x"],
        output_names=["y"],
        opset_version=17,
        dynamo=False,
        do_constant_folding=False,
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy()}
    got = session.run(None, feed)[0]
    assert float(abs(got - expected.numpy()).max()) < 1e-3, "the ONNX prefix does not compute the same"
    session.run(None, feed)  # (warm-up)
    return round(statistics.median(seconds(lambda: session.run(None, feed)) for _ in range(repeats)), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    b, size = args.batch_size, (args.size, args.size)

    cfg = resolve_config("cosplace").augment
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (b, 3, *size), dtype=torch.uint8, generator=g)
    seeds = [int(s) for s in torch.randint(0, 2**62, (b,), generator=g)]
    per_image, batched = TrainAugment(cfg, size), BatchAugment(cfg, size)

    torch.manual_seed(0)
    model = create_model("resnet18+gem+fc512").train()
    freeze_early_layers(model)
    head = create_margin_head("cosface", 512, 300)
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [torch.randn_like(p) for p in params]
    plain_opt = torch.optim.Adam(params, lr=1e-5)
    fused_opt = torch.optim.Adam(params, lr=1e-5, fused=True)
    x = torch.randn(b, 3, *size, generator=g)
    y = torch.randint(0, 300, (b,), generator=g)

    def opt_step(opt: torch.optim.Optimizer) -> None:
        for p, gr in zip(params, grads, strict=True):
            p.grad = gr
        opt.step()

    def fwd_bwd(nhwc: bool) -> None:
        model.to(memory_format=torch.channels_last if nhwc else torch.contiguous_format)
        inp = x.contiguous(memory_format=torch.channels_last) if nhwc else x
        head.loss(model(inp), y).backward()
        model.zero_grad(set_to_none=True)

    pairs: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "augmentation": (
            lambda: torch.stack([per_image(im, s) for im, s in zip(images, seeds, strict=True)]),
            lambda: batched(images, seeds),
        ),
        "adam_update": (lambda: opt_step(plain_opt), lambda: opt_step(fused_opt)),
        "forward_backward_fp32": (lambda: fwd_bwd(False), lambda: fwd_bwd(True)),
    }
    for before, after in pairs.values():  # warm-up (lazy imports, first-call allocations)
        before()
        after()
    results = {}
    for name, (before, after) in pairs.items():
        tb, ta = [], []
        for _ in range(args.repeats):
            tb.append(seconds(before))
            ta.append(seconds(after))
        mb, ma = statistics.median(tb), statistics.median(ta)
        results[name] = {"before_s": round(mb, 4), "after_s": round(ma, 4), "speedup": round(mb / ma, 2)}
        print(f"{name:24s} before {mb:8.3f} s  after {ma:8.3f} s  {mb / ma:5.2f}x", flush=True)
    # The frozen prefix (conv1 .. layer2 for a ResNet) as one Sequential slice.
    n_frozen = max(int(path.split(".")[0]) for path in model.backbone.frozen) + 1
    prefix = torch.nn.Sequential(*list(model.backbone)[:n_frozen])
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def frozen_forward() -> None:
        model.to(memory_format=torch.channels_last)
        with torch.no_grad():
            prefix(x_cl)

    tw, tf = [], []
    for _ in range(args.repeats):
        tw.append(seconds(lambda: fwd_bwd(True)))
        tf.append(seconds(frozen_forward))
    whole, frozen = statistics.median(tw), statistics.median(tf)
    results["split_channels_last"] = {
        "forward_backward_s": round(whole, 4),
        "frozen_forward_s": round(frozen, 4),
        "frozen_share": round(frozen / whole, 3),
    }
    print(
        f"{'frozen layers forward':24s} {frozen:8.3f} s of {whole:.3f} s ({frozen / whole:.0%})", flush=True
    )
    results["split_channels_last"]["frozen_forward_onnxruntime_s"] = onnx_frozen_forward(
        prefix, x, args.repeats
    )
    print(
        f"{'  the same, ONNX Runtime':24s} {results['split_channels_last']['frozen_forward_onnxruntime_s']:8.3f} s"
    )
    labels = {"augmentation": "per-image -> batched", "adam_update": "default -> fused",
              "forward_backward_fp32": "NCHW -> channels_last"}  # fmt: skip
    out = {"command": command_line(), "machine": machine_info(), "batch": b, "size": args.size,
           "labels": labels, "results": results}  # fmt: skip
    print(json.dumps(results, indent=1))
    write_results(args.out, **out)


if __name__ == "__main__":
    main()
