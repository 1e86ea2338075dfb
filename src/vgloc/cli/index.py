"""``vgloc index build|add``: describe a geotagged image collection into a search index, or add to one."""

from __future__ import annotations

import argparse
from pathlib import Path

from vgloc.cli.command import Command, register
from vgloc.cli.options import (
    add_extraction_options,
    add_model_options,
    add_runtime_options,
    extraction_options,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``vgloc index ACTION``: one nested sub-command per action (``build``, ``add``)."""
    actions = p.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    b = actions.add_parser(
        "build",
        help="describe a geotagged image collection and write a FAISS index",
        description="Describe every image of DIR (a folder of @UTM_east@UTM_north@...@.jpg files, a "
        "folder of photos with EXIF GPS, or a CSV/Parquet manifest with path,lat,lon[,heading]) "
        "and write an index directory (FAISS index, descriptors, coordinates, metadata).",
    )
    b.add_argument("--images", type=Path, required=True, help="image folder or CSV/Parquet manifest")
    b.add_argument("--out", type=Path, required=True, help="index directory to write (atomically)")
    b.add_argument(
        "--factory",
        default="auto",
        help="FAISS factory string: auto (exact Flat up to 100,000 images, a compact IVF-PQ index with "
        "re-ranking above), Flat, IVF4096,PQ32, HNSW32, ... (default: auto)",
    )
    b.add_argument("--search-params", default=None, help="default FAISS search parameters, e.g. nprobe=16")
    b.add_argument(
        "--fp16-descriptors",
        action="store_true",
        help="store descriptors as float16 (half the disk)",
    )
    b.add_argument("--no-validate", action="store_true", help="skip opening every image up front")
    add_model_options(b)
    add_extraction_options(b)
    add_runtime_options(b)
    b.set_defaults(func=run_build, writes_results=True)
    a = actions.add_parser(
        "add",
        help="describe the images not yet in an index and append them",
        description="Describe the images of DIR (folder or CSV/Parquet manifest) that the index does not "
        "hold yet (same resolved path) with the index's own describer and image size, and append them: "
        "the index directory is rewritten as a new folder renamed over the old one.",
    )
    a.add_argument("--index", type=Path, required=True, help="index directory to extend")
    a.add_argument("--images", type=Path, required=True, help="image folder or CSV/Parquet manifest")
    a.add_argument("--no-validate", action="store_true", help="skip opening every new image up front")
    add_model_options(a, required=False)
    add_extraction_options(a)
    add_runtime_options(a)
    a.set_defaults(func=run_add, writes_results=True)


def run_build(args: argparse.Namespace) -> int:
    """Build the index with :func:`vgloc.api.build_index`."""
    from vgloc.api import build_index

    index = build_index(
        args.images,
        args.model,
        args.out,
        checkpoint=args.checkpoint,
        pretrained=args.pretrained,
        factory=args.factory,
        search_params=args.search_params,
        options=extraction_options(args),
        descriptor_dtype="float16" if args.fp16_descriptors else "float32",
        validate=not args.no_validate,
        seed=args.seed,
    )
    print(
        f"indexed {len(index.images)} images -> {args.out} "
        f"({index.metadata.model_spec}, {index.metadata.faiss_factory})"
    )
    return 0


def run_add(args: argparse.Namespace) -> int:
    """Append new images with :func:`vgloc.localizer.add_to_index`."""
    from vgloc.localizer import add_to_index

    index, added = add_to_index(
        args.index,
        args.images,
        model=args.model,
        checkpoint=args.checkpoint,
        options=extraction_options(args),
        validate=not args.no_validate,
    )
    print(f"added {added} images -> {args.index} (now {len(index.images)}, {index.metadata.faiss_factory})")
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen action (argparse already routes each action to its function)."""
    actions = {"build": run_build, "add": run_add}
    return actions[args.index_command](args)


COMMAND = register(
    Command(
        name="index",
        help="build search indexes of geotagged images",
        add_arguments=add_arguments,
        run=run,
        # The index itself is the result; `build` still gets a run folder for its log.
        writes_results=True,
    )
)
