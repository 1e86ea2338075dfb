"""``vgloc eval`` side by side with CosPlace's own evaluation script (issue 10).

Both run on the same images with the same weights, each as a whole process
(start-up, model load, decoding, the network, the search and the recalls):

* the reference is CosPlace's unmodified ``eval.py`` from ``--anchors``, run in a
  subprocess on ``--device cpu``; the only things the launcher changes from outside
  are (a) torchvision's ImageNet download (the backbone is randomly initialised,
  then overwritten by ``--resume_model``), (b) a stand-in for scikit-image when it
  is not installed (only its prediction drawings use it, off by default), (c) ``np.in1d``
  = ``np.isin`` on NumPy 2 (which removed it), and (d) a recorder of the network's
  outputs, in order, so the descriptors can be compared;
* vgloc is ``vgloc eval --database ... --queries ...`` with its defaults.

The weights are a random ResNet-18+GeM+FC512 in CosPlace's own state-dict format
(vgloc loads it as an authors' checkpoint). The images are the test split of a
synthetic city (480x640 JPEGs), laid out the CosPlace way (``database/`` and
``queries_v1/``, @UTM@ file names), which vgloc reads too. Runs are interleaved
(ref, vgloc, ref, vgloc, ...); the best of each is reported, and the ratio of each
repeat (vgloc against the reference run just before it). ``--baseline-src`` adds a
third contender: ``vgloc eval`` importing vgloc from another source tree (e.g. a
``git worktree`` of the commit before a change), so before and after share the load.

    nice python benchmarks/bench_vs_reference.py --repeats 2 \
        --out benchmarks/results/vs_reference.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _machine import command_line, machine_info, write_results  # benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parent.parent

# Runs CosPlace's eval.py unmodified; see the module docstring for the two outside changes.
_LAUNCHER = r"""
import os, runpy, sys
anchors, record = sys.argv[1], sys.argv[2]
sys.argv = [os.path.join(anchors, "eval.py")] + sys.argv[3:]
sys.path.insert(0, anchors)
os.chdir(os.environ["BVR_WORKDIR"])
import types
if "skimage" not in sys.modules:  # visualizations.py imports it; only used with --num_preds_to_save > 0
    try:
        import skimage.transform
    except ImportError:
        sk = types.ModuleType("skimage"); sk.transform = types.ModuleType("skimage.transform")
        sk.transform.rescale = None; sys.modules["skimage"] = sk; sys.modules["skimage.transform"] = sk.transform
import numpy as np, torchvision
if not hasattr(np, "in1d"):  # removed in NumPy 2; test.py calls it (np.isin is its documented successor)
    np.in1d = np.isin
_orig = torchvision.models.resnet18
torchvision.models.resnet18 = lambda *a, weights=None, **k: _orig()  # no download: weights come from --resume_model
from cosplace_model import cosplace_network
outs = []
_fwd = cosplace_network.GeoLocalizationNet.forward
def forward(self, x):
    y = _fwd(self, x)
    outs.append(y.detach().cpu().numpy())
    return y
cosplace_network.GeoLocalizationNet.forward = forward
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    if record != "-" and outs:
        np.save(record, np.concatenate(outs))
"""

_MAKE_WEIGHTS = r"""
import sys, torch, torchvision
sys.path.insert(0, sys.argv[1])
_orig = torchvision.models.resnet18
torchvision.models.resnet18 = lambda *a, weights=None, **k: _orig()
from cosplace_model import cosplace_network
torch.manual_seed(0)
net = cosplace_network.GeoLocalizationNet("ResNet18", 512)
torch.save(net.state_dict(), sys.argv[2])
"""


def city_size(name: str) -> Any:
    """A size name of ``generate_city``, or ``wide-test``: a city whose test district holds
    4,592 images (3,672 database + 4 x 230 queries, about the issue's 4,658 for the GPU
    row: on a GPU a smaller set measures process start-up, not throughput), with one
    column of train and val so that rendering it (7,405 images) skips most of a city."""
    import dataclasses

    from vgloc.data.synthetic.citymap import SIZES

    if name == "wide-test":
        return dataclasses.replace(SIZES["medium"], train_cols=1, val_cols=1, test_cols=5)
    return name


def build_folder(work: Path, size: str) -> Path:
    """A CosPlace-layout folder over a synthetic city's test split (all query domains)."""
    from vgloc.data.synthetic import generate_city

    # Rendering is CPU-bound and parallel: on a GPU machine every core but one.
    workers = max(1, (os.cpu_count() or 2) - 1)
    city = generate_city(
        work / "city", city_size(size), 0, image_size=(480, 640), progress=False, workers=workers
    )
    test = city / "images" / "test"
    root = work / "cosplace_layout"
    (root / "database").mkdir(parents=True, exist_ok=True)
    (root / "queries_v1").mkdir(parents=True, exist_ok=True)
    for f in sorted((test / "database").glob("*.jpg")):
        dst = root / "database" / f.name
        if not dst.exists():
            dst.symlink_to(f)
    for qdir in sorted(test.glob("queries*")):
        for f in sorted(qdir.glob("*.jpg")):
            dst = root / "queries_v1" / f.name  # names differ by domain (a field of the name)
            if not dst.exists():
                dst.symlink_to(f)
    return root


#: CPU seconds (user + system) of each timed process and its children, in call order.
CPU_S: list[float] = []


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Wall seconds and output of ``cmd``; its CPU seconds (with its workers') go to :data:`CPU_S`.

    CPU time is the figure that other jobs' load disturbs least (wall time stretches
    with every process that shares the cores).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_S.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(
            f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return wall, proc.stdout + proc.stderr


def parse_ref_r1(log: str) -> float:
    for line in reversed(log.splitlines()):
        if "R@1:" in line:
            return float(line.split("R@1:")[1].split(",")[0])
    raise SystemExit("no R@1 in the reference's log:\n" + log[-2000:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--anchors", type=Path, default=Path("/work/shared/anchors/cosplace"))
    ap.add_argument(
        "--city",
        default="tiny",
        help="synthetic city size (tiny: 64 database + 32 queries; small: 460 + 232; "
        "wide-test: 3,672 + 920, for a GPU)",
    )
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "vgloc_bench_vs_reference")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument(
        "--ref-workers", type=int, default=min(8, os.cpu_count() or 1), help="CosPlace --num_workers"
    )
    ap.add_argument("--vgloc-args", default="", help="extra `vgloc eval` arguments")
    ap.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="also time `vgloc eval` with vgloc imported from this src folder (e.g. a git worktree "
        "of an older commit), interleaved with the others, so before/after share the machine's load",
    )
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=ARGS",
        help="also time `vgloc eval` with these extra arguments (e.g. 'w0=--workers 0'), interleaved "
        "with the others in every repeat; repeatable",
    )
    ap.add_argument("--label", default="", help="a note stored with the result (e.g. before/after)")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine (both sides)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    work = args.work.resolve() / args.city  # one folder per city: layouts are links, never mixed
    work.mkdir(parents=True, exist_ok=True)
    root = build_folder(work, args.city)
    n_db = len(list((root / "database").iterdir()))
    n_q = len(list((root / "queries_v1").iterdir()))
    n = n_db + n_q
    weights = work / "cosplace_r18_gem_fc512.pth"
    if not weights.exists():
        subprocess.run([sys.executable, "-c", _MAKE_WEIGHTS, str(args.anchors), str(weights)], check=True)

    env = dict(os.environ, BVR_WORKDIR=str(work))
    ref_cmd = [sys.executable, "-c", _LAUNCHER, str(args.anchors.resolve()), str(work / "ref_desc.npy")]
    ref_cmd += ["--test_set_folder", str(root), "--resume_model", str(weights), "--device", args.device]
    ref_cmd += ["--backbone", "ResNet18", "--fc_output_dim", "512", "--num_workers", str(args.ref_workers)]
    vg_out = work / "vgloc_out"
    # The installed `vgloc` command, else the module (a GPU machine running from src/).
    script = Path(sys.executable).parent / "vgloc"
    vg_cmd = [str(script)] if script.exists() else [sys.executable, "-m", "vgloc.cli"]
    vg_cmd += ["eval", "--database", str(root / "database")]
    vg_cmd += ["--queries", str(root / "queries_v1"), "--model", "resnet18+gem+fc512"]
    vg_cmd += ["--checkpoint", str(weights), "--device", args.device, "--no-progress", "--no-report"]
    vg_cmd += ["--out", str(vg_out), "--run-dir", str(work / "runs"), *args.vgloc_args.split()]

    variants = dict(v.split("=", 1) for v in args.variant)
    variant_walls: dict[str, list[float]] = {name: [] for name in variants}
    base_walls: list[float] = []
    base_env = None
    if args.baseline_src is not None:
        base_env = dict(os.environ, PYTHONPATH=str(args.baseline_src.resolve()))
    ref_walls, vg_walls = [], []
    ref_cpu, vg_cpu, base_cpu = [], [], []
    variant_cpu: dict[str, list[float]] = {name: [] for name in variants}
    ref_log = ""
    for r in range(args.repeats):
        w, ref_log = timed(ref_cmd, env)
        ref_walls.append(w)
        ref_cpu.append(CPU_S[-1])
        w, _ = timed(vg_cmd)
        vg_walls.append(w)
        vg_cpu.append(CPU_S[-1])
        if base_env is not None:
            w, _ = timed(_with_out(vg_cmd, work / "vgloc_out_baseline"), base_env)
            base_walls.append(w)
            base_cpu.append(CPU_S[-1])
        for name, extra in variants.items():
            # Each run writes its own results (the R@1 below is read back per run).
            w, _ = timed([*_with_out(vg_cmd, work / f"vgloc_out_{name}"), *extra.split()])
            variant_walls[name].append(w)
            variant_cpu[name].append(CPU_S[-1])
        print(
            f"repeat {r}: reference {ref_walls[-1]:.1f} s, vgloc {vg_walls[-1]:.1f} s"
            + (f", baseline vgloc {base_walls[-1]:.1f} s" if base_walls else "")
            + "".join(f", {name} {walls[-1]:.1f} s" for name, walls in variant_walls.items())
            + f"; CPU s: reference {ref_cpu[-1]:.1f}, vgloc {vg_cpu[-1]:.1f}"
            + (f", baseline {base_cpu[-1]:.1f}" if base_cpu else "")
            + "".join(f", {name} {cpus[-1]:.1f}" for name, cpus in variant_cpu.items())
            + f" (load average {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    ref_r1 = parse_ref_r1(ref_log)
    results = json.loads((vg_out / "results.json").read_text())
    vg_r1 = _find_r1(results)

    # Descriptors: the reference's, recorded in order (database then queries), against
    # vgloc's describer with the defaults `vgloc eval` uses.
    from vgloc.describers import ExtractionOptions
    from vgloc.describers.net import NetDescriber

    ref = np.load(work / "ref_desc.npy")
    paths = sorted((root / "database").iterdir()) + sorted((root / "queries_v1").iterdir())
    ref_paths = _cosplace_order(root)
    order = {p: i for i, p in enumerate(paths)}
    desc = NetDescriber.from_spec("resnet18+gem+fc512", weights).describe(
        paths, ExtractionOptions(device=args.device, progress=False)
    )
    ours = desc[[order[p] for p in ref_paths]]
    cos = np.sum(ref * ours, 1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(ours, axis=1))

    ref_ips = n / min(ref_walls)
    vg_ips = n / min(vg_walls)
    out = {
        "label": args.label,
        "command": command_line(),
        "machine": machine_info(),
        "cpu_flags": _cpu_flags(),
        "images": {"database": n_db, "queries": n_q, "size": "480x640"},
        "reference_wall_s": ref_walls,
        "vgloc_wall_s": vg_walls,
        "reference_img_per_s": round(ref_ips, 2),
        "vgloc_img_per_s": round(vg_ips, 2),
        "ratio": round(vg_ips / ref_ips, 3),
        # Paired: each repeat's vgloc run against the reference run just before it (the
        # machine's load changes between repeats; the median of these is the robust figure).
        "ratio_per_repeat": [round(r / v, 3) for r, v in zip(ref_walls, vg_walls, strict=True)],
        # CPU seconds of each whole process (with its decoding workers): less disturbed by
        # other jobs than wall time; the reference's over vgloc's is a second ratio.
        "reference_cpu_s": [round(c, 2) for c in ref_cpu],
        "vgloc_cpu_s": [round(c, 2) for c in vg_cpu],
        "cpu_ratio_per_repeat": [round(r / v, 3) for r, v in zip(ref_cpu, vg_cpu, strict=True)],
        "reference_r1": ref_r1,
        "vgloc_r1": vg_r1,
        "cosine_min": float(cos.min()),
        "vgloc_args": args.vgloc_args,
    }
    if base_walls:
        out["baseline_src"] = str(args.baseline_src)
        out["baseline_wall_s"] = base_walls
        out["baseline_img_per_s"] = round(n / min(base_walls), 2)
        out["baseline_ratio"] = round(n / min(base_walls) / ref_ips, 3)
        out["baseline_ratio_per_repeat"] = [
            round(r / b, 3) for r, b in zip(ref_walls, base_walls, strict=True)
        ]
        out["baseline_cpu_s"] = [round(c, 2) for c in base_cpu]
    if variants:
        out["variants"] = {
            name: {
                "args": variants[name],
                "wall_s": walls,
                "img_per_s": round(n / min(walls), 2),
                "ratio_per_repeat": [round(r / w, 3) for r, w in zip(ref_walls, walls, strict=True)],
                "cpu_s": [round(c, 2) for c in variant_cpu[name]],
                "r1": _find_r1(json.loads((work / f"vgloc_out_{name}" / "results.json").read_text())),
            }
            for name, walls in variant_walls.items()
        }
    out["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps({k: v for k, v in out.items() if k not in ("machine", "command")}, indent=1))
    write_results(args.out, **out)


def _with_out(cmd: list[str], out: Path) -> list[str]:
    """``cmd`` with its ``--out`` folder replaced by ``out``."""
    i = cmd.index("--out")
    return [*cmd[: i + 1], str(out), *cmd[i + 2 :]]


def _find_r1(results: object) -> float | None:
    """The first R@1 in vgloc's results.json (one query domain here)."""
    if isinstance(results, dict):
        for key, val in results.items():
            if str(key) in ("R@1", "r@1", "1") and isinstance(val, (int, float)):
                return float(val)
        for val in results.values():
            found = _find_r1(val)
            if found is not None:
                return found
    if isinstance(results, list):
        for val in results:
            found = _find_r1(val)
            if found is not None:
                return found
    return None


def _cosplace_order(root: Path) -> list[Path]:
    """The order CosPlace reads images in (its dataset_utils: sorted glob of **/*.jpg)."""
    return sorted((root / "database").glob("**/*.jpg")) + sorted((root / "queries_v1").glob("**/*.jpg"))


def _cpu_flags() -> list[str]:
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split()
    except (OSError, IndexError):
        return []
    return sorted(f for f in flags if f in {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni"})


if __name__ == "__main__":
    main()
