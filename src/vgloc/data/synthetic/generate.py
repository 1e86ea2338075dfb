"""Write a synthetic city in the field's dataset layout, resumable and reproducible.

Layout of ``generate_city(out)``::

    out/
      city.json                 parameters, counts per folder, layout; written LAST (completeness marker)
      images/{train,val,test}/
        database/               street-view cutouts along the streets (conditions "database")
        queries/                day queries (jittered sun, exposure, white balance, clouds)
        queries_night/          the same query poses at night
        queries_fog/            the same query poses in fog (visibility 30-90 m)
        queries_occluded/       the same poses and lighting as queries/, plus cars, pedestrians, poles
        aerial/                 north-up orthographic tiles (roofs, shadows, streets, trees)

Every image is named by :func:`vgloc.data.vgnames.format_vg_name`: UTM east/north in
the city's frame (the UTM zone of the anchor), zone number and letter, lat/lon,
``pano_id`` (``p000123`` database panorama, ``q000045`` query: the same id in every
query folder, ``a000007`` aerial tile), heading (degrees clockwise from grid north),
pitch, camera height, and ``note`` (the query domain, or ``aerial``). Aerial tiles
are named by their centre, heading 0 (north up); their ground extent is in city.json.

Reproducibility: the same seed, size and parameters give byte-identical files
(every random draw comes from a seed sequence keyed by the image, so the order
and the number of worker processes do not matter).

Interruption: a marker file ``.vgloc_synth_incomplete.json`` holds the parameters
while images are written (each atomically); ``city.json`` is written last. A
directory with the marker and the same parameters is resumed; one with other
parameters (or an older generator) is cleared and regenerated; a complete one
with the same parameters is reused.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vgloc._version import __version__
from vgloc.data.synthetic.citymap import DEFAULT_ANCHOR, SIZES, SPLITS, CityMap, CitySize, resolve_size
from vgloc.data.synthetic.render import (
    DEFAULT_FOV_DEG,
    DEFAULT_IMAGE_SIZE,
    Conditions,
    _check_view_args,
    render_aerial,
    render_view,
)
from vgloc.data.synthetic.style import CityStyle
from vgloc.data.vgnames import VGName, format_vg_name
from vgloc.io import atomic_path, write_json_atomic

GENERATOR_VERSION = 1  # bump when the renderer or the layout changes: old datasets get regenerated
JPEG_QUALITY = 90
MARKER = ".vgloc_synth_incomplete.json"
QUERY_FOLDERS: dict[str, str] = {
    "queries": "day",
    "queries_night": "night",
    "queries_fog": "fog",
    "queries_occluded": "occluded",
}
FOLDERS: tuple[str, ...] = ("database", *QUERY_FOLDERS, "aerial")
_DOMAIN_STREAM = {"day": 1, "occluded": 1, "night": 2, "fog": 3}  # day and occluded share lighting

# Image counts per size with the defaults (seed 0; other seeds differ by a few percent).
SIZES_DOC = """\
size     city (m)     database (train/val/test)    queries per domain  aerial  total  time (2 cores)
tiny     790 x 280      228 (108/56/64)              29 (x4 domains)      33     377   ~5 s
small   1190 x 450     1804 (868/476/460)           226 (x4)            184    2892   ~30-60 s
medium  1760 x 790    10176 (5568/2336/2272)        636 (x4)            608   13328   ~2-4 min
large   2380 x 990    22960 (11248/5664/6048)      1147 (x4)           1272   28820   ~5-8 min
"""


def _params(
    size: str | CitySize,
    seed: int,
    anchor: tuple[float, float],
    image_size: tuple[int, int],
    fov_deg: float,
    aerial_size: int,
    aerial_extent_m: float,
    style: CityStyle | None = None,
) -> dict[str, Any]:
    name, sz = resolve_size(size)
    # A style is recorded only when given, so the original city's parameters (and files) are unchanged.
    styled = {} if style is None else {"style": style.to_dict()}
    return styled | {
        "generator_version": GENERATOR_VERSION,
        "size": name,
        "size_params": sz.to_dict(),
        "seed": int(seed),
        "anchor": [float(anchor[0]), float(anchor[1])],
        "image_size": [int(image_size[0]), int(image_size[1])],
        "fov_deg": float(fov_deg),
        "aerial_size": int(aerial_size),
        "aerial_extent_m": float(aerial_extent_m),
        "jpeg_quality": JPEG_QUALITY,
    }


def plan_city(city: CityMap) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """Every image of a dataset: ``(split, folder, [record, ...])`` with file names and render arguments.

    Args:
        city: the city.

    Returns:
        For each split and folder, records with ``name`` (the file name) and the pose.
    """
    out: list[tuple[str, str, list[dict[str, Any]]]] = []
    zone, letter = city.frame.zone_number, city.zone_letter
    for s_idx, split in enumerate(SPLITS):
        db = city.database_poses(split)
        q = city.query_poses(split)
        ae = city.aerial_centres(split)
        groups: list[tuple[str, Any, str, str]] = [("database", db, "p", "")]
        groups += [(folder, q, "q", dom) for folder, dom in QUERY_FOLDERS.items()]
        for folder, poses, prefix, dom in groups:
            lat, lon = city.frame.to_latlon(np.stack([poses.east, poses.north], 1))
            recs = []
            for i in range(len(poses)):
                name = format_vg_name(
                    VGName(
                        utm_east=float(poses.east[i]),
                        utm_north=float(poses.north[i]),
                        zone_number=zone,
                        zone_letter=letter,
                        lat=float(lat[i]),
                        lon=float(lon[i]),
                        pano_id=f"{prefix}{int(poses.pano[i]):06d}",
                        heading=float(poses.heading[i]),
                        pitch=float(poses.pitch[i]),
                        height=float(poses.height[i]),
                        note=dom,
                    )
                )
                recs.append(
                    {
                        "name": name,
                        "kind": "view",
                        "pose": (
                            float(poses.east[i]),
                            float(poses.north[i]),
                            float(poses.heading[i]),
                            float(poses.pitch[i]),
                            float(poses.height[i]),
                        ),
                        "domain": dom or "database",
                        "cond_seed": [city.seed, s_idx, int(poses.pano[i]), _DOMAIN_STREAM.get(dom, 0)],
                    }
                )
            out.append((split, folder, recs))
        lat, lon = city.frame.to_latlon(ae)
        recs = []
        for i in range(len(ae)):
            name = format_vg_name(
                VGName(
                    utm_east=float(ae[i, 0]),
                    utm_north=float(ae[i, 1]),
                    zone_number=zone,
                    zone_letter=letter,
                    lat=float(lat[i]),
                    lon=float(lon[i]),
                    pano_id=f"a{i:06d}",
                    heading=0.0,
                    note="aerial",
                )
            )
            recs.append({"name": name, "kind": "aerial", "pose": (float(ae[i, 0]), float(ae[i, 1]))})
        out.append((split, "aerial", recs))
    return out


# ---------------------------------------------------------------------- workers
_WORKER_CITIES: dict[str, CityMap] = {}


def _city_for(key: str) -> CityMap:
    """The city of a worker (rebuilt from its parameters once per process: cheaper than pickling)."""
    if key not in _WORKER_CITIES:
        p = json.loads(key)
        size = p["size"] if p["size"] in SIZES else CitySize(**p["size_params"])
        _WORKER_CITIES.clear()
        style = CityStyle.from_dict(p["style"]) if "style" in p else None
        _WORKER_CITIES[key] = CityMap.generate(p["seed"], size, (p["anchor"][0], p["anchor"][1]), style)
    return _WORKER_CITIES[key]


def render_record(city: CityMap, rec: dict[str, Any], params: dict[str, Any]) -> np.ndarray:
    """Render one planned image (see :func:`plan_city`) as uint8 (H, W, 3)."""
    if rec["kind"] == "aerial":
        e, n = rec["pose"]
        return render_aerial(city, e, n, params["aerial_extent_m"], params["aerial_size"])
    e, n, heading, pitch, height = rec["pose"]
    cond = Conditions.sample(rec["domain"], rec["cond_seed"])
    out = render_view(
        city, e, n, heading, pitch, params["fov_deg"], (params["image_size"][0], params["image_size"][1]),
        conditions=cond, camera_height=height,
    )  # fmt: skip
    assert isinstance(out, np.ndarray)
    return out


def encode_jpeg(img: np.ndarray, path: Path) -> None:
    """Write ``img`` as a JPEG atomically (quality :data:`JPEG_QUALITY`, deterministic settings)."""
    with atomic_path(path) as tmp:
        Image.fromarray(img).save(tmp, format="JPEG", quality=JPEG_QUALITY)


def _render_chunk(key: str, root: str, jobs: list[tuple[str, dict[str, Any]]]) -> int:
    city = _city_for(key)
    params = json.loads(key)
    done = 0
    for folder, rec in jobs:
        path = Path(root) / folder / rec["name"]
        if not path.exists():  # resume: files are written atomically, so existing ones are complete
            encode_jpeg(render_record(city, rec, params), path)
        done += 1
    return done


# ---------------------------------------------------------------------- entry point
def _count(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(1 for e in os.scandir(folder) if e.name.endswith(".jpg") and not e.name.startswith("."))


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_complete(root: str | os.PathLike[str], params: dict[str, Any] | None = None) -> bool:
    """True when ``root`` holds a finished city (city.json present, file counts match, params equal)."""
    root = Path(root)
    meta = _read_json(root / "city.json")
    if meta is None or (root / MARKER).exists():
        return False
    if params is not None and meta.get("params") != params:
        return False
    counts = meta.get("counts", {})
    return bool(counts) and all(_count(root / "images" / k) == v for k, v in counts.items())


def generate_city(
    out_dir: str | os.PathLike[str],
    size: str | CitySize = "tiny",
    seed: int = 0,
    *,
    anchor: tuple[float, float] = DEFAULT_ANCHOR,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    fov_deg: float = DEFAULT_FOV_DEG,
    aerial_size: int = 256,
    aerial_extent_m: float = 96.0,
    progress: bool = True,
    workers: int | None = None,
    style: CityStyle | None = None,
) -> Path:
    """Generate (or reuse, or resume) a synthetic city dataset.

    Args:
        out_dir: the dataset root (created); see the module docstring for the layout.
        size: ``"tiny"``, ``"small"``, ``"medium"``, ``"large"`` (:data:`SIZES`, counts in
            :data:`SIZES_DOC`) or a custom :class:`CitySize`.
        seed: the city and every image are a function of it.
        anchor: (latitude, longitude) of the city centre; default Lund, Sweden.
        image_size: (height, width) of the street views.
        fov_deg: horizontal field of view of the street views.
        aerial_size: aerial tile width = height in pixels.
        aerial_extent_m: ground width = height of an aerial tile in metres.
        progress: show a progress bar.
        workers: processes; default 1 for fewer than 600 images, else the CPU count (<= 8).
        style: the city's architecture, vegetation and signs (:class:`~vgloc.data.synthetic.style.CityStyle`);
            None = the original city.

    Returns:
        The dataset root.

    Raises:
        FileExistsError: ``out_dir`` is a non-empty directory that is not a synthetic city
            (nothing is deleted then).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    _check_view_args(image_size, fov_deg, 0.0, "database")
    if not (isinstance(aerial_size, (int, np.integer)) and 8 <= aerial_size <= 4096):
        raise ValueError(f"aerial_size must be an int within 8..4096, got {aerial_size!r}")
    if not (math.isfinite(aerial_extent_m) and aerial_extent_m > 0):
        raise ValueError(f"aerial_extent_m must be positive, got {aerial_extent_m!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}")
    params = _params(size, seed, anchor, image_size, fov_deg, aerial_size, aerial_extent_m, style)
    root = Path(out_dir)
    if is_complete(root, params):
        return root
    _prepare_root(root, params)
    city = CityMap.generate(seed, size, anchor, style)
    plan = plan_city(city)
    jobs = [(f"{split}/{folder}", rec) for split, folder, recs in plan for rec in recs]
    for split, folder, _ in plan:
        d = root / "images" / split / folder
        d.mkdir(parents=True, exist_ok=True)
        for stale in d.glob(".*.tmp"):  # temporaries of an interrupted run
            stale.unlink()
    key = json.dumps({**params, "size_params": params["size_params"]}, sort_keys=True)
    n_workers = workers if workers is not None else (1 if len(jobs) < 600 else min(os.cpu_count() or 1, 8))
    _run_jobs(key, root / "images", jobs, n_workers, progress)

    counts = {f"{split}/{folder}": len(recs) for split, folder, recs in plan}
    for k, v in counts.items():
        found = _count(root / "images" / k)
        if found != v:
            raise RuntimeError(f"{root / 'images' / k}: expected {v} images, found {found}")
    meta = {
        "format": "vgloc-synthetic-city",
        "vgloc_version": __version__,
        "params": params,
        "layout": city.summary(),
        "counts": counts,
        "folders": {f: (QUERY_FOLDERS.get(f, f)) for f in FOLDERS},
        "notes": {
            "coordinates": "UTM of the frame in layout.frame; headings clockwise from grid north",
            "queries": "queries_night, queries_fog and queries_occluded reuse the poses of queries "
            "(same pano_id); queries_occluded also reuses its lighting",
            "aerial": f"north-up orthographic tiles of {aerial_extent_m:g} m named by their centre",
            "positives": "every day query has database images within 25 m",
        },
    }
    write_json_atomic(root / "city.json", meta)
    (root / MARKER).unlink(missing_ok=True)
    return root


def _prepare_root(root: Path, params: dict[str, Any]) -> None:
    """Make ``root`` ready: keep a resumable partial run, clear a stale city, refuse foreign data."""
    marker = _read_json(root / MARKER)
    if marker is not None and marker.get("params") == params:
        return  # resume
    ours = marker is not None or (root / MARKER).exists() or _read_json(root / "city.json") is not None
    if root.exists() and any(root.iterdir()):
        if not ours:
            raise FileExistsError(
                f"{root} is not empty and is not a vgloc synthetic city (no city.json or {MARKER}); "
                "choose an empty or new directory"
            )
        shutil.rmtree(root / "images", ignore_errors=True)
        (root / "city.json").unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / MARKER, {"params": params})


def _run_jobs(
    key: str, images: Path, jobs: Sequence[tuple[str, dict[str, Any]]], workers: int, progress: bool
) -> None:
    from tqdm.auto import tqdm

    chunk = 48
    chunks = [list(jobs[i : i + chunk]) for i in range(0, len(jobs), chunk)]
    with tqdm(total=len(jobs), disable=not progress, desc="synthetic city", unit="img") as bar:
        if workers <= 1:
            for c in chunks:
                bar.update(_render_chunk(key, str(images), c))
            return
        # spawn: safe whatever the parent holds (threads, CUDA); a worker rebuilds the city once.
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as ex:
            futures = [ex.submit(_render_chunk, key, str(images), c) for c in chunks]
            for fut in as_completed(futures):
                bar.update(fut.result())
