"""``vgloc train cosplace`` side by side with CosPlace's own ``train.py`` (issue 10): training img/s.

Both train the same model (ResNet-18 + GeM + FC 512, randomly initialised: no
ImageNet download here) on the same images with the same recipe settings: batch 32,
one group holding every class of at least ``--min-images`` images (``M=20 m``,
``alpha=90`` by default, for the city's panorama spacing; ``N=L=1``,
``groups_num=1``), CosFace s=30 m=0.4, Adam 1e-5 / 0.01,
ColorJitter(0.7, 0.7, 0.7, 0.5) + RandomResizedCrop(scale 0.5-1) + normalisation,
``--iterations`` steps at ``--size`` px, fp32 on the CPU (each tool's defaults for
everything else, e.g. decoding workers; ``--workers`` sets both).

* The reference is CosPlace's unmodified ``train.py`` from ``--anchors``, run in a
  subprocess with ``--device cpu``. From outside, the launcher only (a) makes
  torchvision's ResNet-18 skip the ImageNet download, (b) lets ``torch.load`` read
  CosPlace's own pickled dataset cache (torch >= 2.6 loads weights only by default),
  (c) stands in for scikit-image and ``np.in1d`` as ``bench_vs_reference.py`` does,
  and (d) records when the training loop takes each batch (``InfiniteDataLoader``).
* vgloc is ``vgloc train cosplace`` with the same settings (``data.adapt=false``);
  its per-step throughput is read from the run's ``steps.csv``.

The images are a synthetic city (``--city``, 512x512 JPEGs as CosPlace's training
requires) in CosPlace's layout (a training folder of ``@UTM@...@heading@`` files,
``val/{database,queries}``, ``test/{database,queries_v1}``); validation and test sets
are cut to a few images since only the training loop is timed. A step's time is the
time between two consecutive batches taken by the loop (data waiting + forward +
backward + update); the first ``--warmup`` steps are left out. Runs are interleaved
(reference, vgloc, [baseline vgloc], ...), and each repeat's ratio is vgloc's img/s
over the reference run just before it (the machine is shared: the median ratio is
the robust figure).

    nice python benchmarks/bench_train_vs_reference.py --iterations 12 --repeats 2 \\
        --out benchmarks/results/train_vs_reference.json
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import command_line, machine_info, write_results  # benchmarks/ is on sys.path

# CosPlace's train.py, unmodified; see the module docstring for the outside changes.
_LAUNCHER = r"""
import os, runpy, sys, time, json
anchors, record = sys.argv[1], sys.argv[2]
sys.argv = [os.path.join(anchors, "train.py")] + sys.argv[3:]
sys.path.insert(0, anchors)
os.chdir(os.environ["BTR_WORKDIR"])
import types
if "skimage" not in sys.modules:
    try:
        import skimage.transform
    except ImportError:
        sk = types.ModuleType("skimage"); sk.transform = types.ModuleType("skimage.transform")
        sk.transform.rescale = None; sys.modules["skimage"] = sk; sys.modules["skimage.transform"] = sk.transform
import numpy as np, torch, torchvision
if not hasattr(np, "in1d"):
    np.in1d = np.isin
_load = torch.load
def _cosplace_load(*a, **k):  # CosPlace's own dataset cache is a pickle of lists and dicts
    k.setdefault("weights_only", False)
    return _load(*a, **k)
torch.load = _cosplace_load
_orig = torchvision.models.resnet18
torchvision.models.resnet18 = lambda *a, weights=None, **k: _orig()
import commons
stamps = []
_next = commons.InfiniteDataLoader.__next__
def _timed_next(self):
    batch = _next(self)
    stamps.append(time.perf_counter())
    return batch
commons.InfiniteDataLoader.__next__ = _timed_next
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    with open(record, "w") as fh:
        json.dump(stamps, fh)
"""


def build_layout(work: Path, city_size: str, n_eval: int) -> tuple[Path, Path]:
    """The city in CosPlace's layout and in vgloc's, sharing the image files (symlinks).

    Returns:
        ``(cosplace_root, vgloc_root)``.
    """
    from vgloc.data.synthetic import generate_city

    city = generate_city(work / f"city_{city_size}_512", city_size, 0, image_size=(512, 512), progress=False)
    images = city / "images"
    cp = work / "cosplace_layout"
    vg = work / "vgloc_layout" / "images"

    def link_all(src: list[Path], dst: Path) -> None:
        dst.mkdir(parents=True, exist_ok=True)
        for f in src:
            target = dst / f.name
            if not target.exists():
                target.symlink_to(f.resolve())

    train = sorted((images / "train" / "database").glob("*.jpg"))
    val_db = sorted((images / "val" / "database").glob("*.jpg"))[:n_eval]
    val_q_dir = sorted(d for d in (images / "val").iterdir() if d.name.startswith("queries"))[0]
    val_q = sorted(val_q_dir.glob("*.jpg"))[: max(1, n_eval // 2)]
    link_all(train, cp / "train")
    link_all(val_db, cp / "val" / "database")
    link_all(val_q, cp / "val" / "queries")
    link_all(val_db, cp / "test" / "database")
    link_all(val_q, cp / "test" / "queries_v1")
    link_all(train, vg / "train" / "database")
    # vgloc's train split has a query folder too (unused by CosPlace training).
    link_all(sorted((images / "train" / "queries").glob("*.jpg"))[:n_eval], vg / "train" / "queries")
    link_all(val_db, vg / "val" / "database")
    link_all(val_q, vg / "val" / "queries")
    return cp, vg.parent


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run a command; its output, or exit with it on failure."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if proc.returncode != 0:
        raise SystemExit(
            f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}"
        )
    return proc.stdout + proc.stderr


def reference_step_times(stamps_file: Path) -> list[float]:
    """Seconds of each step of CosPlace's loop (between consecutive batches)."""
    stamps = json.loads(stamps_file.read_text())
    return [b - a for a, b in itertools.pairwise(stamps)]


def vgloc_step_times(run_dir: Path, batch: int) -> list[float]:
    """Seconds of each step of a vgloc run (its ``steps.csv`` img/s column)."""
    with open(run_dir / "steps.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    col = rows[0].index("images_per_s") if "images_per_s" in rows[0] else -1
    return [batch / float(r[col]) for r in rows[1:] if r and float(r[col]) > 0]


def img_per_s(step_s: list[float], batch: int, warmup: int) -> float:
    """Images per second over the steps after ``warmup``."""
    kept = step_s[warmup:] or step_s
    return batch * len(kept) / sum(kept)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--anchors", type=Path, default=Path("/work/shared/anchors/cosplace"))
    ap.add_argument("--city", default="small", help="synthetic city size (small: 868 training images)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "vgloc_bench_train_ref")
    ap.add_argument("--iterations", type=int, default=12, help="training steps per run")
    ap.add_argument("--warmup", type=int, default=2, help="first steps left out of the rate")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--size", type=int, default=224, help="training crop (px, square)")
    ap.add_argument("--min-images", type=int, default=2, help="min_images_per_class of both")
    # The synthetic city has one panorama every 7.5-24 m with 4 headings 90 degrees apart:
    # 10 m x 30 degree classes would hold one image each.
    ap.add_argument("--M", type=int, default=20, help="class cell side (m) of both")
    ap.add_argument("--alpha", type=int, default=90, help="class heading sector (degrees) of both")
    ap.add_argument(
        "--workers", type=int, default=None, help="decoding workers of both (default: each tool's)"
    )
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--n-eval", type=int, default=8, help="val/test database images (kept tiny)")
    ap.add_argument(
        "--vgloc-args", default="", help="extra `vgloc train cosplace` arguments (e.g. --set ...)"
    )
    ap.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="also time `vgloc train` imported from this src folder (e.g. a git worktree of an older commit)",
    )
    ap.add_argument("--label", default="")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine (both sides)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    # One folder per city: CosPlace caches its class grouping under the working folder by
    # the split's folder name, so two cities sharing one folder would share that cache.
    work = args.work.resolve() / args.city
    work.mkdir(parents=True, exist_ok=True)
    cp_root, vg_root = build_layout(work, args.city, args.n_eval)
    b, it = args.batch_size, args.iterations

    common = {
        "M": args.M,
        "alpha": args.alpha,
        "N": 1,
        "L": 1,
        "groups_num": 1,
        "min_images_per_class": args.min_images,
    }
    ref_cmd = [sys.executable, "-c", _LAUNCHER, str(args.anchors.resolve()), str(work / "ref_stamps.json")]
    ref_cmd += ["--train_set_folder", str(cp_root / "train"), "--val_set_folder", str(cp_root / "val")]
    ref_cmd += ["--test_set_folder", str(cp_root / "test"), "--device", args.device, "--backbone", "ResNet18"]
    ref_cmd += ["--fc_output_dim", "512", "--batch_size", str(b), "--iterations_per_epoch", str(it)]
    ref_cmd += ["--epochs_num", "1", "--image_size", str(args.size), "--infer_batch_size", "8"]
    ref_cmd += [x for k, v in common.items() for x in (f"--{k}", str(v))]
    if args.workers is not None:
        ref_cmd += ["--num_workers", str(args.workers)]

    sets = [f"cosplace.{k}={v}" for k, v in common.items()]
    sets += [
        f"cosplace.batch_size={b}",
        f"cosplace.iterations_per_epoch={it}",
        "schedule.epochs=1",
        "data.adapt=false",
        "model.pretrained=false",
        f"data.image_size={args.size},{args.size}",
        "validation.batch_size=8",
        "runtime.tensorboard=false",
    ]
    if args.workers is not None:
        sets.append(f"runtime.num_workers={args.workers}")
    vg_base = [sys.executable, "-m", "vgloc.cli", "train", "cosplace", "--dataset", str(vg_root)]
    vg_base += ["--model", "resnet18+gem+fc512", "--device", args.device, "--no-progress"]
    vg_base += [x for s in sets for x in ("--set", s)] + args.vgloc_args.split()

    env = dict(os.environ, BTR_WORKDIR=str(work))
    base_env = (
        None if args.baseline_src is None else dict(os.environ, PYTHONPATH=str(args.baseline_src.resolve()))
    )
    ref_ips: list[float] = []
    vg_ips: list[float] = []
    base_ips: list[float] = []
    for r in range(args.repeats):
        run(ref_cmd, env)
        ref_ips.append(img_per_s(reference_step_times(work / "ref_stamps.json"), b, args.warmup))
        run_dir = work / "runs" / f"vgloc-{time.time_ns()}"
        run([*vg_base, "--run-dir", str(run_dir)])
        vg_ips.append(img_per_s(vgloc_step_times(run_dir, b), b, args.warmup))
        if base_env is not None:
            run_dir = work / "runs" / f"baseline-{time.time_ns()}"
            run([*vg_base, "--run-dir", str(run_dir)], base_env)
            base_ips.append(img_per_s(vgloc_step_times(run_dir, b), b, args.warmup))
        print(
            f"repeat {r}: reference {ref_ips[-1]:.2f} img/s, vgloc {vg_ips[-1]:.2f} img/s "
            f"({vg_ips[-1] / ref_ips[-1]:.2f}x)"
            + (f", baseline vgloc {base_ips[-1]:.2f} img/s" if base_ips else ""),
            flush=True,
        )

    ratios = [v / r for v, r in zip(vg_ips, ref_ips, strict=True)]
    out = {
        "label": args.label,
        "command": command_line(),
        "machine": machine_info(),
        "cpu_flags": _cpu_flags(),
        "settings": {
            "batch": b,
            "iterations": it,
            "warmup": args.warmup,
            "size": args.size,
            "workers": args.workers,
            "city": args.city,
            **common,
        },
        "reference_img_per_s": [round(x, 3) for x in ref_ips],
        "vgloc_img_per_s": [round(x, 3) for x in vg_ips],
        "ratio_per_repeat": [round(x, 3) for x in ratios],
        "ratio_median": round(float(statistics.median(ratios)), 3),
        "vgloc_args": args.vgloc_args,
    }
    if base_ips:
        out["baseline_src"] = str(args.baseline_src)
        out["baseline_img_per_s"] = [round(x, 3) for x in base_ips]
        out["baseline_ratio_per_repeat"] = [round(x / r, 3) for x, r in zip(base_ips, ref_ips, strict=True)]
    print(json.dumps({k: v for k, v in out.items() if k not in ("machine", "command")}, indent=1))
    write_results(args.out, **out)


def _cpu_flags() -> list[str]:
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split()
    except (OSError, IndexError):
        return []
    return sorted(f for f in flags if f in {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni"})


if __name__ == "__main__":
    main()
