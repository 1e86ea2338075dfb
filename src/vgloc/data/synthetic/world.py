"""A synthetic world: several synthetic cities on different continents, one dataset.

Each place is a :func:`~vgloc.data.synthetic.generate_city` city with its own seed
(its own street plan) anchored at a real city's coordinates, built in its own
architectural style (:class:`~vgloc.data.synthetic.style.CityStyle`: facade colours,
window designs, share of glass towers, building heights, amount and colour of
vegetation, shop-sign colours; :data:`WORLD_STYLES` for the default places, drawn
from the seed for others), plus a per-city colour grade (per-channel gains and
offsets, drawn from the seed) on every image, so that the cities differ in
learnable ways as regions of the world do (the study's "distinct styles"). The
database and day queries of every city are merged into the usual layout, file names
keeping their coordinates::

    out/
      world.json                  places, styles, counts; written LAST (completeness marker)
      images/{train,val,test}/{database,queries}/@...@.jpg
      _cities/<place>/            the full city datasets (reused on the next call)

The merged sets span several UTM zones, so they load as world-wide sets
(``frame=None``; distances on the sphere), and ``vgloc eval`` / ``vgloc train``
read them like any dataset.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from vgloc.data.synthetic.citymap import SPLITS, CitySize, resolve_size
from vgloc.data.synthetic.generate import generate_city
from vgloc.data.synthetic.render import DEFAULT_IMAGE_SIZE
from vgloc.data.synthetic.style import CityStyle
from vgloc.io import atomic_path, write_json_atomic

__all__ = ["WORLD_FOLDERS", "WORLD_PLACES", "WORLD_STYLES", "generate_world", "place_style"]

#: (name, latitude, longitude) of the default places: six continents.
WORLD_PLACES: tuple[tuple[str, float, float], ...] = (
    ("paris", 48.8566, 2.3522),
    ("new_york", 40.7128, -74.0060),
    ("sydney", -33.8688, 151.2093),
    ("nairobi", -1.2921, 36.8219),
    ("tokyo", 35.6762, 139.6503),
    ("sao_paulo", -23.5505, -46.6333),
)
#: The architecture of the default places: a caricature of each region, chosen so that
#: facades, heights, greenery and signs differ between cities (walls: the facade palette
#: of :mod:`vgloc.data.synthetic.citymap`, 0 sand ... 13 slate; windows: designs 0..11).
WORLD_STYLES: dict[str, CityStyle] = {
    # stone and cream plaster, six-storey blocks, tree-lined avenues, dark-green shop fronts
    "paris": CityStyle(
        walls=(0, 5, 11, 12), windows=(0, 1, 2), glass_share=0.02, floors_shift=1.0,
        tree_rate=0.7, sign_tint=(0.12, 0.3, 0.2),
        ground=(1.25, 1.15, 1.0),
    ),
    # brick and brownstone, tall, glass towers, few trees, yellow signs
    "new_york": CityStyle(
        walls=(1, 2, 10, 4), windows=(3, 4, 5), glass_share=0.35, floors_shift=4.0,
        tree_rate=0.15, sign_tint=(0.9, 0.75, 0.15),
        ground=(0.8, 0.8, 0.85),
    ),
    # sandstone and light concrete, grey-green eucalyptus, blue signs
    "sydney": CityStyle(
        walls=(0, 3, 11, 12), windows=(6, 7), glass_share=0.3, floors_shift=2.0,
        tree_rate=0.5, foliage=(1.1, 0.95, 0.9), sign_tint=(0.1, 0.35, 0.75),
        ground=(1.2, 1.15, 1.05),
    ),
    # ochre and salmon plaster, low-rise, dry vegetation, red signs
    "nairobi": CityStyle(
        walls=(6, 9, 12, 3), windows=(8, 9), glass_share=0.04, floors_shift=-1.5,
        tree_rate=0.4, foliage=(1.6, 1.1, 0.55), sign_tint=(0.8, 0.15, 0.1),
        ground=(1.6, 1.1, 0.75),
    ),
    # grey and white concrete, tall, glass, hardly a tree, magenta signs
    "tokyo": CityStyle(
        walls=(3, 4, 5, 13), windows=(10, 11), glass_share=0.3, floors_shift=3.0,
        tree_rate=0.08, sign_tint=(0.9, 0.1, 0.5),
        ground=(1.0, 1.0, 1.08),
    ),
    # concrete with pastel paint, towers, lush trees, green signs
    "sao_paulo": CityStyle(
        walls=(4, 3, 7, 8), windows=(3, 6, 9), glass_share=0.2, floors_shift=3.0,
        tree_rate=0.5, foliage=(0.75, 1.2, 0.8), sign_tint=(0.15, 0.6, 0.2),
        ground=(1.15, 0.95, 0.95),
    ),
}  # fmt: skip
#: The folders merged from each city.
WORLD_FOLDERS = ("database", "queries")
_MARKER = ".vgloc_world_incomplete.json"


def _style(seed: int, index: int) -> dict[str, list[float]]:
    """The colour grade of city ``index``: per-channel gains in [0.7, 1.3] and offsets in [-20, 20]."""
    rng = np.random.default_rng([seed, 7331, index])
    return {
        "gain": rng.uniform(0.7, 1.3, 3).round(3).tolist(),
        "offset": rng.uniform(-20, 20, 3).round(1).tolist(),
    }


def place_style(name: str, seed: int, index: int) -> CityStyle:
    """The style of place ``index``: :data:`WORLD_STYLES` by name, else drawn from ``seed``.

    A drawn style takes 4 facade colours, 3 window designs, a glass share in [0, 0.4],
    a floor shift in [-1.5, 4], a tree rate in [0.05, 0.7], foliage factors in
    [0.7, 1.4], a sign colour and ground factors in [0.8, 1.5].
    """
    if name in WORLD_STYLES:
        return WORLD_STYLES[name]
    rng = np.random.default_rng([seed, 0x57A1E, index])
    return CityStyle(
        walls=tuple(int(v) for v in np.sort(rng.choice(14, 4, replace=False))),
        windows=tuple(int(v) for v in np.sort(rng.choice(12, 3, replace=False))),
        glass_share=round(float(rng.uniform(0.0, 0.4)), 3),
        floors_shift=round(float(rng.uniform(-1.5, 4.0)), 2),
        tree_rate=round(float(rng.uniform(0.05, 0.7)), 3),
        foliage=tuple(round(float(v), 3) for v in rng.uniform(0.7, 1.4, 3)),  # type: ignore[arg-type]
        sign_tint=tuple(round(float(v), 3) for v in rng.uniform(0.1, 0.9, 3)),  # type: ignore[arg-type]
        ground=tuple(round(float(v), 3) for v in rng.uniform(0.8, 1.5, 3)),  # type: ignore[arg-type]
    )


def _grade(src: Path, dst: Path, style: dict[str, list[float]]) -> None:
    with Image.open(src) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32)
    out = np.clip(arr * np.asarray(style["gain"]) + np.asarray(style["offset"]), 0, 255).astype(np.uint8)
    with atomic_path(dst) as tmp, open(tmp, "wb") as fh:
        Image.fromarray(out).save(fh, format="JPEG", quality=92)


def generate_world(
    out_dir: str | os.PathLike[str],
    size: str | CitySize = "tiny",
    seed: int = 0,
    *,
    places: Sequence[tuple[str, float, float]] = WORLD_PLACES,
    styles: Mapping[str, CityStyle] | None = None,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    progress: bool = True,
    workers: int | None = None,
) -> Path:
    """Generate (or reuse) a synthetic world dataset (module docstring).

    Args:
        out_dir: the dataset root.
        size: the size of every city (``tiny`` ... ``large`` or a :class:`CitySize`).
        seed: city ``i`` uses seed ``seed + 1000 i``; the colour grades derive from it too.
        places: (name, lat, lon) of each city (distinct names, at least two places).
        styles: place name -> its :class:`CityStyle` (e.g. one region's style for several
            of its cities); other places get :func:`place_style`.
        image_size: (height, width) of the views.
        progress, workers: as :func:`generate_city`.

    Returns:
        The dataset root.

    Raises:
        ValueError: fewer than two places or repeated names.
        FileExistsError: ``out_dir`` holds something that is not a synthetic world.
    """
    names = [p[0] for p in places]
    if len(places) < 2 or len(set(names)) != len(names):
        raise ValueError(f"a world needs two or more places with distinct names, got {names}")
    size_name, city_size = resolve_size(size)
    chosen = {name: (styles or {}).get(name) or place_style(name, seed, i) for i, name in enumerate(names)}
    out = Path(out_dir)
    params = {
        "size": size_name,
        "city_size": city_size.to_dict(),
        "seed": int(seed),
        "places": [list(p) for p in places],
        "image_size": list(image_size),
        "styles": {name: _style(seed, i) for i, name in enumerate(names)},
        "architecture": {name: style.to_dict() for name, style in chosen.items()},
    }
    done = out / "world.json"
    if done.exists() and json.loads(done.read_text()).get("params") == params:
        return out
    if out.exists() and any(out.iterdir()) and not (done.exists() or (out / _MARKER).exists()):
        raise FileExistsError(f"{out} is not empty and is not a synthetic world; choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    done.unlink(missing_ok=True)
    write_json_atomic(out / _MARKER, params)
    shutil.rmtree(out / "images", ignore_errors=True)  # merged files of other parameters
    counts: dict[str, dict[str, int]] = {}
    for i, (name, lat, lon) in enumerate(places):
        city = generate_city(
            out / "_cities" / name,
            city_size,
            seed + 1000 * i,
            anchor=(float(lat), float(lon)),
            image_size=image_size,
            progress=progress,
            workers=workers,
            style=chosen[name],
        )
        for split in SPLITS:
            for folder in WORLD_FOLDERS:
                src_dir = city / "images" / split / folder
                dst_dir = out / "images" / split / folder
                dst_dir.mkdir(parents=True, exist_ok=True)
                files = sorted(src_dir.glob("*.jpg"))
                for f in files:
                    if (dst_dir / f.name).exists():
                        raise FileExistsError(
                            f"two cities wrote {f.name}; give the places distinct coordinates"
                        )
                    _grade(f, dst_dir / f.name, params["styles"][name])  # type: ignore[index]
                key = f"{split}/{folder}"
                counts.setdefault(key, {})[name] = len(files)
    write_json_atomic(done, {"params": params, "counts": counts})
    (out / _MARKER).unlink(missing_ok=True)
    return out
