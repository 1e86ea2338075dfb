"""The network alone on CPU under each inference engine, timed interleaved (issue 10).

ResNet-18+GeM+FC512 (random weights) on a batch of random 480x640 images: torch eager
NCHW (CosPlace's path), torch channels-last, ONNX Runtime (one run, intra-op threads),
vgloc's engine (ONNX Runtime, the batch split across the cores, one single-threaded run
each; it exports its own copy) and OpenVINO (when installed), each round running every engine
once so that load from other jobs hits them alike. Prints img/s per round and the
minimum cosine of each engine's descriptors against torch's.

    python benchmarks/bench_engines.py --rounds 5 --out benchmarks/results/engines.json
"""

from __future__ import annotations

import argparse
import io
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _machine import command_line, describe_machine, machine_info, write_results

from vgloc.models import create_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", default="resnet18+gem+fc512")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", default="480,640", help="H,W")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split(","))
    torch.manual_seed(0)
    model = create_model(args.spec).eval()
    x = torch.randn(args.batch, 3, h, w)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x[:1],), buf, input_names=["images"], output_names=["d"],
            dynamic_axes={"images": {0: "b", 2: "h", 3: "w"}, "d": {0: "b"}}, opset_version=17, dynamo=False,
        )  # fmt: skip
    xn = x.numpy()
    cl_model = create_model(args.spec).eval()
    cl_model.load_state_dict(model.state_dict())
    cl_model = cl_model.to(memory_format=torch.channels_last)

    def torch_nchw() -> np.ndarray:
        with torch.inference_mode():
            return model(x).numpy()

    def torch_cl() -> np.ndarray:
        with torch.inference_mode():
            return cl_model(x.contiguous(memory_format=torch.channels_last)).numpy()

    engines: dict[str, Callable[[], np.ndarray]] = {"torch NCHW": torch_nchw, "torch channels-last": torch_cl}
    import onnxruntime as ort

    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    engines["onnxruntime"] = lambda: session.run(None, {"images": xn})[0]
    # vgloc's engine: the batch split across the cores, one single-threaded run per slice.
    from vgloc.models.engines import OnnxRuntimeEngine

    sliced = OnnxRuntimeEngine(model, x[:1])
    engines[f"onnxruntime {sliced.cores}x1 thread"] = lambda: sliced(x).numpy()
    try:
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(buf.getvalue()), "CPU", {"PERFORMANCE_HINT": "LATENCY"})
        engines["openvino"] = lambda: compiled(xn)[0]
    except ImportError:
        print("openvino not installed: skipped")
    reference = torch_nchw()
    cosine = {k: float((f() * reference).sum(1).min()) for k, f in engines.items()}
    rates: dict[str, list[float]] = {k: [] for k in engines}
    for _ in range(args.rounds):
        for k, f in engines.items():
            t0 = time.perf_counter()
            f()
            rates[k].append(args.batch / (time.perf_counter() - t0))
    machine = machine_info()
    print(describe_machine(machine))
    for k, r in rates.items():
        print(
            f"{k:>20}: median {np.median(r):6.2f} img/s  rounds {[round(v, 2) for v in r]}  cosine {cosine[k]:.7f}"
        )
    write_results(args.out, command=command_line(), machine=machine, rates=rates, cosine=cosine)


if __name__ == "__main__":
    main()
