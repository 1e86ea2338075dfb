"""The manifest layout: a ``.csv`` or ``.parquet`` table with columns ``path, lat, lon[, heading]``.

Column names are matched case-insensitively (``latitude``/``longitude``/``lng``
are accepted too); relative paths are relative to the manifest's folder. Every
row is checked before failing, and problems name the row (and the CSV line).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vgloc.data.records import GeoImageSet
from vgloc.data.scanning import duplicate_problems
from vgloc.data.validation import DataError, raise_problems
from vgloc.geo import GeoError, MetricFrame

# ----------------------------------------------------------------------------- manifests

_COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    # img_id / image_id: the MP-16 / Im2GPS(3k) lists GeoCLIP and GeoEstimation use (IMG_ID,LAT,LON).
    "path": ("path", "img_id", "image_id"),
    "lat": ("lat", "latitude"),
    "lon": ("lon", "lng", "long", "longitude"),
    "heading": ("heading",),
}


def _read_manifest_table(path: Path) -> Any:
    """The manifest as a pyarrow Table; every CSV column is read as text.

    Text keeps the raw values so that errors can quote them and so that path-like
    values such as ``001`` are not turned into numbers.
    """
    import pyarrow as pa

    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        import pyarrow.csv as pacsv

        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), None)
        if not header:
            raise DataError(f"{path}: empty manifest (no header line)")
        return pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in header}, strings_can_be_null=False
            ),
        )
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read manifest: {exc}") from exc


def _manifest_columns(path: Path, names: list[str]) -> dict[str, str]:
    """Map canonical names (path, lat, lon, heading) to the table's column names."""
    lowered: dict[str, list[str]] = {}
    for n in names:
        lowered.setdefault(n.strip().lower(), []).append(n)
    found: dict[str, str] = {}
    problems = []
    for canonical, aliases in _COLUMN_ALIASES.items():
        hits = [orig for a in aliases for orig in lowered.get(a, [])]
        if len(hits) > 1:
            problems.append(f"column {canonical!r} is given more than once ({', '.join(hits)})")
        elif hits:
            found[canonical] = hits[0]
        elif canonical != "heading":
            problems.append(
                f"missing column {canonical!r} (accepted names: {', '.join(aliases)}); "
                f"found columns: {', '.join(names) or '(none)'}"
            )
    raise_problems(f"manifest {path} (columns)", problems)
    return found


def _float_column(
    column: Any, label: Callable[[int], str], what: str, required: bool
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """A numeric column as float64 (NaN where empty) plus one (row, problem) per bad value."""
    import pyarrow as pa

    problems: list[tuple[int, str]] = []
    not_numbers: set[int] = set()
    raw: list[Any] = column.to_pylist()
    if (
        pa.types.is_integer(column.type)
        or pa.types.is_floating(column.type)
        or pa.types.is_decimal(column.type)
    ):
        values = np.array([np.nan if v is None else float(v) for v in raw], dtype=np.float64)
    else:
        values = np.full(len(raw), np.nan)
        for i, v in enumerate(raw):
            text = "" if v is None else str(v).strip()
            if text == "":
                continue
            try:
                values[i] = float(text)
            except ValueError:
                problems.append((i, f"{label(i)}: {what} {v!r} is not a number"))
                not_numbers.add(i)
    for i, v in enumerate(values):
        if i in not_numbers:
            continue
        if math.isinf(v) or (math.isnan(v) and required):
            empty = raw[i] is None or str(raw[i]).strip() == ""
            # A literal "nan" is no more a position than an empty cell, but say what was there.
            detail = "is empty" if empty else f"{raw[i]!r} is not a finite number"
            problems.append((i, f"{label(i)}: {what} {detail}"))
    return values, problems


def load_manifest(
    path: Path, frame: MetricFrame | None, name: str, *, strict: bool = True
) -> tuple[GeoImageSet | None, list[str], list[Path]]:
    """Read a CSV/Parquet manifest; returns (set, problems, the image paths to validate).

    Rows may lie anywhere on Earth (poles included): rows that fit one UTM zone get
    that frame, others make a world-wide set (:meth:`GeoImageSet.from_latlon`).

    Args:
        path: the manifest.
        frame: the frame asked for, or None to choose one.
        name: a label for messages.
        strict: with ``frame``, refuse rows that do not fit it; False treats ``frame``
            as a preference.
    """
    table = _read_manifest_table(path)
    cols = _manifest_columns(path, list(table.column_names))
    is_csv = path.suffix.lower() == ".csv"

    def label(i: int) -> str:
        # Data rows count from 1; for CSV the editor line (header = line 1) is given too.
        return f"row {i + 1} (line {i + 2})" if is_csv else f"row {i + 1}"

    n = table.num_rows
    if n == 0:
        raise DataError(f"{path}: the manifest has no rows")
    problems: list[tuple[int, str]] = []
    lat, p = _float_column(table.column(cols["lat"]), label, "lat", True)
    problems += p
    lon, p = _float_column(table.column(cols["lon"]), label, "lon", True)
    problems += p
    heading = np.full(n, np.nan)
    if "heading" in cols:
        heading, p = _float_column(table.column(cols["heading"]), label, "heading", False)
        problems += p
    for i in range(n):
        if math.isfinite(lat[i]) and not -90 <= lat[i] <= 90:
            problems.append((i, f"{label(i)}: lat {lat[i]} outside [-90, 90]"))
        if math.isfinite(lon[i]) and not -180 <= lon[i] <= 180:
            problems.append((i, f"{label(i)}: lon {lon[i]} outside [-180, 180]"))

    base = path.parent
    raw_paths = table.column(cols["path"]).to_pylist()
    paths: list[Path] = []
    labels: list[str] = []
    ok_rows: list[int] = []
    for i, raw in enumerate(raw_paths):
        text = "" if raw is None else str(raw).strip()
        if not text:
            problems.append((i, f"{label(i)}: path is empty"))
            continue
        full = Path(os.path.abspath(base / text))
        if not full.is_file():
            problems.append((i, f"{label(i)}: file {text!r} not found (looked for {full})"))
            continue
        paths.append(full)
        labels.append(f"{label(i)} ({text!r})")
        ok_rows.append(i)
    problems += [(ok_rows[k], msg) for k, msg in duplicate_problems(paths, labels)]
    if problems:
        # In row order: each check above ran over all rows.
        return None, [msg for _, msg in sorted(problems, key=lambda rm: rm[0])], paths
    # Deterministic order independent of the manifest's row order: sorted by relative path.
    rel = [os.path.relpath(p, base) for p in paths]
    order = sorted(range(len(paths)), key=lambda k: Path(rel[k]).as_posix())
    rows = np.array([ok_rows[k] for k in order], dtype=np.int64)
    try:
        image_set = GeoImageSet.from_latlon(
            [paths[k] for k in order],
            lat[rows],
            lon[rows],
            heading=heading[rows],
            frame=frame,
            name=name,
            strict=strict,
        )
    except GeoError as exc:
        return None, [str(exc)], paths
    return image_set, [], paths
