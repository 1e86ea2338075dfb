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

Positions: latitude/longitude are the source of truth. A set that fits one UTM
zone gets planar metres in one :class:`~vgloc.geo.MetricFrame` (the zone rules of
@UTM names are in :mod:`vgloc.data.layout_vgnames`); a set that fits no zone
(photos on several continents, or near the poles) loads as a *world-wide* set with
``frame=None`` and NaN ``utm`` (see :mod:`vgloc.data.records`), and distances are
then measured on the sphere (:func:`vgloc.geo.positives`).

The loaders live in :mod:`vgloc.data.layout_vgnames`, :mod:`vgloc.data.layout_manifest`
and here (EXIF); folder listing is in :mod:`vgloc.data.scanning`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vgloc.data.exif import ExifGPS, read_exif_gps
from vgloc.data.layout_manifest import load_manifest
from vgloc.data.layout_vgnames import UTM_LATLON_TOLERANCE_M, load_vg_names
from vgloc.data.records import GeoImageSet, align_frames
from vgloc.data.scanning import (
    IMAGE_EXTENSIONS,
    MANIFEST_EXTENSIONS,
    PLUGIN_EXTENSIONS,
    UNSUPPORTED_IMAGE_EXTENSIONS,
    Scan,
    duplicate_problems,
    scan_folder,
)
from vgloc.data.validation import (
    DataError,
    check_image,
    format_problems,
    parallel_map,
    raise_problems,
)
from vgloc.data.vgnames import is_vg_name
from vgloc.geo import GeoError, MetricFrame

__all__ = [
    "IMAGE_EXTENSIONS",
    "MANIFEST_EXTENSIONS",
    "PLUGIN_EXTENSIONS",
    "UNSUPPORTED_IMAGE_EXTENSIONS",
    "UTM_LATLON_TOLERANCE_M",
    "BenchmarkSplit",
    "detect_layout",
    "find_query_domains",
    "load_image_set",
    "load_split",
]

logger = logging.getLogger(__name__)


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
    scan: Scan,
    frame: MetricFrame | None,
    name: str,
    *,
    strict: bool,
    validate: bool,
    skip_missing_gps: bool,
    workers: int,
    progress: bool,
) -> tuple[GeoImageSet | None, list[str]]:
    """Read a folder of photos with EXIF GPS (validating them in the same pass).

    Photos may lie anywhere on Earth: one UTM frame when they fit one zone, else a
    world-wide set (``strict``: see :meth:`GeoImageSet.from_latlon`).
    """
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
            [scan.images[i] for i in keep], lat, lon, heading=heading, frame=frame, name=name, strict=strict
        ), []
    except GeoError as exc:
        return None, [str(exc)]


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


def _resolve(src: Path, recursive: bool) -> tuple[str, Scan | None]:
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
    scan = scan_folder(src, recursive)
    return _layout_of(scan), scan


def _layout_of(scan: Scan) -> str:
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
        frame: the metric frame for ``utm``; None chooses one: the UTM zone of the data
            when one fits them all, else none (a world-wide set: ``frame=None``, NaN
            ``utm``, distances on the sphere). Images that do not fit a given frame
            are refused.
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
    return _load(
        source,
        frame=frame,
        strict=True,
        validate=validate,
        name=name,
        recursive=recursive,
        skip_missing_gps=skip_missing_gps,
        workers=workers,
        progress=progress,
    )


def _load(
    source: str | os.PathLike[str],
    *,
    frame: MetricFrame | None,
    strict: bool,
    validate: bool,
    name: str | None,
    recursive: bool,
    skip_missing_gps: bool,
    workers: int,
    progress: bool,
) -> GeoImageSet:
    """:func:`load_image_set`; ``strict=False`` makes ``frame`` a preference (for query sets)."""
    src = Path(os.path.abspath(source))
    layout, scan = _resolve(src, recursive)
    label = name if name is not None else (src.stem if layout == "manifest" else src.name)
    if layout == "manifest":
        image_set, problems, to_check = load_manifest(src, frame, label, strict=strict)
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
        image_set, found = load_vg_names(scan, frame, label, strict=strict)
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
            strict=strict,
            validate=validate,
            skip_missing_gps=skip_missing_gps,
            workers=workers,
            progress=progress,
        )
        problems += found
    problems += [msg for _, msg in duplicate_problems(scan.images, [scan.rel(p) for p in scan.images])]
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
            all in the database's metric frame (all world-wide, ``frame=None``, when
            the split fits no single UTM zone).
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
    (so distances between queries and database are meaningful). When some query set
    does not fit that frame (queries on another continent), every set of the split
    becomes world-wide (``frame=None``, NaN ``utm``; :func:`vgloc.data.records.align_frames`)
    and distances are measured on the sphere. Problems from all folders are
    reported together.

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
        try:
            # The database's frame is only a preference for its queries: zoneless files
            # are taken to be in it and other zones are re-projected into it, but a
            # query set that does not fit it falls back to its own choice, and
            # align_frames below settles one state for every set. A frame the caller
            # forces stays strict.
            queries[domain] = _load(
                split_dir / domain,
                frame=database.frame if database is not None else frame,
                strict=frame is not None or database is None,
                name=f"{split}/{domain}",
                **kw,
            )
        except DataError as exc:
            problems += [f"[{domain}] {p}" for p in (exc.problems or [str(exc)])]
    raise_problems(f"{split_dir}", problems)
    assert database is not None
    try:
        database, aligned = align_frames(database, list(queries.values()))
    except ValueError as exc:  # metric-only sets next to sets with lat/lon
        raise DataError(f"{split_dir}: {exc}", [str(exc)]) from exc
    return BenchmarkSplit(
        database=database, queries=dict(zip(queries, aligned, strict=True)), root=base, split=split
    )
