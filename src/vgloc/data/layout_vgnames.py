"""The @UTM names layout: a folder of ``@UTM_east@UTM_north@zone@letter@lat@lon@...@`` files.

Only the first two fields are required. Rules for the coordinates (``frame`` is
the ``frame`` argument of :func:`vgloc.data.load_image_set`):

1. A file's zone is its zone fields; a file without a zone but with lat/lon is in
   the standard zone of its lat/lon; with ``frame``, a file giving neither is taken
   to be in ``frame``. Missing lat/lon is derived from UTM + zone. The hemisphere
   comes from the zone letter, else from the latitude's sign.
2. A file giving both UTM and lat/lon must agree to within
   :data:`UTM_LATLON_TOLERANCE_M` (this catches swapped fields and wrong zones).
3. Without ``frame``: if every file gives the same zone, that zone is the frame and
   the files' UTM values are kept exactly (so published ground truth is reproduced).
   If zones differ, the frame is chosen from every file's lat/lon with
   :func:`vgloc.geo.choose_frame` and files from other zones are re-projected from
   their lat/lon. When no single zone holds them all (several continents), the set
   is world-wide: ``frame=None``, ``utm`` NaN, lat/lon kept.
4. If no file gives a zone or lat/lon (``@east@north@`` only), the set has
   ``frame=None`` and NaN lat/lon: metric distances work, GPS output does not.
   Mixing such files with zoned ones is refused (unless ``frame`` says their zone).
5. With ``frame``: files in other zones are re-projected into it; files too far
   from it (:meth:`vgloc.geo.MetricFrame.fits`) are refused, or, for query sets
   loaded by :func:`vgloc.data.load_split`, the set falls back to rule 3.
"""

from __future__ import annotations

import math

import numpy as np

from vgloc.data.records import GeoImageSet
from vgloc.data.scanning import Scan
from vgloc.data.vgnames import VGName, VGNameError, parse_vg_name
from vgloc.geo import UTM_MAX_LAT, UTM_MIN_LAT, GeoError, MetricFrame, choose_frame, zone_of

#: Largest accepted disagreement between a file's UTM fields and its lat/lon fields.
#: Generous enough for lat/lon written with 3 decimals (< 80 m), far below the
#: error of a wrong zone (hundreds of km) or swapped fields.
UTM_LATLON_TOLERANCE_M = 100.0

_ZONE_LETTERS = "CDEFGHJKLMNPQRSTUVWX"
# @UTM names carry UTM, which (like the utm package) covers latitudes 80 S to 84 N.
_MIN_LAT, _MAX_LAT = UTM_MIN_LAT, UTM_MAX_LAT


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


def load_vg_names(
    scan: Scan, frame: MetricFrame | None, name: str, *, strict: bool = True
) -> tuple[GeoImageSet | None, list[str]]:
    """Parse a folder of ``@UTM_east@UTM_north@...`` files (rules in the module docstring).

    Args:
        scan: the folder's image files.
        frame: the frame asked for, or None to choose one.
        name: a label for messages.
        strict: with ``frame``, refuse files that do not fit it; False falls back to
            choosing a frame (or none) as if ``frame`` were only a preference.

    Returns:
        ``(set, [])``, or ``(None, problems)``.
    """
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

    if frame is not None:
        # Zoneless files are taken to be in the caller's frame (rule 1).
        own = [frame if f is None else f for f in own]
    zoneless = [i for i, f in enumerate(own) if f is None]
    if len(zoneless) == n:
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

    # Every file has its own frame now: complete the lat/lon it does not give.
    latlon = latlon_given.copy()
    for own_frame in set(own):
        assert own_frame is not None
        derive = np.array(
            [i for i, g in enumerate(own) if g == own_frame and not has_latlon[i]], dtype=np.int64
        )
        if derive.size:
            lat, lon = own_frame.to_latlon(east_north[derive])
            latlon[derive] = np.stack([lat, lon], 1)

    target = _target_frame(own, latlon, frame, strict, name)
    if isinstance(target, str):
        return None, [target]
    if target is None:
        # No single zone holds the files: a world-wide set, positions in lat/lon only.
        return GeoImageSet(
            paths=list(scan.images),
            utm=np.full((n, 2), np.nan),
            latlon=latlon,
            heading=heading,
            frame=None,
            name=name,
        ), []
    utm_out = east_north.copy()
    # Files of the target zone keep their UTM fields exactly (published ground truth);
    # the others are re-projected from their lat/lon.
    moved = np.array([i for i, g in enumerate(own) if g != target], dtype=np.int64)
    if moved.size:
        utm_out[moved] = target.to_utm(latlon[moved, 0], latlon[moved, 1])
    return GeoImageSet(
        paths=list(scan.images), utm=utm_out, latlon=latlon, heading=heading, frame=target, name=name
    ), []


def _target_frame(
    own: list[MetricFrame | None], latlon: np.ndarray, frame: MetricFrame | None, strict: bool, name: str
) -> MetricFrame | str | None:
    """The frame of the whole set (rules 3 and 5): a frame, None (world-wide) or a problem text."""
    if frame is not None:
        moved = np.array([g != frame for g in own])
        if frame.fits(latlon[moved, 0], latlon[moved, 1]):
            return frame
        if strict:
            far = int(moved.sum())
            return (
                f"{far} files lie in other UTM zones too far from zone {frame.zone_number} (the frame "
                "asked for) for planar distances in it; leave the frame out to let vgloc choose one"
            )
    zones = set(own)
    if len(zones) == 1:
        return next(iter(zones))
    try:
        return choose_frame(latlon[:, 0], latlon[:, 1], what=name)
    except GeoError as exc:
        return str(exc)
