"""What int8 is calibrated on, and how: cosine to fp32 on held-out real and synthetic images.

For ``resnet18+gem+fc512`` (random weights, seed 0) at 480x640, quantises the fp32 ONNX
export with :func:`vgloc.models.quantize.quantize_onnx` (ONNX Runtime's
``quantize_static`` with the engine's settings) four ways: calibrated on vgloc's 16 synthetic calibration
views or on the first 12 real photos of ``--photos``, with the MinMax or the Percentile
method; then reports the minimum and mean cosine between int8 and fp32 descriptors of
24 synthetic test-split queries (``--city``, any domain) and of the remaining real photos.

    python benchmarks/bench_int8_calibration.py --photos ../shared/data/lund-exif-gps \\
        --city /tmp/vgloc_bench_int8/city480 --out benchmarks/results/int8_calibration.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import onnxruntime as ort
    import torch
    from _machine import command_line, machine_info

    from vgloc.data.datasets import DecodedImageDataset
    from vgloc.data.transforms import NormalizeUint8
    from vgloc.models import create_model
    from vgloc.models.engines import OnnxRuntimeEngine
    from vgloc.models.quantize import calibration_images, quantize_onnx

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=Path, required=True, help="a folder of real JPEGs (>= 16)")
    ap.add_argument("--city", type=Path, required=True, help="a synthetic city rendered at 480x640")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    normalize = NormalizeUint8()

    def load(paths: list[Path]) -> np.ndarray:
        data = DecodedImageDataset(paths, (480, 640))
        return normalize(torch.stack([data[i][0] for i in range(len(data))])).numpy()

    real = sorted(args.photos.glob("*.jpg"))
    if len(real) < 16:
        raise SystemExit(f"--photos needs at least 16 JPEGs, found {len(real)}")
    queries = sorted(p for p in (args.city / "images" / "test").glob("queries*/*.jpg"))[::10][:24]
    real_cal, real_test = load(real[:12]), load(real[12:])
    synthetic_cal = normalize(torch.from_numpy(calibration_images((480, 640)))).numpy()
    synthetic_test = load(queries)

    torch.manual_seed(0)
    model = create_model("resnet18+gem+fc512").eval()
    engine = OnnxRuntimeEngine(model, torch.from_numpy(synthetic_test[:1]))
    engine.save_to_cache()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    fp32 = ort.InferenceSession(str(engine.cache_path), options, providers=["CPUExecutionProvider"])

    def describe(session: ort.InferenceSession, batch: np.ndarray) -> np.ndarray:
        out = np.concatenate([session.run(None, {"images": batch[i : i + 1]})[0] for i in range(len(batch))])
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    reference = {"synthetic": describe(fp32, synthetic_test), "real": describe(fp32, real_test)}

    rows = []
    with tempfile.TemporaryDirectory() as work:
        for cal_name, cal in (("synthetic views (vgloc's)", synthetic_cal), ("12 real photos", real_cal)):
            for method in ("MinMax", "Percentile"):
                out = quantize_onnx(
                    engine.cache_path, cal, Path(work) / "int8.onnx", reduce_range=False, method=method
                )
                int8 = ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
                row: dict = {"calibrated_on": cal_name, "method": method}
                for test_name, batch in (("synthetic", synthetic_test), ("real", real_test)):
                    cos = np.sum(describe(int8, batch) * reference[test_name], axis=1)
                    row[test_name] = {"min": round(float(cos.min()), 5), "mean": round(float(cos.mean()), 5)}
                rows.append(row)
                print(
                    f"| {cal_name} | {method} | {row['synthetic']['min']:.5f} / {row['synthetic']['mean']:.5f} "
                    f"| {row['real']['min']:.5f} / {row['real']['mean']:.5f} |",
                    flush=True,
                )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result = {"command": command_line(), "machine": machine_info(), "rows": rows}
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
