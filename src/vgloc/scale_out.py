"""Index building across processes and machines: every rank describes a shard, one step merges.

Launched by ``torchrun`` (which sets ``RANK`` and ``WORLD_SIZE``), each process of
``vgloc index build --shard-dir DIR`` describes its contiguous block of the database
(:func:`vgloc.index.shards.shard_bounds`, aligned to the batch size so descriptors are
bit-identical to one process's) and writes it atomically to ``DIR``
(:func:`vgloc.index.shards.write_shard`). With ``--out`` the ranks then meet at a
barrier (``torch.distributed``, gloo) and rank 0 merges the shards into the index;
``vgloc index merge --shard-dir DIR --out IDX`` does the same later, e.g. after a job
array on machines without a rendezvous (``--shard K/N``). Without ``torchrun`` and
without ``--shard`` there is one shard of one.

Example::

    torchrun --nproc_per_node 4 -m vgloc.cli index build --images db/ --model resnet18+gem \\
        --shard-dir shards/ --out city.idx
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from vgloc.describers import ExtractionOptions
from vgloc.index.shards import shard_bounds, write_shard

__all__ = ["RankInfo", "build_shard", "parse_shard", "rank_info", "wait_for_ranks"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RankInfo:
    """Which shard this process describes.

    Attributes:
        rank: k in [0, world_size).
        world_size: n, the number of shards.
        local_rank: the process's index on its machine (its GPU).
        distributed: launched by torchrun (a rendezvous is available for a barrier).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = False


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 0 <= K < N (the ``--shard`` option)."""
    k_s, sep, n_s = text.partition("/")
    try:
        k, n = int(k_s), int(n_s)
    except ValueError:
        raise ValueError(f"--shard must be K/N (e.g. 0/4), got {text!r}") from None
    if not sep or n < 1 or not 0 <= k < n:
        raise ValueError(f"--shard K/N needs 0 <= K < N, got {text!r}")
    return k, n


def rank_info(shard: str | None = None, env: dict[str, str] | None = None) -> RankInfo:
    """This process's shard: ``--shard K/N`` if given, else torchrun's ``RANK``/``WORLD_SIZE``, else 0/1."""
    env = dict(os.environ if env is None else env)
    if shard is not None:
        k, n = parse_shard(shard)
        return RankInfo(k, n, int(env.get("LOCAL_RANK", 0)), False)
    if "WORLD_SIZE" in env and "RANK" in env:
        n, k = int(env["WORLD_SIZE"]), int(env["RANK"])
        if not 0 <= k < n:
            raise ValueError(f"RANK={k} is not in [0, WORLD_SIZE={n})")
        return RankInfo(k, n, int(env.get("LOCAL_RANK", 0)), n > 1 and "MASTER_ADDR" in env)
    return RankInfo()


def build_shard(
    images: Any,
    model: Any,
    shard_dir: str | os.PathLike[str],
    *,
    rank: RankInfo,
    checkpoint: str | Path | None = None,
    pretrained: bool = False,
    factory: str = "auto",
    options: ExtractionOptions | None = None,
    validate: bool = True,
    seed: int = 0,
    pca: int | None = None,
) -> Path:
    """Describe this rank's block of the database and write it as a shard.

    Every rank loads the whole database (same order), resolves and prepares the describer
    on it with the same seed (so random or data-initialised weights agree), and describes
    only rows :func:`~vgloc.index.shards.shard_bounds` gives it. ``factory`` and ``pca``
    are checked now (before describing) so that the merge cannot fail on them.

    Args:
        images, model, checkpoint, pretrained, options, validate, seed: as for
            :func:`vgloc.localizer.build_index`.
        shard_dir: where the shards go (a shared file system across machines).
        rank: this process's shard (:func:`rank_info`).
        factory, pca: the index the merge will build (checked here).

    Returns:
        The shard directory written.
    """
    from vgloc.indexing import _as_image_set, describe_database

    options = options or ExtractionOptions()
    if rank.world_size > 1 and options.device.startswith("cuda") and ":" not in options.device:
        # One GPU per process on a machine: torchrun's LOCAL_RANK.
        options = dataclasses.replace(options, device=f"cuda:{rank.local_rank}")
    image_set = _as_image_set(images, validate)
    if len(image_set) == 0:
        raise ValueError("no database images to index")
    start, stop = shard_bounds(len(image_set), rank.world_size, options.batch_size)[rank.rank]
    log.info(
        "rank %d of %d describes images %d-%d of %d", rank.rank, rank.world_size, start, stop, len(image_set)
    )
    described = describe_database(
        image_set,
        model,
        checkpoint=checkpoint,
        pretrained=pretrained,
        factory=factory,
        options=options,
        seed=seed,
        pca=pca,
        rows=(start, stop),
    )
    size = described.options.image_size
    identity = {
        "model_spec": described.describer.spec,
        "descriptor_dim": described.describer.descriptor_dim,
        "image_size": list(size) if isinstance(size, (tuple, list)) else None,
        "batch_size": options.batch_size,
        "extra": described.extra,
    }
    return write_shard(
        shard_dir,
        shard=rank.rank,
        num_shards=rank.world_size,
        start=start,
        database=image_set,
        descriptors=described.descriptors,
        identity=identity,
        files=described.state.files,
    )


def wait_for_ranks(rank: RankInfo) -> None:
    """Block until every rank got here (a gloo barrier under torchrun; nothing otherwise).

    A rank that failed makes torchrun stop the others, so the barrier raises rather
    than hangs for long; the merge checks the shards in any case.
    """
    if not rank.distributed:
        return
    import torch.distributed as dist

    own = not dist.is_initialized()
    if own:
        dist.init_process_group("gloo")
    try:
        dist.barrier()
    finally:
        if own:
            dist.destroy_process_group()
