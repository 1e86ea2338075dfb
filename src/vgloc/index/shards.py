"""Index shards: a database described in pieces (processes, machines), merged into one index.

A distributed build (``torchrun ... vgloc index build --shard-dir DIR``, see
:mod:`vgloc.scale_out`) splits the database by position into contiguous blocks
(:func:`shard_bounds`); rank ``k`` of ``n`` describes block ``k`` and writes::

    DIR/shard-0000k-of-0000n/
      descriptors.npy   (M, D) float32 descriptors of the block, in database order
      images.parquet    the block's images (the index's image table format)
      model.pt, ...     the describer's files (random or data-initialised weights)
      shard.json        format + version, shard k of n, rows [start, stop) of N, every
                        path of the block, the SHA-256 of the whole ordered path list,
                        the identity (model spec, dimension, image size, describer and
                        extraction settings, SHA-256 of the describer's files) and the
                        size and SHA-256 of each file

Each shard directory is written to a temporary sibling and renamed into place
(:func:`vgloc.io.atomic_path`), so a rank that fails leaves no shard under the final
name. :func:`merge_shards` refuses a missing, duplicated, corrupted or foreign shard
(another model, image size, describer weights, database or number of shards), then
concatenates the blocks in order and builds one ordinary vgloc index with
:meth:`GeoIndex.build`: the same descriptors and FAISS index as a single-process build.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vgloc.data.records import GeoImageSet
from vgloc.geo import MetricFrame
from vgloc.index.faiss_search import DEFAULT_SEARCH_PARAMS
from vgloc.index.files import (
    _describe_extra_columns,
    _file_record,
    _flush,
    _read_images,
    _sha256,
    _verify_file,
    _write_images,
)
from vgloc.index.metadata import (
    DESCRIPTORS_FILE,
    IMAGES_FILE,
    IndexCorruptError,
    IndexMetadata,
    IndexStoreError,
)
from vgloc.index.store import GeoIndex
from vgloc.io import atomic_path

__all__ = [
    "SHARD_FILE",
    "SHARD_FORMAT",
    "SHARD_VERSION",
    "ShardError",
    "concat_image_sets",
    "content_digest",
    "merge_shards",
    "paths_digest",
    "read_shards",
    "shard_bounds",
    "shard_name",
    "write_shard",
]

logger = logging.getLogger(__name__)

SHARD_FORMAT = "vgloc-index-shard"
SHARD_VERSION = 1
SHARD_FILE = "shard.json"
_NAME_RE = re.compile(r"^shard-(\d{5})-of-(\d{5})$")


class ShardError(IndexStoreError):
    """Shards that cannot be merged: missing, corrupted, or from another build."""


def shard_name(shard: int, num_shards: int) -> str:
    """The directory name of shard ``shard`` of ``num_shards`` (``shard-00001-of-00004``)."""
    return f"shard-{shard:05d}-of-{num_shards:05d}"


def shard_bounds(num_images: int, num_shards: int, align: int = 1) -> list[tuple[int, int]]:
    """Contiguous rows ``[start, stop)`` of each shard: a deterministic split by position.

    Shards hold whole blocks of ``align`` rows (the batch size), as evenly as possible, so
    every batch a rank describes is the very batch a single process would describe: the
    descriptors are bit-identical to a single-process build, whatever the kernels do
    with the batch dimension.

    Args:
        num_images: N.
        num_shards: n >= 1 (shards beyond the number of blocks are empty).
        align: rows per block (>= 1).

    Returns:
        n pairs ``(start, stop)`` covering ``range(N)`` in order.
    """
    if num_shards < 1 or align < 1 or num_images < 0:
        raise ValueError(
            f"need num_shards >= 1, align >= 1, num_images >= 0; got {num_shards}, {align}, {num_images}"
        )
    blocks = -(-num_images // align)
    per, rest = divmod(blocks, num_shards)
    out, start_block = [], 0
    for k in range(num_shards):
        # The extra blocks go to the last shards, which also hold the partial last block.
        nb = per + (1 if k >= num_shards - rest else 0)
        out.append((min(start_block * align, num_images), min((start_block + nb) * align, num_images)))
        start_block += nb
    return out


def content_digest(path: Path) -> str:
    """SHA-256 of a file's content, for a zip archive (``torch.save``) of its members' content.

    ``torch.save`` names the archive's top folder after the file it writes (here a
    temporary name), so two ranks saving the same weights write different bytes; the
    members' names below that folder and their bytes are what must agree.
    """
    import hashlib
    import zipfile

    if not zipfile.is_zipfile(path):
        return _sha256(path)
    h = hashlib.sha256()
    with zipfile.ZipFile(path) as z:
        for name in sorted(z.namelist(), key=lambda n: n.split("/", 1)[-1]):
            h.update(name.split("/", 1)[-1].encode() + b"\0")
            with z.open(name) as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
    return h.hexdigest()


def paths_digest(paths: Sequence[os.PathLike[str] | str]) -> str:
    """SHA-256 of the ordered list of paths: which database, in which order."""
    import hashlib

    h = hashlib.sha256()
    for p in paths:
        h.update(os.fsencode(str(p)) + b"\n")
    return h.hexdigest()


@dataclass
class _Shard:
    root: Path
    info: dict[str, Any]


def write_shard(
    shard_dir: str | os.PathLike[str],
    *,
    shard: int,
    num_shards: int,
    start: int,
    database: GeoImageSet,
    descriptors: np.ndarray,
    identity: Mapping[str, Any],
    files: Mapping[str, Callable[[Path], object]] | None = None,
) -> Path:
    """Write one shard directory atomically (see the module docstring for its layout).

    Args:
        shard_dir: the directory holding every shard (created if needed).
        shard: k (0-based), ``num_shards``: n.
        start: the first database row of this shard.
        database: the whole database (N images, the same on every rank).
        descriptors: (M, D) descriptors of rows ``[start, start + M)``.
        identity: JSON facts that must agree between shards (model spec, descriptor
            dimension, image size, describer and extraction settings).
        files: the describer's files, name -> writer (their SHA-256 joins the identity).

    Returns:
        The shard directory written.
    """
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in [0, {num_shards}), got {shard}")
    desc = np.ascontiguousarray(descriptors, dtype=np.float32)
    if desc.ndim != 2 or not 0 <= start <= start + len(desc) <= len(database):
        raise ValueError(f"descriptors {desc.shape} do not fit rows from {start} of {len(database)} images")
    stop = start + len(desc)
    block = database.subset(np.arange(start, stop))
    final = Path(shard_dir) / shard_name(shard, num_shards)
    with atomic_path(final) as tmp:
        tmp.mkdir()
        records: dict[str, dict[str, Any]] = {}
        with open(tmp / DESCRIPTORS_FILE, "wb") as f:
            np.save(f, desc, allow_pickle=False)
            _flush(f)
        records[DESCRIPTORS_FILE] = _file_record(tmp / DESCRIPTORS_FILE)
        extra_columns = _describe_extra_columns(database)
        _write_images(tmp / IMAGES_FILE, block, extra_columns)
        records[IMAGES_FILE] = _file_record(tmp / IMAGES_FILE)
        for name, writer in (files or {}).items():
            if name in (DESCRIPTORS_FILE, IMAGES_FILE, SHARD_FILE) or "/" in name:
                raise ValueError(f"describer file name {name!r} is reserved or not a plain file name")
            writer(tmp / name)
            records[name] = _file_record(tmp / name)
        info = {
            "format": SHARD_FORMAT,
            "format_version": SHARD_VERSION,
            "shard": shard,
            "num_shards": num_shards,
            "start": start,
            "stop": stop,
            "num_images": len(database),
            "paths_sha256": paths_digest(database.paths),
            "identity": {
                **identity,
                "describer_files": {n: content_digest(tmp / n) for n in (files or {})},
            },
            "image_set": {
                "name": database.name,
                "metric_frame": database.frame.to_dict() if database.frame is not None else None,
                "extra_columns": extra_columns,
            },
            "paths": [str(p) for p in block.paths],
            "files": records,
        }
        with open(tmp / SHARD_FILE, "w", encoding="utf-8") as f:
            f.write(json.dumps(info, indent=1, allow_nan=False) + "\n")
            _flush(f)
    logger.info(
        "wrote shard %d of %d (rows %d-%d of %d) to %s", shard, num_shards, start, stop, len(database), final
    )
    return final


def _read_info(root: Path) -> dict[str, Any]:
    path = root / SHARD_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ShardError(f"{root}: {SHARD_FILE} is missing (not a complete shard)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ShardError(f"{path}: corrupted shard metadata ({e})") from e
    if not isinstance(info, dict) or info.get("format") != SHARD_FORMAT:
        raise ShardError(f"{path}: not a vgloc index shard")
    if info.get("format_version") != SHARD_VERSION:
        raise ShardError(
            f"{path}: shard format version {info.get('format_version')!r}, this vgloc reads {SHARD_VERSION}"
        )
    return info


def read_shards(
    shard_dir: str | os.PathLike[str], *, verify_checksums: bool = True, into: Path | None = None
) -> tuple[np.ndarray, GeoImageSet, dict[str, Any], Path]:
    """Check every shard of ``shard_dir`` and concatenate them in database order.

    Args:
        shard_dir: the directory the ranks wrote their shards to.
        verify_checksums: check every shard file's SHA-256.
        into: concatenate the descriptors into this new ``.npy`` file, memory-mapped
            (one shard in RAM at a time), instead of into RAM.

    Returns:
        ``(descriptors float32 (N, D), images (N), identity, the first shard's directory)``;
        the identity is the JSON every shard agreed on, and the first shard's directory
        holds the describer files to keep with the index.

    Raises:
        ShardError: no shards, shards of different builds (number of shards, identity,
            database), a missing or duplicated shard, rows that do not tile the database,
            or a missing, truncated or corrupted file.
    """
    root = Path(shard_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"no shard directory at {root}")
    found: dict[int, set[int]] = {}
    for d in sorted(root.iterdir()):
        m = _NAME_RE.match(d.name)
        if m and d.is_dir():
            found.setdefault(int(m.group(2)), set()).add(int(m.group(1)))
    if not found:
        raise ShardError(f"{root} holds no shards (shard-KKKKK-of-NNNNN directories)")
    if len(found) > 1:
        raise ShardError(
            f"{root} holds shards of builds with different numbers of shards {sorted(found)}; "
            "empty the directory and rebuild"
        )
    ((n, ks),) = found.items()
    missing = sorted(set(range(n)) - ks)
    if missing:
        raise ShardError(
            f"{root}: shard(s) {missing} of {n} are missing (a rank failed or has not finished); "
            "rerun those ranks, then merge"
        )
    shards = [_Shard(root / shard_name(k, n), _read_info(root / shard_name(k, n))) for k in range(n)]
    first = shards[0].info
    expected_stop = 0
    for sh in shards:
        info = sh.info
        for key in ("num_shards", "num_images", "paths_sha256", "identity"):
            if info.get(key) != first.get(key):
                raise ShardError(
                    f"{sh.root}: {key} differs from {shards[0].root} ({info.get(key)!r} vs {first.get(key)!r}); "
                    "the shards come from different builds (model, weights, image size or database)"
                )
        if info.get("shard") != shards.index(sh) or info.get("num_shards") != n:
            raise ShardError(f"{sh.root}: records shard {info.get('shard')} of {info.get('num_shards')}")
        if info.get("start") != expected_stop or len(info.get("paths", [])) != info["stop"] - info["start"]:
            raise ShardError(
                f"{sh.root}: rows [{info.get('start')}, {info.get('stop')}) do not follow row {expected_stop}"
            )
        expected_stop = info["stop"]
        for name, record in info["files"].items():
            try:
                _verify_file(sh.root / name, record, verify_checksums)
            except IndexCorruptError as e:
                raise ShardError(f"{e} ({SHARD_FILE} of the shard records its size and checksum)") from e
    if expected_stop != first["num_images"]:
        raise ShardError(f"{root}: the shards cover {expected_stop} of {first['num_images']} images")
    all_paths = [p for sh in shards for p in sh.info["paths"]]
    if paths_digest(all_paths) != first["paths_sha256"]:
        raise ShardError(f"{root}: the shards' paths are not the database they were built from")
    sets = []
    ident = first["identity"]
    shape = (int(first["num_images"]), int(ident["descriptor_dim"]))
    if into is not None:
        out: np.ndarray = np.lib.format.open_memmap(into, mode="w+", dtype=np.float32, shape=shape)
    else:
        out = np.empty(shape, np.float32)
    for sh in shards:
        info = sh.info
        m = info["stop"] - info["start"]
        try:
            d = np.load(sh.root / DESCRIPTORS_FILE, allow_pickle=False, mmap_mode="r")
        except (ValueError, OSError, EOFError) as e:
            raise ShardError(f"{sh.root / DESCRIPTORS_FILE}: cannot read descriptors ({e})") from e
        if d.dtype != np.float32 or d.shape != (m, ident["descriptor_dim"]):
            raise ShardError(
                f"{sh.root / DESCRIPTORS_FILE}: {d.dtype} {d.shape}, expected float32 ({m}, {ident['descriptor_dim']})"
            )
        out[info["start"] : info["stop"]] = d
        sets.append(_read_images(sh.root / IMAGES_FILE, _table_meta(info, m)))
    return out, concat_image_sets(sets), ident, shards[0].root


def _table_meta(info: dict[str, Any], num_images: int) -> IndexMetadata:
    """The few metadata fields the image-table reader needs, from a shard's record."""
    s = info["image_set"]
    frame = MetricFrame.from_dict(s["metric_frame"]) if s.get("metric_frame") is not None else None
    return IndexMetadata(
        model_spec=info["identity"]["model_spec"],
        descriptor_dim=int(info["identity"]["descriptor_dim"]),
        faiss_factory="",
        num_images=num_images,
        metric_frame=frame,
        image_set_name=s.get("name", ""),
        extra_columns=s.get("extra_columns", {}),
    )


def concat_image_sets(sets: Sequence[GeoImageSet]) -> GeoImageSet:
    """Image sets in the same frame, one after the other (the first one's name and frame)."""
    if not sets:
        raise ValueError("no image sets to concatenate")
    first = sets[0]
    return GeoImageSet(
        paths=[p for s in sets for p in s.paths],
        utm=np.concatenate([s.utm for s in sets]),
        latlon=np.concatenate([s.latlon for s in sets]),
        heading=np.concatenate([s.heading for s in sets]),
        frame=first.frame,
        name=first.name,
        extra={k: np.concatenate([s.extra[k] for s in sets]) for k in first.extra},
    )


def merge_shards(
    shard_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    factory: str = "auto",
    search_params: str | None = None,
    descriptor_dtype: str = "float32",
    pca: int | None = None,
    seed: int = 0,
    verify_checksums: bool = True,
    pca_whiten: bool = True,
) -> GeoIndex:
    """Merge the shards of ``shard_dir`` into one ordinary vgloc index (see :func:`read_shards`).

    Args:
        shard_dir: the directory the ranks wrote their shards to.
        out: the index directory to write (atomically); None keeps it in memory.
        factory, search_params, descriptor_dtype, pca, seed, pca_whiten: as for
            :func:`vgloc.localizer.build_index`.
        verify_checksums: check every shard file's SHA-256.

    Returns:
        The merged :class:`GeoIndex` (its descriptors and FAISS index are those of a
        single-process build of the same database).
    """
    # With an output directory the descriptors are gathered in a memory-mapped file beside
    # it (same file system), so the merge never holds two copies of the database in RAM.
    spill = None
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        spill = Path(out).parent / f".{Path(out).name}.merge-{os.getpid()}.npy"
    try:
        return _merge(
            shard_dir,
            out,
            spill,
            factory,
            search_params,
            descriptor_dtype,
            (pca, pca_whiten),
            seed,
            verify_checksums,
        )
    finally:
        if spill is not None:
            spill.unlink(missing_ok=True)  # a mapped array stays readable after the unlink


def _merge(
    shard_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None,
    spill: Path | None,
    factory: str,
    search_params: str | None,
    descriptor_dtype: str,
    pca: tuple[int | None, bool],
    seed: int,
    verify_checksums: bool,
) -> GeoIndex:
    import shutil
    from functools import partial

    descriptors, images, ident, first = read_shards(shard_dir, verify_checksums=verify_checksums, into=spill)
    auto = factory.strip().lower() == "auto"
    if not auto and search_params is None:
        # As build_index: an exact index has no search parameters worth storing.
        search_params = "" if factory.strip().lower() == "flat" else DEFAULT_SEARCH_PARAMS
    size = ident.get("image_size")
    match = _NAME_RE.match(first.name)
    num_shards = int(match.group(2)) if match else 1
    index = GeoIndex.build(
        descriptors,
        images,
        model_spec=ident["model_spec"],
        image_size=tuple(size) if size is not None else None,
        factory=factory,
        search_params=search_params,
        descriptor_dtype=descriptor_dtype,
        extra={**ident.get("extra", {}), "merged_from_shards": num_shards},
        seed=seed,
        pca=pca[0],
        pca_whiten=pca[1],
    )
    if out is not None:
        files = {n: partial(shutil.copyfile, first / n) for n in ident.get("describer_files", {})}
        index.save(out, extra_files=files)
        logger.info("merged %d images from %s into %s", len(images), shard_dir, out)
    return index
