"""``vgloc export``: write a descriptor network as ONNX or TorchScript, checked against PyTorch."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vgloc.cli.command import Command, register
from vgloc.cli.options import add_option, add_runtime_options, parse_image_size, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``vgloc export``."""
    p.add_argument(
        "--model",
        required=True,
        help="a published model's name (megaloc, cosplace:resnet50+gem+fc2048, ...) or a spec "
        "(resnet18+gem+fc512); see `vgloc models`",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="weights: a local copy of the published file, a vgloc checkpoint or an authors' state dict "
        "(default: the published weights, fetched; a spec without it exports random weights)",
    )
    p.add_argument(
        "--format", dest="fmt", choices=["onnx", "torchscript"], default="onnx", help="(default: onnx)"
    )
    p.add_argument("--out", type=Path, required=True, help="file to write (e.g. model.onnx, model.ts)")
    add_option(
        p,
        "--image-size",
        metavar="H,W",
        type=parse_image_size,
        default=None,
        help="size of the example the export is traced and checked with (default: the published "
        "model's evaluation size, else 480,640; ONNX keeps batch, height and width dynamic)",
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=2, help="images in the example batch (default: 2)"
    )
    p.add_argument(
        "--atol", type=float, default=1e-4, help="largest difference from PyTorch accepted (default: 1e-4)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_runtime_options(p)


def run(args: argparse.Namespace) -> int:
    """Build the model (published weights or a checkpoint), export it and print the check."""
    import torch

    from vgloc.describers import NetDescriber
    from vgloc.models.export import export_model

    if isinstance(args.image_size, str):
        args.image_size = None  # "auto": the model's own size

    torch.manual_seed(args.seed)
    # The describer's resolution covers every case (published name + local copy, spec +
    # checkpoint, vgloc model file) exactly as index build / eval do.
    net = NetDescriber.from_spec(args.model, args.checkpoint).model
    report = export_model(
        net, args.out, args.fmt, image_size=args.image_size, batch_size=args.batch_size, atol=args.atol
    )
    if args.json:
        print(json.dumps({**report.metadata, "path": str(report.path), "max_abs_diff": report.max_abs_diff}))
    else:
        h, w = report.image_size
        print(
            f"exported {report.metadata['published'] or report.metadata['spec']} -> {report.path} "
            f"({report.format}, descriptor {report.metadata['descriptor_dim']}); checked at {h}x{w}: "
            f"max |diff| vs PyTorch {report.max_abs_diff:.2e}"
        )
    return 0


COMMAND = register(
    Command(
        name="export",
        help="export a model to ONNX or TorchScript (checked against PyTorch)",
        description="Write a descriptor network as ONNX or TorchScript: float32 (B,3,H,W) images, "
        "resized and normalised as the stored metadata says, to (B,D) descriptors. The export is run "
        "once on an example batch and refused if it differs from PyTorch by more than --atol.",
        add_arguments=add_arguments,
        run=run,
    )
)
