"""Read geotagged image collections in the layouts users already have.

Three layouts are detected automatically by :func:`load_image_set`:

* **@UTM names** (the field's benchmark format): a folder of files named
  ``@UTM_east@UTM_north@zone_num@zone_letter@lat@lon@pano_id@tile_num@heading@...@.jpg``;
  only the first two fields are required.
* **Manifest**: a ``.csv`` or ``.parquet`` file with columns ``path, lat, lon`` and
  optionally ``heading`` (``latitude``/``longitude``/``lng`` are accepted too,
  case-insensitively); relative paths are relative to the manifest's folder.
* **EXIF GPS**: a folder of photos carrying GPSLatitude/GPSLongitude in EXIF.

The benchmark tree ``<root>/images/{train,val,test}/{database,queries,queries_*}/``
is read by :func:`load_split`.

Every loader checks all files before failing and raises one :class:`DataError`
listing every bad file or row, so a dataset is fixed in one pass.

Coordinates of one set always share one :class:`~vgloc.geo.MetricFrame`. Rules
for @UTM names (``frame`` is the ``frame`` argument):

1. A file's zone is its zone fields; a file without a zone but with lat/lon is in
   the standard zone of its lat/lon. Missing lat/lon is derived from UTM + zone.
   The hemisphere comes from the zone letter, else from the latitude's sign.
2. Without ``frame``: if every file gives the same zone, that zone is the frame and
   the files' UTM values are kept exactly (so published ground truth is reproduced).
   If zones differ, every file must carry lat/lon; the frame is then chosen with
   :meth:`MetricFrame.for_points` and files from other zones are re-projected from
   their lat/lon. If zones differ and some file lacks lat/lon, loading is refused.
3. If no file gives a zone or lat/lon (``@east@north@`` only), the set has
   ``frame=None`` and NaN lat/lon: metric distances work, GPS output does not.
   Mixing such files with zoned ones is refused.
4. With ``frame``: zoneless files are taken to be in ``frame``; files in other zones
   are re-projected into it.
5. A file giving both UTM and lat/lon must agree to within
   :data:`UTM_LATLON_TOLERANCE_M` (this catches swapped fields and wrong zones).
"""

from __future__ import annotations

import csv
import functools
import importlib
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vgloc.data.exif import ExifGPS, read_exif_gps
from vgloc.data.records import GeoImageSet
from vgloc.data.validation import (
    DataError,
    check_image,
    format_problems,
    parallel_map,
    raise_problems,
)
from vgloc.data.vgnames import VGName, VGNameError, is_vg_name, parse_vg_name
from vgloc.geo import GeoError, MetricFrame, zone_of

logger = logging.getLogger(__name__)

#: Image files read in every layout (compared case-insensitively).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: Read when Pillow has a plugin for them (pillow-heif for HEIC/HEIF; AVIF is built in
#: to recent Pillow); otherwise reported as unsupported.
PLUGIN_EXTENSIONS: tuple[str, ...] = (".heic", ".heif", ".avif")
#: Image formats that are not read; a folder holding them is refused rather than
#: silently loading only part of it.
UNSUPPORTED_IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".gif", ".jfif", ".jpe", ".jp2", ".j2k", ".jxl", ".ico", ".ppm", ".pgm", ".pbm",
    ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf", ".raw",
)  # fmt: skip
MANIFEST_EXTENSIONS: tuple[str, ...] = (".csv", ".parquet")

#: Largest accepted disagreement between a file's UTM fields and its lat/lon fields.
#: Generous enough for lat/lon written with 3 decimals (< 80 m), far below the
#: error of a wrong zone (hundreds of km) or swapped fields.
UTM_LATLON_TOLERANCE_M = 100.0

_ZONE_LETTERS = "CDEFGHJKLMNPQRSTUVWX"
# The UTM projection (and the utm package) covers latitudes 80 S to 84 N.
_MIN_LAT, _MAX_LAT = -80.0, 84.0

# Leading bytes of image formats, for files whose extension hides what they are.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)


# ----------------------------------------------------------------------------- scanning


@dataclass
class _Scan:
    """The image files of a folder and the problems seen while listing it."""

    root: Path
    images: list[Path] = field(default_factory=list)  # absolute, sorted by relative path
    problems: list[str] = field(default_factory=list)
    ignored: int = 0
    manifests: list[str] = field(default_factory=list)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


@functools.lru_cache(maxsize=1)
def _register_optional_plugins() -> None:
    """Register pillow-heif's opener when it is installed (done once, only when needed)."""
    try:
        module: Any = importlib.import_module("pillow_heif")
    except ImportError:
        return
    module.register_heif_opener()


def _pillow_reads(ext: str) -> bool:
    """True when Pillow can open files with extension ``ext`` (plugins included)."""
    if ext in PLUGIN_EXTENSIONS:
        _register_optional_plugins()
    Image.init()
    return ext in Image.registered_extensions()


def _sniff(path: Path) -> str | None:
    """The image format a file's first bytes announce, or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return None
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return None


def _walk(root: Path, recursive: bool) -> list[Path]:
    """Files (and broken links) under ``root``; hidden files and folders (``.name``) are skipped."""
    if not recursive:
        return [
            p
            for p in root.iterdir()
            if not p.name.startswith(".") and (p.is_file() or (p.is_symlink() and not p.exists()))
        ]
    out: list[Path] = []
    seen_dirs: set[tuple[int, int]] = set()
    # Symlinked folders are followed (datasets are often assembled from links);
    # the (device, inode) set stops link cycles.
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        base = Path(dirpath)
        for name in filenames:
            if not name.startswith("."):
                p = base / name
                # Broken links are kept so that a missing image is reported, not skipped.
                if p.is_file() or (p.is_symlink() and not p.exists()):
                    out.append(p)
    return out


def _scan_folder(root: Path, recursive: bool) -> _Scan:
    """List the image files of ``root`` (absolute, sorted by relative path)."""
    scan = _Scan(root=root)
    for path in _walk(root, recursive):
        ext = path.suffix.lower()
        rel = path.relative_to(root).as_posix()
        if not path.exists():
            if ext in IMAGE_EXTENSIONS + PLUGIN_EXTENSIONS:
                scan.problems.append(f"{rel}: broken symbolic link (to {os.readlink(path)})")
            else:
                scan.ignored += 1
        elif ext in IMAGE_EXTENSIONS:
            scan.images.append(path)
        elif ext in PLUGIN_EXTENSIONS:
            if _pillow_reads(ext):
                scan.images.append(path)
            else:
                hint = "pip install pillow-heif" if ext in (".heic", ".heif") else "a newer Pillow"
                scan.problems.append(f"{rel}: {ext} images need a Pillow plugin ({hint})")
        elif ext in UNSUPPORTED_IMAGE_EXTENSIONS:
            scan.problems.append(
                f"{rel}: {ext} images are not supported; convert to one of "
                f"{', '.join(IMAGE_EXTENSIONS)} or move the file out of the folder"
            )
        elif ext in MANIFEST_EXTENSIONS:
            scan.manifests.append(rel)
            scan.ignored += 1
        elif (fmt := _sniff(path)) is not None:
            # An image under a wrong extension would silently go missing from the set.
            scan.problems.append(
                f"{rel}: looks like a {fmt} image but its extension {ext or '(none)'!r} is not "
                f"an image extension; rename it (e.g. to .jpg/.png) or move it out of the folder"
            )
        else:
            scan.ignored += 1
    scan.images.sort(key=scan.rel)
    scan.problems.sort()
    return scan


def _duplicate_problems(paths: Sequence[Path], labels: Sequence[str]) -> list[tuple[int, str]]:
    """(index, problem) for paths that name the same file (literally or through symlinks)."""
    first: dict[str, int] = {}
    problems = []
    for i, p in enumerate(paths):
        key = os.path.normcase(os.path.realpath(p))
        if key in first:
            problems.append((i, f"{labels[i]}: same file as {labels[first[key]]} (duplicate path)"))
        else:
            first[key] = i
    return problems


# ----------------------------------------------------------------------------- @UTM names


def _hemisphere(name: VGName) -> bool | None:
    """True for northern, False for southern, None when neither letter nor lat tells."""
    if name.zone_letter:
        return name.zone_letter >= "N"
    if math.isfinite(name.lat):
        return name.lat >= 0
    return None


def _vg_file_problems(rel: str, name: VGName) -> list[str]:
    """Checks of one parsed name that need no other file."""
    problems = []
    if name.zone_letter and (len(name.zone_letter) != 1 or name.zone_letter not in _ZONE_LETTERS):
        problems.append(f"{rel}: zone letter {name.zone_letter!r} is not a UTM band (C..X)")
    has_lat, has_lon = math.isfinite(name.lat), math.isfinite(name.lon)
    if has_lat != has_lon:
        problems.append(f"{rel}: lat and lon must be given together (got lat={name.lat}, lon={name.lon})")
    if has_lat and not _MIN_LAT <= name.lat <= _MAX_LAT:
        problems.append(f"{rel}: lat {name.lat} outside [{_MIN_LAT}, {_MAX_LAT}] (the UTM range)")
    if has_lon and not -180 <= name.lon <= 180:
        problems.append(f"{rel}: lon {name.lon} outside [-180, 180]")
    return problems


def _load_vg_names(scan: _Scan, frame: MetricFrame | None, name: str) -> tuple[GeoImageSet | None, list[str]]:
    """Parse a folder of ``@UTM_east@UTM_north@...`` files (rules in the module docstring)."""
    problems: list[str] = []
    parsed: list[VGName] = []
    rels = [scan.rel(p) for p in scan.images]
    for rel, path in zip(rels, scan.images, strict=True):
        try:
            vg = parse_vg_name(path)
        except VGNameError as exc:
            problems.append(f"{rel}: {str(exc).removeprefix(path.name + ': ')}")
            continue
        file_problems = _vg_file_problems(rel, vg)
        problems.extend(file_problems)
        parsed.append(vg)
    if problems:
        return None, problems

    n = len(parsed)
    east_north = np.array([[v.utm_east, v.utm_north] for v in parsed], dtype=np.float64).reshape(n, 2)
    latlon_given = np.array([[v.lat, v.lon] for v in parsed], dtype=np.float64).reshape(n, 2)
    heading = np.array([v.heading for v in parsed], dtype=np.float64)
    has_latlon = np.isfinite(latlon_given[:, 0])

    # Each file's own frame: its zone fields, else the standard zone of its lat/lon.
    own: list[MetricFrame | None] = []
    for rel, v, known in zip(rels, parsed, has_latlon, strict=True):
        number = v.zone_number
        if number is None and known:
            number = zone_of(v.lat, v.lon)[0]
        northern = _hemisphere(v)
        if number is None:
            own.append(None)
        elif northern is None:
            if frame is not None and frame.zone_number == number:
                own.append(frame)  # the caller's frame settles the hemisphere
            else:
                problems.append(
                    f"{rel}: zone {number} without a zone letter or lat/lon, so the hemisphere "
                    "is unknown; add the letter (e.g. 33U) or pass frame=MetricFrame(...)"
                )
                own.append(None)
        else:
            own.append(MetricFrame(zone_number=number, northern=northern))
    if problems:
        return None, problems

    # Files giving both UTM and lat/lon must agree (a wrong zone is off by hundreds of km).
    for f in {f for f in own if f is not None}:
        idx = np.array([i for i, g in enumerate(own) if g == f and has_latlon[i]], dtype=np.int64)
        if idx.size == 0:
            continue
        err = np.linalg.norm(f.to_utm(latlon_given[idx, 0], latlon_given[idx, 1]) - east_north[idx], axis=1)
        for i, e in zip(idx, err, strict=True):
            if e > UTM_LATLON_TOLERANCE_M:
                problems.append(
                    f"{rels[i]}: UTM ({east_north[i, 0]:.2f}, {east_north[i, 1]:.2f}) in zone "
                    f"{f.zone_number}{'N' if f.northern else 'S'} is {e / 1000:.3f} km from its lat/lon "
                    f"({latlon_given[i, 0]}, {latlon_given[i, 1]}); the fields disagree"
                )
    if problems:
        return None, problems

    zoneless = [i for i, f in enumerate(own) if f is None]
    target = frame
    if target is None:
        zones = Counter(f for f in own if f is not None)
        if not zones:
            # Only @east@north@: metric coordinates in an unknown zone.
            return GeoImageSet(
                paths=list(scan.images),
                utm=east_north,
                latlon=np.full((n, 2), np.nan),
                heading=heading,
                frame=None,
                name=name,
            ), []
        if zoneless:
            examples = ", ".join(rels[i] for i in zoneless[:3])
            return None, [
                f"{len(zoneless)} of {n} files give neither a UTM zone nor lat/lon (e.g. {examples}) "
                f"while the others do; add the zone fields, or pass frame=MetricFrame(...) to "
                "say which zone the zoneless files are in"
            ]
        if len(zones) == 1:
            target = next(iter(zones))
        elif np.all(has_latlon):
            try:
                target = MetricFrame.for_points(latlon_given[:, 0], latlon_given[:, 1], what=name)
            except GeoError as exc:
                return None, [str(exc)]
        else:
            listed = ", ".join(
                f"{z.zone_number}{'N' if z.northern else 'S'}: {c} files"
                for z, c in sorted(zones.items(), key=lambda zc: (zc[0].zone_number, zc[0].northern))
            )
            missing = int(np.sum(~has_latlon))
            return None, [
                f"files lie in different UTM zones ({listed}) and {missing} of them have no "
                "lat/lon to place them in one metric frame; add the lat/lon fields or pass "
                "frame=MetricFrame(...)"
            ]

    assert target is not None  # every branch above without a frame has returned or set one
    utm_out = east_north.copy()
    latlon_out = latlon_given.copy()
    for own_frame in set(own):
        idx = np.array([i for i, g in enumerate(own) if g == own_frame], dtype=np.int64)
        if own_frame is None:
            # Zoneless files are taken to be in the caller's frame.
            lat, lon = target.to_latlon(east_north[idx])
            latlon_out[idx] = np.stack([lat, lon], 1)
            continue
        derive = idx[~has_latlon[idx]]
        if derive.size:
            lat, lon = own_frame.to_latlon(east_north[derive])
            latlon_out[derive] = np.stack([lat, lon], 1)
        if own_frame != target:
            try:
                utm_out[idx] = target.to_utm(latlon_out[idx, 0], latlon_out[idx, 1])
            except (GeoError, ValueError) as exc:
                problems.append(f"cannot re-project zone {own_frame.zone_number} files into {target}: {exc}")
    if problems:
        return None, problems
    return GeoImageSet(
        paths=list(scan.images), utm=utm_out, latlon=latlon_out, heading=heading, frame=target, name=name
    ), []


# ----------------------------------------------------------------------------- EXIF GPS


def _read_exif_task(
    validate: bool, skip_missing: bool
) -> Callable[[Path], tuple[ExifGPS | None, str | None]]:
    """A per-file task: read GPS, then (optionally) decode the image; returns (gps, problem)."""

    def task(path: Path) -> tuple[ExifGPS | None, str | None]:
        try:
            gps = read_exif_gps(path)
        except (OSError, ValueError) as exc:
            # Not an image at all: the decode check would say the same thing.
            return None, check_image(path) or str(exc).removeprefix(f"{path}: ")
        if gps is None and skip_missing:
            return None, None  # skipped: no point decoding an image that is not used
        reason: str | None = check_image(path) if validate else None
        if gps is None:
            no_gps = "no GPS position in EXIF (no GPSLatitude/GPSLongitude, or (0, 0))"
            reason = no_gps if reason is None else f"{no_gps}; also {reason}"
        return gps, reason

    return task


def _load_exif(
    scan: _Scan,
    frame: MetricFrame | None,
    name: str,
    *,
    validate: bool,
    skip_missing_gps: bool,
    workers: int,
    progress: bool,
) -> tuple[GeoImageSet | None, list[str]]:
    """Read a folder of photos with EXIF GPS (validating them in the same pass)."""
    results = parallel_map(
        _read_exif_task(validate, skip_missing_gps),
        scan.images,
        workers=workers,
        progress=progress,
        desc="reading EXIF GPS",
    )
    problems = []
    keep: list[int] = []
    skipped: list[str] = []
    for i, (gps, reason) in enumerate(results):
        rel = scan.rel(scan.images[i])
        if reason is not None:
            problems.append(f"{rel}: {reason}")
        elif gps is None:
            skipped.append(rel)
        else:
            keep.append(i)
    if skipped:
        logger.warning(
            "%s: skipped %d of %d images without GPS in EXIF (e.g. %s)",
            scan.root,
            len(skipped),
            len(scan.images),
            ", ".join(skipped[:5]),
        )
    if problems:
        return None, problems
    if not keep:
        return None, [f"none of the {len(scan.images)} images has a GPS position in EXIF"]
    gps_list = [results[i][0] for i in keep]
    lat = np.array([g.lat for g in gps_list if g is not None], dtype=np.float64)
    lon = np.array([g.lon for g in gps_list if g is not None], dtype=np.float64)
    heading = np.array([g.heading for g in gps_list if g is not None], dtype=np.float64)
    try:
        return GeoImageSet.from_latlon(
            [scan.images[i] for i in keep], lat, lon, heading=heading, frame=frame, name=name
        ), []
    except GeoError as exc:
        return None, [str(exc)]


# ----------------------------------------------------------------------------- manifests

_COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "path": ("path",),
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


def _load_manifest(
    path: Path, frame: MetricFrame | None, name: str
) -> tuple[GeoImageSet | None, list[str], list[Path]]:
    """Read a CSV/Parquet manifest; returns (set, problems, the image paths to validate)."""
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
        if math.isfinite(lat[i]) and not _MIN_LAT <= lat[i] <= _MAX_LAT:
            problems.append((i, f"{label(i)}: lat {lat[i]} outside [{_MIN_LAT}, {_MAX_LAT}] (UTM range)"))
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
    problems += [(ok_rows[k], msg) for k, msg in _duplicate_problems(paths, labels)]
    if problems:
        # In row order: each check above ran over all rows.
        return None, [msg for _, msg in sorted(problems, key=lambda rm: rm[0])], paths
    # Deterministic order independent of the manifest's row order: sorted by relative path.
    rel = [os.path.relpath(p, base) for p in paths]
    order = sorted(range(len(paths)), key=lambda k: Path(rel[k]).as_posix())
    rows = np.array([ok_rows[k] for k in order], dtype=np.int64)
    try:
        image_set = GeoImageSet.from_latlon(
            [paths[k] for k in order], lat[rows], lon[rows], heading=heading[rows], frame=frame, name=name
        )
    except GeoError as exc:
        return None, [str(exc)], paths
    return image_set, [], paths


# ----------------------------------------------------------------------------- entry points


def detect_layout(source: str | os.PathLike[str], *, recursive: bool = True) -> str:
    """Which layout :func:`load_image_set` would read at ``source``.

    Args:
        source: a folder or a manifest file.
        recursive: look into sub-folders.

    Returns:
        ``"manifest"``, ``"vgnames"`` (``@UTM_east@UTM_north@...`` file names) or ``"exif"``.

    Raises:
        FileNotFoundError: when ``source`` does not exist.
        DataError: for an empty folder, mixed layouts, or an unsupported file.
    """
    return _resolve(Path(os.path.abspath(source)), recursive)[0]


def _resolve(src: Path, recursive: bool) -> tuple[str, _Scan | None]:
    """(layout, folder scan or None for a manifest)."""
    if src.is_file():
        if src.suffix.lower() in MANIFEST_EXTENSIONS:
            return "manifest", None
        raise DataError(
            f"{src}: not a folder or a manifest ({', '.join(MANIFEST_EXTENSIONS)}); pass the folder "
            "holding the images or a manifest with columns path, lat, lon"
        )
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such folder or manifest file")
    scan = _scan_folder(src, recursive)
    return _layout_of(scan), scan


def _layout_of(scan: _Scan) -> str:
    """Decide between @UTM names and EXIF for a scanned folder."""
    if not scan.images:
        hints = []
        if scan.manifests:
            hints.append(
                f"it holds manifest(s) {', '.join(scan.manifests[:3])}: pass the manifest file itself"
            )
        if scan.ignored:
            hints.append(f"{scan.ignored} non-image files were ignored")
        if scan.problems:
            raise DataError(
                format_problems(
                    f"{scan.root}: no usable images, {len(scan.problems)} problems", scan.problems
                ),
                scan.problems,
            )
        raise DataError(
            f"{scan.root}: no images (extensions {', '.join(IMAGE_EXTENSIONS)})"
            + (f"; {'; '.join(hints)}" if hints else "")
        )
    named = [p for p in scan.images if is_vg_name(p.name)]
    if named and len(named) != len(scan.images):
        others = [scan.rel(p) for p in scan.images if not is_vg_name(p.name)]
        problems = [
            f"{len(named)} files are named @UTM_east@UTM_north@...@ (e.g. {scan.rel(named[0])}) and "
            f"{len(others)} are not (e.g. {', '.join(others[:3])}); one folder must use one layout: "
            "rename the others or move them out",
            *scan.problems,
        ]
        raise DataError(format_problems(f"{scan.root}: mixed layouts", problems), problems)
    return "vgnames" if named else "exif"


def load_image_set(
    source: str | os.PathLike[str],
    *,
    frame: MetricFrame | None = None,
    validate: bool = True,
    name: str | None = None,
    recursive: bool = True,
    skip_missing_gps: bool = False,
    workers: int = 2,
    progress: bool = True,
) -> GeoImageSet:
    """Load a geotagged image collection, detecting its layout.

    The layout is a manifest when ``source`` is a ``.csv``/``.parquet`` file; for a
    folder it is @UTM names when every image is named ``@east@north@...``, else EXIF
    GPS (see the module docstring for the zone rules). Hidden files and folders are
    skipped; other non-image files are ignored unless their content or extension says
    they are images in a format that is not read. Images are ordered by path relative
    to the folder (manifest: to the manifest's folder).

    Args:
        source: a folder of images or a manifest file.
        frame: the metric frame for ``utm``; None chooses one (see the zone rules).
        validate: open and decode every image (catches corrupt and truncated files).
        name: a label for messages; defaults to the folder name or manifest stem.
        recursive: include images in sub-folders.
        skip_missing_gps: EXIF layout only: skip images without GPS (a warning is
            logged with their count) instead of listing them as errors.
        workers: threads for reading EXIF and validating images.
        progress: show progress bars.

    Returns:
        The :class:`GeoImageSet` with absolute ``paths`` and N-row ``utm`` (N, 2),
        ``latlon`` (N, 2) and ``heading`` (N,) arrays.

    Raises:
        FileNotFoundError: when ``source`` does not exist.
        DataError: listing every bad file or row (the first 20 in the message, all in
            ``.problems``).
    """
    src = Path(os.path.abspath(source))
    layout, scan = _resolve(src, recursive)
    label = name if name is not None else (src.stem if layout == "manifest" else src.name)
    if layout == "manifest":
        image_set, problems, to_check = _load_manifest(src, frame, label)
        if validate and to_check:
            bad = parallel_map(
                check_image, to_check, workers=workers, progress=progress, desc="validating images"
            )
            problems += [
                f"{os.path.relpath(p, src.parent)}: {r}" for p, r in zip(to_check, bad, strict=True) if r
            ]
        raise_problems(f"manifest {src}", problems)
        assert image_set is not None  # problems would have been raised
        return image_set

    assert scan is not None
    problems = list(scan.problems)
    if layout == "vgnames":
        image_set, found = _load_vg_names(scan, frame, label)
        problems += found
        if validate:
            bad = parallel_map(
                check_image, scan.images, workers=workers, progress=progress, desc="validating images"
            )
            problems += [f"{scan.rel(p)}: {r}" for p, r in zip(scan.images, bad, strict=True) if r]
    else:
        image_set, found = _load_exif(
            scan,
            frame,
            label,
            validate=validate,
            skip_missing_gps=skip_missing_gps,
            workers=workers,
            progress=progress,
        )
        problems += found
    problems += [msg for _, msg in _duplicate_problems(scan.images, [scan.rel(p) for p in scan.images])]
    raise_problems(f"{src} (layout: {layout})", sorted(problems))
    assert image_set is not None
    return image_set


# ----------------------------------------------------------------------------- benchmark layout


@dataclass
class BenchmarkSplit:
    """One split of a benchmark tree: a database and one or more query sets.

    Attributes:
        database: the database images.
        queries: query sets keyed by folder name (``"queries"``, ``"queries_night"``, ...),
            all in the database's metric frame.
        root: the folder holding the split folders (``<root>/images``).
        split: the split name (``"train"``, ``"val"``, ``"test"``).
    """

    database: GeoImageSet
    queries: dict[str, GeoImageSet]
    root: Path
    split: str

    @property
    def domains(self) -> list[str]:
        """The query folder names, sorted."""
        return sorted(self.queries)


def _listing(folder: Path) -> str:
    """The sub-folder names of ``folder`` for error messages."""
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    return ", ".join(names) if names else "(no sub-folders)"


def _split_dir(root: str | os.PathLike[str], split: str) -> tuple[Path, Path]:
    """(images root, split folder) for ``root`` = ``<root>``, ``<root>/images`` or the split itself."""
    base = Path(os.path.abspath(root))
    if not base.is_dir():
        raise FileNotFoundError(f"{base}: no such dataset folder")
    if base.name == split and (base / "database").is_dir():
        return base.parent, base
    if (base / "images").is_dir():
        base = base / "images"
    split_dir = base / split
    if not split_dir.is_dir():
        raise DataError(f"{base}: no split folder {split!r}; found: {_listing(base)}")
    return base, split_dir


def find_query_domains(root: str | os.PathLike[str], split: str) -> list[str]:
    """The query folders (``queries``, ``queries_*``) of one split, sorted.

    Args:
        root: ``<root>`` or ``<root>/images`` of a benchmark tree.
        split: ``"train"``, ``"val"`` or ``"test"``.

    Returns:
        Folder names such as ``["queries", "queries_night"]``.
    """
    _, split_dir = _split_dir(root, split)
    return sorted(
        p.name
        for p in split_dir.iterdir()
        if p.is_dir() and (p.name == "queries" or p.name.startswith("queries_"))
    )


def load_split(
    root: str | os.PathLike[str],
    split: str,
    *,
    frame: MetricFrame | None = None,
    validate: bool = True,
    recursive: bool = True,
    skip_missing_gps: bool = False,
    workers: int = 2,
    progress: bool = True,
) -> BenchmarkSplit:
    """Load ``<root>/images/<split>/{database,queries,queries_*}``.

    The database is loaded first; every query set is loaded in the database's frame
    (so distances between queries and database are meaningful). Problems from all
    folders are reported together.

    Args:
        root: ``<root>``, ``<root>/images`` or the split folder itself.
        split: ``"train"``, ``"val"`` or ``"test"``.
        frame: force the metric frame (default: chosen from the database).
        validate, recursive, skip_missing_gps, workers, progress: as in :func:`load_image_set`.

    Returns:
        The :class:`BenchmarkSplit`.

    Raises:
        FileNotFoundError: when ``root`` does not exist.
        DataError: when the split, database or query folders are missing (listing what
            exists) or any file is bad (all folders' problems in one error).
    """
    base, split_dir = _split_dir(root, split)
    if not (split_dir / "database").is_dir():
        raise DataError(f"{split_dir}: no 'database' folder; found: {_listing(split_dir)}")
    domains = find_query_domains(base, split)
    if not domains:
        raise DataError(
            f"{split_dir}: no query folder ('queries' or 'queries_<domain>'); found: {_listing(split_dir)}"
        )
    kw: dict[str, Any] = dict(
        validate=validate,
        recursive=recursive,
        skip_missing_gps=skip_missing_gps,
        workers=workers,
        progress=progress,
    )
    problems: list[str] = []
    database: GeoImageSet | None = None
    try:
        database = load_image_set(split_dir / "database", frame=frame, name=f"{split}/database", **kw)
    except DataError as exc:
        problems += [f"[database] {p}" for p in (exc.problems or [str(exc)])]
    queries: dict[str, GeoImageSet] = {}
    for domain in domains:
        label = f"{split}/{domain}"
        try:
            q = load_image_set(
                split_dir / domain,
                frame=database.frame if database is not None else frame,
                name=label,
                **kw,
            )
            if database is not None:
                queries[domain] = q.in_frame(database.frame)
        except DataError as exc:
            problems += [f"[{domain}] {p}" for p in (exc.problems or [str(exc)])]
        except ValueError as exc:  # in_frame: no lat/lon to move between frames
            problems.append(f"[{domain}] {exc}")
    raise_problems(f"{split_dir}", problems)
    assert database is not None
    return BenchmarkSplit(database=database, queries=queries, root=base, split=split)
