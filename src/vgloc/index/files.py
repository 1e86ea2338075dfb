"""The files of a geo-index directory: checksums, fsync, and the Parquet image table.

``images.parquet`` holds one row per image in id order (``path``, ``lat``, ``lon``,
``utm_east``, ``utm_north``, ``heading`` and ``extra.<name>`` columns); reading it
back gives the exact :class:`~vgloc.data.records.GeoImageSet` that was saved.
pyarrow is imported inside the functions that need it: it is slow to import.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vgloc.data.records import GeoImageSet
from vgloc.index.metadata import FORMAT_NAME, METADATA_FILE, IndexCorruptError, IndexMetadata

if TYPE_CHECKING:
    import pyarrow as pa

_BASE_COLUMNS = ("path", "lat", "lon", "utm_east", "utm_north", "heading")
_EXTRA_PREFIX = "extra."
_HASH_CHUNK = 1 << 20


def _is_index_dir(path: Path) -> bool:
    """Whether ``path`` holds a ``metadata.json`` naming the vgloc index format."""
    try:
        return json.loads((path / METADATA_FILE).read_text(encoding="utf-8")).get("format") == FORMAT_NAME
    except (OSError, ValueError, AttributeError):
        return False


def _flush(f: Any) -> None:
    """Flush ``f`` to disk so the rename never publishes data still in the page cache only."""
    f.flush()
    os.fsync(f.fileno())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _file_record(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of a written file (fsynced first)."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
    return {"bytes": path.stat().st_size, "sha256": _sha256(path)}


def _verify_file(path: Path, record: dict[str, Any], checksum: bool) -> None:
    """Raise IndexCorruptError naming ``path`` when it is missing, truncated or altered."""
    if not path.is_file():
        raise IndexCorruptError(f"{path} is missing from the index directory")
    size = path.stat().st_size
    if size != record.get("bytes"):
        raise IndexCorruptError(
            f"{path}: {size} bytes, {METADATA_FILE} recorded {record.get('bytes')} "
            "(truncated or replaced file)"
        )
    if checksum and _sha256(path) != record.get("sha256"):
        raise IndexCorruptError(f"{path}: SHA-256 does not match {METADATA_FILE} (corrupted file)")


def _describe_extra_columns(images: GeoImageSet) -> dict[str, dict[str, Any]]:
    """dtype and per-row shape of each ``images.extra`` array; refuses what Parquet cannot hold."""
    out: dict[str, dict[str, Any]] = {}
    for key, values in images.extra.items():
        arr = np.asarray(values)
        if arr.ndim < 1 or len(arr) != len(images):
            raise ValueError(f"images.extra[{key!r}] has shape {arr.shape}; expected {len(images)} rows")
        if arr.dtype.kind not in "biufUSMm?O":
            raise ValueError(f"images.extra[{key!r}]: dtype {arr.dtype} cannot be stored")
        if arr.ndim > 1 and arr.dtype.kind not in "biuf?":
            raise ValueError(f"images.extra[{key!r}]: only numeric arrays can have more than one dimension")
        out[str(key)] = {"dtype": arr.dtype.str, "shape": list(arr.shape[1:])}
    return out


def _write_images(path: Path, images: GeoImageSet, extra_columns: dict[str, dict[str, Any]]) -> None:
    """Write the image table as Parquet (pyarrow is imported here: it is slow to import)."""
    import pyarrow.parquet as pq

    pq.write_table(_images_to_table(images, extra_columns), str(path))


def _images_to_table(images: GeoImageSet, extra_columns: dict[str, dict[str, Any]]) -> pa.Table:
    """The image set as an Arrow table (one row per image, in id order)."""
    import pyarrow as pa

    columns: dict[str, pa.Array] = {
        "path": pa.array([str(p) for p in images.paths], type=pa.string()),
        "lat": pa.array(images.latlon[:, 0], type=pa.float64()),
        "lon": pa.array(images.latlon[:, 1], type=pa.float64()),
        "utm_east": pa.array(images.utm[:, 0], type=pa.float64()),
        "utm_north": pa.array(images.utm[:, 1], type=pa.float64()),
        "heading": pa.array(images.heading, type=pa.float64()),
    }
    for key in extra_columns:
        arr = np.asarray(images.extra[key])
        try:
            if arr.ndim == 1:
                col = pa.array(arr.tolist() if arr.dtype.kind in "US" else arr)
            else:
                flat = np.ascontiguousarray(arr).reshape(-1)
                col = pa.FixedSizeListArray.from_arrays(pa.array(flat), int(np.prod(arr.shape[1:])))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
            raise ValueError(f"images.extra[{key!r}] cannot be stored in Parquet: {e}") from e
        columns[_EXTRA_PREFIX + key] = col
    return pa.table(columns)


def _read_images(path: Path, meta: IndexMetadata) -> GeoImageSet:
    """Read ``images.parquet`` back into the exact GeoImageSet that was saved."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(str(path))
    except (pa.ArrowException, OSError) as e:
        raise IndexCorruptError(f"{path}: cannot read the image table ({e})") from e
    wanted = [*_BASE_COLUMNS, *(_EXTRA_PREFIX + k for k in meta.extra_columns)]
    missing = [c for c in wanted if c not in table.column_names]
    if missing:
        raise IndexCorruptError(f"{path}: missing columns {missing}")
    if table.num_rows != meta.num_images:
        raise IndexCorruptError(f"{path}: {table.num_rows} images, {METADATA_FILE} says {meta.num_images}")

    def floats(name: str) -> np.ndarray:
        col = table.column(name)
        if not pa.types.is_floating(col.type):
            raise IndexCorruptError(f"{path}: column {name!r} has type {col.type}, expected float64")
        return col.to_numpy().astype(np.float64)

    n = table.num_rows
    extra: dict[str, np.ndarray] = {}
    for key, info in meta.extra_columns.items():
        col = table.column(_EXTRA_PREFIX + key).combine_chunks()
        shape = tuple(int(s) for s in info.get("shape", []))
        try:
            if shape:
                values = col.flatten().to_numpy(zero_copy_only=False).reshape((n, *shape))
            else:
                values = col.to_numpy(zero_copy_only=False)
            extra[key] = values.astype(np.dtype(info["dtype"]), copy=False)
        except (KeyError, TypeError, ValueError) as e:
            raise IndexCorruptError(f"{path}: cannot restore extra column {key!r} ({e})") from e
    paths = table.column("path").to_pylist()
    if any(not isinstance(p, str) for p in paths):
        raise IndexCorruptError(f"{path}: column 'path' has missing or non-text values")
    return GeoImageSet(
        paths=[Path(p) for p in paths],
        utm=np.stack([floats("utm_east"), floats("utm_north")], 1).reshape(n, 2),
        latlon=np.stack([floats("lat"), floats("lon")], 1).reshape(n, 2),
        heading=floats("heading"),
        frame=meta.metric_frame,
        name=meta.image_set_name,
        extra=extra,
    )
