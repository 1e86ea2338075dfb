"""``vgloc train METHOD``: the training commands of the ``vgloc`` CLI.

:data:`COMMAND` registers the ``train`` command, with one sub-command per method
registered in :data:`vgloc.registry.TRAINING_METHODS` (its help text comes from there).
Options resolve into a :class:`vgloc.config.TrainConfig` in this order (later wins):
method defaults -> ``--config FILE.yaml`` -> the shorthand options (``--dataset``,
``--model``, ``--epochs``, ...) -> ``--set key=value`` (repeatable). With
``--resume RUN_DIR`` the run's own saved configuration replaces the defaults and the
file, and only run-time keys (device, workers, epochs, patience, data location) may be
changed.

Distributed: launch the same command under torchrun, e.g.
``torchrun --nproc_per_node=4 -m vgloc.cli train cosplace --dataset ... --device cuda``.

Example::

    vgloc train triplet --dataset data/pitts30k --model resnet18.conv4+netvlad64
    vgloc train cosplace --dataset data/city --model tiny+gem+fc64 --set data.image_size=96,128 \\
        --set cosplace.M=16 --epochs 5
    vgloc train cosplace --resume runs/20250101-120000-train-cosplace
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from vgloc.cli.command import Command, register
from vgloc.cli.options import add_option, add_runtime_options, positive_int

__all__ = ["COMMAND", "add_arguments", "add_train_parser", "build_train_config", "cmd_train"]

log = logging.getLogger("vgloc")


def _precision(text: str) -> str:
    if text not in ("auto", "fp32", "fp16", "bf16"):
        raise argparse.ArgumentTypeError(f"expected auto, fp32, fp16 or bf16, got {text!r}")
    return text


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``vgloc train {triplet,cosplace}`` to the CLI's sub-command parsers.

    Kept for callers that assemble their own parser; :func:`vgloc.cli.build_parser`
    adds the command through :data:`COMMAND` like every other.

    Args:
        subparsers: The object returned by ``parser.add_subparsers()``.

    Returns:
        The ``train`` parser.
    """
    return COMMAND.add_parser(subparsers)


def add_arguments(p_train: argparse.ArgumentParser) -> None:
    """Add one nested sub-command per training method to the ``train`` parser."""
    # One sub-command per registered method (vgloc.registry.TRAINING_METHODS), with its help.
    from vgloc.training.methods import get_method, method_names

    names = method_names()
    methods = p_train.add_subparsers(
        dest="method", metavar="METHOD", required=True, help=f"training method: {', '.join(names)}"
    )
    for method in names:
        entry = get_method(method)
        short, long = entry.help, entry.description
        p = methods.add_parser(
            method,
            help=short,
            description=f"{short}. {long} Any value can be changed "
            "with --config or --set; see vgloc.config for every key and its source.",
        )
        g = p.add_argument_group("configuration")
        add_option(
            g,
            "--dataset",
            type=Path,
            default=None,
            help="dataset root with images/{train,val}/... (data.root)",
        )
        g.add_argument(
            "--model",
            default=None,
            help="model spec, e.g. resnet18+gem+fc512, or a published model's name to start from (model.spec)",
        )
        g.add_argument(
            "--checkpoint",
            default=None,
            help="starting weights: a checkpoint, or a local copy of --model NAME's published file (model.weights)",
        )
        g.add_argument(
            "--config", type=Path, default=None, help="YAML file with config sections (data:, optim: ...)"
        )
        g.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override one config key, e.g. --set optim.lr=1e-4 --set data.image_size=96,128 (repeatable)",
        )
        g.add_argument("--epochs", type=positive_int, default=None, help="maximum epochs (schedule.epochs)")
        g.add_argument(
            "--lr", type=float, default=None, help="learning rate of the descriptor network (optim.lr)"
        )
        g.add_argument(
            "--batch-size", type=positive_int, default=None, help=f"global batch size ({method}.batch_size)"
        )
        add_option(
            g,
            "--image-size",
            metavar="H,W",
            default=None,
            help="training image size H,W, e.g. 480,640 (data.image_size)",
        )
        g.add_argument(
            "--precision",
            type=_precision,
            default=None,
            help="auto (default: bf16 autocast where the CPU/GPU has native bf16, fp16 on older GPUs, else fp32), "
            "fp32, bf16 autocast (CPU or CUDA) or fp16 autocast with loss scaling (CUDA)",
        )
        g.add_argument(
            "--workers", type=int, default=None, help="DataLoader worker processes (runtime.num_workers)"
        )
        g.add_argument(
            "--no-progress", action="store_true", help="hide progress bars (runtime.progress=false)"
        )
        g.add_argument(
            "--resume",
            type=Path,
            default=None,
            help="continue a run: its folder (last.pt is used) or a checkpoint file; the run's saved config is used",
        )
        g.add_argument(
            "--print-config",
            action="store_true",
            help="print the resolved configuration as YAML and exit without training",
        )
        add_runtime_options(p)
        # None marks "not given", so that the config file or the resumed run decides; the
        # shared options' own defaults (cpu, 0) would otherwise always override them.
        p.set_defaults(device=None, seed=None)
        for action in p._actions:
            if action.dest == "device":
                action.help = "torch device: auto, cpu, cuda, cuda:1 ... (default: runtime.device, auto)"
            elif action.dest == "seed":
                action.help = "seed of initialisation, sampling and augmentation (default: runtime.seed, 0)"
            elif action.dest == "run_dir":
                action.help = (
                    "run folder (default: the resumed run's folder, else runs/<time>-train-<method>)"
                )
        # The train command chooses its run folder itself (a resumed run continues in its own).
        p.set_defaults(func=cmd_train, writes_results=False)
    # Cross-view training (issue 15) is not a TRAINING_METHODS entry (two branches, fixed
    # steps, no retrieval validation): the same options and run as `vgloc crossview train`.
    from vgloc.cli.crossview import add_train_arguments

    add_train_arguments(
        methods.add_parser(
            "crossview",
            help="street-view / aerial-tile network (same as `vgloc crossview train`; docs/crossview.md)",
        )
    )


def build_train_config(args: argparse.Namespace) -> Any:
    """Resolve the :class:`~vgloc.config.TrainConfig` of parsed ``vgloc train`` arguments.

    Args:
        args: Parsed arguments.

    Returns:
        The validated config.
    """
    from vgloc.config import ConfigError, resolve_config
    from vgloc.training.checkpoint import load_training_checkpoint

    shorthands: list[str] = []

    def add(key: str, value: Any) -> None:
        if value is not None:
            shorthands.append(f"{key}={value}")

    add("data.root", args.dataset)
    add("model.spec", args.model)
    add("model.weights", args.checkpoint)
    add("schedule.epochs", args.epochs)
    add("optim.lr", args.lr)
    add(f"{args.method}.batch_size", args.batch_size)
    add("data.image_size", args.image_size)
    add("runtime.precision", args.precision)
    add("runtime.num_workers", args.workers)
    add("runtime.device", args.device)
    add("runtime.seed", args.seed)
    if args.no_progress:
        shorthands.append("runtime.progress=false")
    base = None
    if args.resume is not None:
        base = load_training_checkpoint(args.resume)["config"]
        if base.get("method") != args.method:
            raise ConfigError(
                f"{args.resume} is a {base.get('method')!r} run: resume it with `vgloc train {base.get('method')} "
                f"--resume {args.resume}`"
            )
    return resolve_config(args.method, args.config, [*shorthands, *args.overrides], base=base)


def cmd_train(args: argparse.Namespace) -> int:
    """Run ``vgloc train METHOD`` (called by the CLI's ``main``).

    Args:
        args: Parsed arguments.

    Returns:
        The exit status (0).
    """
    import yaml

    from vgloc.training import train

    cfg = build_train_config(args)
    if args.print_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    if int(os.environ.get("RANK", "0")) > 0:
        # Under torchrun every process would print the same lines: other ranks keep warnings only.
        for h in logging.getLogger("vgloc").handlers:
            h.setLevel(logging.WARNING)
    result = train(cfg, run_dir=args.run_dir, resume=args.resume)
    if int(os.environ.get("RANK", "0")) > 0:
        return 0
    print(f"run folder: {result.run_dir}")
    if result.best_model is not None:
        cfg = result.config or cfg  # as trained: settings may have adapted to the data
        size = ",".join(str(v) for v in cfg.val_image_size)
        print(
            f"best {cfg.schedule.select_metric} {result.best_metric:.2f} at epoch {result.best_epoch}"
            f"{' (stopped early)' if result.stopped_early else ''}"
            f"{' (stopped by schedule.max_minutes)' if result.stopped_by_time else ''}: {result.best_model}"
        )
        print(
            f"evaluate: vgloc eval --dataset {cfg.data.root} --split test --model {cfg.model.spec} "
            f"--checkpoint {result.best_model} --image-size {size}"
        )
    return 0


COMMAND = register(
    Command(
        name="train",
        help="train a descriptor model (one sub-command per training method)",
        description="Train a global-descriptor model on a dataset in the field's layout "
        "(images/{train,val}/{database,queries}). The run folder gets config.yaml, info.log, "
        "debug.log, steps.csv, metrics.csv/json, last.pt, best.pt and best_model.pt (usable with "
        "`vgloc index build / locate / eval --checkpoint`).",
        add_arguments=add_arguments,
        run=cmd_train,
        # The train command chooses its run folder itself (a resumed run continues in its own).
        writes_results=False,
    )
)
