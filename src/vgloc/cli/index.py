"""``vgloc index build|add|merge``: describe a geotagged image collection into a search index, add to one,
or merge the shards of a distributed build (``torchrun ... -m vgloc.cli index build --shard-dir DIR``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from vgloc.cli.command import Command, register
from vgloc.cli.options import (
    add_extraction_options,
    add_model_options,
    add_runtime_options,
    extraction_options,
)

if TYPE_CHECKING:
    from vgloc.scale_out import RankInfo


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``vgloc index ACTION``: one nested sub-command per action (``build``, ``add``, ``merge``)."""
    actions = p.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    b = actions.add_parser(
        "build",
        help="describe a geotagged image collection and write a FAISS index",
        description="Describe every image of DIR (a folder of @UTM_east@UTM_north@...@.jpg files, a "
        "folder of photos with EXIF GPS, or a CSV/Parquet manifest with path,lat,lon[,heading]) "
        "and write an index directory (FAISS index, descriptors, coordinates, metadata).",
    )
    b.add_argument("--images", type=Path, required=True, help="image folder or CSV/Parquet manifest")
    b.add_argument(
        "--out",
        type=Path,
        default=None,
        help="index directory to write (atomically); with --shard-dir, rank 0 merges the shards into it",
    )
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
    _add_pca_option(b)
    b.add_argument(
        "--shard-dir",
        type=Path,
        default=None,
        help="distributed build: this process describes its shard of the database (torchrun's RANK of "
        "WORLD_SIZE, or --shard) and writes it here; merge with --out or `vgloc index merge`",
    )
    b.add_argument(
        "--shard",
        default=None,
        metavar="K/N",
        help="describe shard K of N (0-based) without torchrun, e.g. one job of a job array",
    )
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
    m = actions.add_parser(
        "merge",
        help="merge the shards of a distributed build into one index",
        description="Check the shards that `vgloc index build --shard-dir DIR` wrote (all present, same model, "
        "weights, image size and database) and write one index, identical to a single-process build.",
    )
    m.add_argument("--shard-dir", type=Path, required=True, help="directory holding the shards")
    m.add_argument("--out", type=Path, required=True, help="index directory to write (atomically)")
    m.add_argument("--factory", default="auto", help="FAISS factory string or auto (default: auto)")
    m.add_argument("--search-params", default=None, help="default FAISS search parameters, e.g. nprobe=16")
    m.add_argument("--fp16-descriptors", action="store_true", help="store descriptors as float16")
    _add_pca_option(m)
    add_runtime_options(m)  # --seed seeds index training (k-means), as in `index build`
    m.set_defaults(func=run_merge, writes_results=True)


def _add_pca_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pca",
        type=int,
        default=None,
        metavar="DIM",
        help="compact descriptors to DIM dimensions by PCA-whitening fitted on the database (stored in the "
        "index and applied to queries automatically); must be below the descriptor dimension",
    )
    p.add_argument(
        "--pca-no-whiten",
        action="store_true",
        help="with --pca: project without whitening (better when there are few images per dimension)",
    )


def run_build(args: argparse.Namespace) -> int:
    """Build the index with :func:`vgloc.api.build_index` (or this rank's shard, see :mod:`vgloc.scale_out`)."""
    from vgloc.api import build_index
    from vgloc.scale_out import rank_info

    if args.shard_dir is not None:
        return _run_shard(args, rank_info(args.shard))
    if args.out is None:
        raise SystemExit("vgloc index build: --out is required (or --shard-dir for a distributed build)")
    if args.shard is not None:
        raise SystemExit("vgloc index build: --shard needs --shard-dir")
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
        pca=args.pca,
        pca_whiten=not args.pca_no_whiten,
    )
    print(
        f"indexed {len(index.images)} images -> {args.out} "
        f"({index.metadata.model_spec}, {index.metadata.faiss_factory})"
    )
    return 0


def _run_shard(args: argparse.Namespace, rank: RankInfo) -> int:
    """Describe this rank's shard; with ``--out``, wait for every rank and merge on rank 0."""
    from vgloc.scale_out import build_shard, wait_for_ranks

    shard = build_shard(
        args.images,
        args.model,
        args.shard_dir,
        rank=rank,
        checkpoint=args.checkpoint,
        pretrained=args.pretrained,
        factory=args.factory,
        options=extraction_options(args),
        validate=not args.no_validate,
        seed=args.seed,
        pca=args.pca,
    )
    print(f"rank {rank.rank} of {rank.world_size}: wrote {shard}")
    if args.out is None:
        return 0
    wait_for_ranks(rank)
    if rank.rank == 0:
        if rank.world_size > 1 and not rank.distributed:
            print(
                f"shard {rank.rank} written; merge once every shard is: vgloc index merge --shard-dir {args.shard_dir}"
            )
            return 0
        _merge(args)
    return 0


def run_merge(args: argparse.Namespace) -> int:
    """Merge the shards of ``--shard-dir`` with :func:`vgloc.index.shards.merge_shards`."""
    _merge(args)
    return 0


def _merge(args: argparse.Namespace) -> None:
    from vgloc.index.shards import merge_shards

    index = merge_shards(
        args.shard_dir,
        args.out,
        factory=args.factory,
        search_params=args.search_params,
        descriptor_dtype="float16" if args.fp16_descriptors else "float32",
        pca=args.pca,
        seed=args.seed,
        pca_whiten=not args.pca_no_whiten,
    )
    print(
        f"merged {len(index.images)} images -> {args.out} "
        f"({index.metadata.model_spec}, {index.metadata.faiss_factory})"
    )


def run_add(args: argparse.Namespace) -> int:
    """Append new images with :func:`vgloc.localizer.add_to_index`."""
    from vgloc.indexing import add_to_index

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
    actions = {"build": run_build, "add": run_add, "merge": run_merge}
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
