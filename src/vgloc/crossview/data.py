"""(street view, aerial tile) pairs: where they come from, how they are batched and loaded.

Two layouts are read into one :class:`CrossViewPairs`:

- the synthetic city (``vgloc synth``): ``ROOT/images/<split>/<folder>/`` street views and
  ``ROOT/images/<split>/aerial/`` north-up tiles, all named ``@UTM_east@UTM_north@...``
  (tiles by their centre). Each street view is paired with the nearest tile centre;
  its heading (degrees clockwise from grid north) is in its name.
- a CSV (CVUSA / CVACT / VIGOR-style, one row per street view): ``ROOT/<split>.csv`` (or
  the CSV file itself) with columns ``ground``, ``aerial`` (paths relative to the CSV's
  folder), ``lat``, ``lon`` and optionally ``heading`` (degrees clockwise from north of
  the street view's centre column; empty = unknown), ``aerial_lat``, ``aerial_lon`` (the
  tile centre; default: the street view's position). Tiles are north-up.

The heading is used in training only (the rotation target); evaluation uses it only to
score the estimate.
"""

from __future__ import annotations

import csv
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from vgloc.data.images import load_image
from vgloc.data.transforms import build_transform
from vgloc.data.vgnames import parse_vg_name

__all__ = [
    "CrossViewPairs",
    "PairDataset",
    "TileDataset",
    "distinct_tile_batches",
    "load_csv_pairs",
    "load_pairs",
    "load_synthetic_pairs",
    "rotate_tile",
]

IMAGE_EXTS = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class CrossViewPairs:
    """Street views, aerial tiles, and which tile each street view lies in.

    Attributes:
        ground: Street-view image paths, ``N``.
        tiles: Aerial tile paths, ``T`` (distinct).
        tile_of: ``(N,)`` int64, index into ``tiles`` of each street view's tile.
        heading: ``(N,)`` float64, street-view heading in degrees clockwise from north (NaN: unknown).
        ground_latlon: ``(N, 2)`` float64 latitude, longitude.
        tile_latlon: ``(T, 2)`` float64 tile centres.
    """

    ground: list[Path]
    tiles: list[Path]
    tile_of: np.ndarray
    heading: np.ndarray
    ground_latlon: np.ndarray
    tile_latlon: np.ndarray

    def __post_init__(self) -> None:
        n, t = len(self.ground), len(self.tiles)
        if n == 0 or t == 0:
            raise ValueError(f"no pairs: {n} street views, {t} aerial tiles")
        if self.tile_of.shape != (n,) or self.heading.shape != (n,) or self.ground_latlon.shape != (n, 2):
            raise ValueError("tile_of, heading and ground_latlon must have one row per street view")
        if self.tile_latlon.shape != (t, 2):
            raise ValueError("tile_latlon must have one row per tile")
        if self.tile_of.min() < 0 or self.tile_of.max() >= t:
            raise ValueError("tile_of indexes outside the tiles")

    def __len__(self) -> int:
        return len(self.ground)


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}")
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")
    )
    if not files:
        raise FileNotFoundError(f"no images in {folder}")
    return files


def load_synthetic_pairs(
    root: str | os.PathLike[str], split: str, folder: str = "database"
) -> CrossViewPairs:
    """Pairs of a synthetic city's split: street views of ``folder`` with their nearest tile.

    Args:
        root: The city (``ROOT/images/<split>/...``).
        split: ``train``, ``val`` or ``test``.
        folder: The street-view folder (``database``, ``queries``, ``queries_night``, ...).

    Returns:
        The pairs; every tile of the split's ``aerial/`` folder is a reference, matched or not.
    """
    base = Path(root) / "images" / split
    ground, tiles = _images(base / folder), _images(base / "aerial")
    g = [parse_vg_name(p) for p in ground]
    a = [parse_vg_name(p) for p in tiles]
    g_utm = np.array([[n.utm_east, n.utm_north] for n in g])
    a_utm = np.array([[n.utm_east, n.utm_north] for n in a])
    # N x T distances: a few thousand street views by a few hundred tiles at most.
    d2 = ((g_utm[:, None, :] - a_utm[None, :, :]) ** 2).sum(-1)
    return CrossViewPairs(
        ground=ground,
        tiles=tiles,
        tile_of=d2.argmin(1).astype(np.int64),
        heading=np.array([n.heading for n in g], dtype=np.float64),
        ground_latlon=np.array([[n.lat, n.lon] for n in g], dtype=np.float64),
        tile_latlon=np.array([[n.lat, n.lon] for n in a], dtype=np.float64),
    )


def _float(text: str | None, what: str, row: int) -> float:
    if text is None or text.strip() == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"row {row}: {what} {text!r} is not a number") from None


def load_csv_pairs(path: str | os.PathLike[str]) -> CrossViewPairs:
    """Pairs from a CSV with columns ``ground, aerial, lat, lon[, heading, aerial_lat, aerial_lon]``.

    Raises:
        ValueError: Missing columns, bad numbers, or a tile given two different centres.
        FileNotFoundError: The CSV or an image it names does not exist.
    """
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"ground", "aerial", "lat", "lon"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)} (have {reader.fieldnames})")
        rows = list(reader)
    base = path.parent
    tiles: dict[Path, int] = {}
    tile_ll: list[tuple[float, float]] = []
    ground, tile_of, heading, g_ll = [], [], [], []
    for i, r in enumerate(rows, start=2):
        lat, lon = _float(r["lat"], "lat", i), _float(r["lon"], "lon", i)
        if math.isnan(lat) or math.isnan(lon):
            raise ValueError(f"{path} row {i}: lat and lon are required")
        tile = base / r["aerial"]
        a_ll = (_float(r.get("aerial_lat"), "aerial_lat", i), _float(r.get("aerial_lon"), "aerial_lon", i))
        if math.isnan(a_ll[0]):
            a_ll = (lat, lon)
        if tile not in tiles:
            tiles[tile] = len(tiles)
            tile_ll.append(a_ll)
        ground.append(base / r["ground"])
        tile_of.append(tiles[tile])
        heading.append(_float(r.get("heading"), "heading", i))
        g_ll.append((lat, lon))
    for p in [*ground[:1], *list(tiles)[:1]]:
        if not p.is_file():
            raise FileNotFoundError(f"{path} names {p}, which does not exist")
    return CrossViewPairs(
        ground=ground,
        tiles=list(tiles),
        tile_of=np.array(tile_of, dtype=np.int64),
        heading=np.array(heading, dtype=np.float64),
        ground_latlon=np.array(g_ll, dtype=np.float64).reshape(-1, 2),
        tile_latlon=np.array(tile_ll, dtype=np.float64).reshape(-1, 2),
    )


def load_pairs(root: str | os.PathLike[str], split: str, folder: str = "database") -> CrossViewPairs:
    """Pairs from a CSV file, ``ROOT/<split>.csv``, or a synthetic city (in that order)."""
    root = Path(root)
    if root.is_file():
        return load_csv_pairs(root)
    if (root / f"{split}.csv").is_file():
        return load_csv_pairs(root / f"{split}.csv")
    if (root / "images" / split / "aerial").is_dir():
        return load_synthetic_pairs(root, split, folder)
    raise FileNotFoundError(
        f"{root}: neither a CSV, nor {root / (split + '.csv')}, nor a synthetic city with "
        f"images/{split}/aerial/ (make one with `vgloc synth`)"
    )


def distinct_tile_batches(tile_of: np.ndarray, batch_size: int, seed: int) -> Iterator[list[int]]:
    """Endless batches of street-view indices whose tiles are all different.

    Each round visits every matched tile once in random order, with a random street view
    of it, so the other items of a batch are true negatives for the losses.

    Args:
        tile_of: ``(N,)`` tile index per street view.
        batch_size: Pairs per batch (at most the number of matched tiles).
        seed: Seed of the shuffling.

    Yields:
        Lists of ``batch_size`` street-view indices.
    """
    by_tile: dict[int, list[int]] = {}
    for i, t in enumerate(tile_of.tolist()):
        by_tile.setdefault(int(t), []).append(i)
    if batch_size < 2 or batch_size > len(by_tile):
        raise ValueError(
            f"batch_size must be within 2..{len(by_tile)} (tiles with a street view), got {batch_size}"
        )
    rng = random.Random(seed)
    keys = sorted(by_tile)
    while True:
        rng.shuffle(keys)
        picks = [rng.choice(by_tile[k]) for k in keys]
        for s in range(0, len(picks) - batch_size + 1, batch_size):
            yield picks[s : s + batch_size]


def rotate_tile(tile: Tensor, angle_deg: float, size: int) -> Tensor:
    """Rotate a tile's content counter-clockwise by ``angle_deg``, crop its centre, resize.

    After the rotation the image's up direction points at heading ``angle_deg`` (clockwise
    from north). The centre crop (side / sqrt(2)) is the largest square without the
    empty corners of a 45 degree rotation, taken at every angle so all samples look alike.

    Shape:
        - tile: ``(3, S, S)``
        - Output: ``(3, size, size)``
    """
    from torchvision.transforms.v2 import functional as TF

    side = tile.shape[-1]
    out = TF.rotate(tile, float(angle_deg), interpolation=TF.InterpolationMode.BILINEAR)
    out = TF.center_crop(out, [max(1, round(side / math.sqrt(2)))] * 2)
    return TF.resize(out, [size, size], antialias=True)


class PairDataset(Dataset[tuple[Tensor, Tensor, Tensor]]):
    """Training items: street view, aligned and randomly perturbed tile, and the relative heading.

    As in Vo & Hays (2016), the training tile is first aligned with the street view (rotated
    so that the view's heading points up; heading known at training time), then rotated by
    a random ``delta`` uniform in ``[-range/2, range/2]``: ``range = 0`` learns aligned
    matching (the test then samples rotations), ``range = 360`` full rotation invariance.
    A street view without a heading keeps its tile north-up plus ``delta``.

    Args:
        pairs: The pairs.
        ground_size: ``(H, W)`` of the street views.
        aerial_size: Side of the tiles after rotation and crop.
        rotation_range: Degrees of the random perturbation (0, 45, 90, 180, 360).
        seed: Seed of the rotations.

    Index ``j`` is street view ``j % N`` at draw ``j // N`` (its own rotation), so a
    sampler asks for fresh rotations with ``i + N * step``, also from worker processes.

    Items:
        ``(ground (3, H, W), tile (3, s, s), relative heading in radians ())``: the street
        view's heading relative to the rotated tile's up direction, ``-delta`` (NaN if unknown).
    """

    def __init__(
        self,
        pairs: CrossViewPairs,
        ground_size: tuple[int, int],
        aerial_size: int,
        rotation_range: float,
        seed: int,
    ) -> None:
        if not 0 <= rotation_range <= 360:
            raise ValueError(f"rotation_range must be within 0..360 degrees, got {rotation_range}")
        self.pairs = pairs
        self.ground_tf = build_transform(ground_size)
        self.tile_tf = build_transform(None)
        self.aerial_size = int(aerial_size)
        self.rotation_range = float(rotation_range)
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, j: int) -> tuple[Tensor, Tensor, Tensor]:
        p = self.pairs
        draw, i = divmod(int(j), len(p))
        ground = self.ground_tf(load_image(p.ground[i]))
        tile = self.tile_tf(load_image(p.tiles[int(p.tile_of[i])]))
        rng = random.Random(f"{self.seed}/{draw}/{i}")
        delta = rng.uniform(-self.rotation_range / 2, self.rotation_range / 2)
        heading = float(p.heading[i])
        angle = (heading if math.isfinite(heading) else 0.0) + delta
        rel = math.radians(heading - angle)  # -delta, or NaN for an unknown heading
        return ground, rotate_tile(tile, angle, self.aerial_size), torch.tensor(rel, dtype=torch.float32)


class TileDataset(Dataset[Tensor]):
    """Every tile at ``K`` test-time rotations (``k * 360 / K`` degrees).

    Items: ``(K, 3, s, s)``; the angles are :attr:`angles` (degrees).
    """

    def __init__(self, tiles: list[Path], aerial_size: int, samples: int = 1) -> None:
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        self.tiles = tiles
        self.aerial_size = int(aerial_size)
        self.angles = [k * 360.0 / samples for k in range(samples)]
        self.tf = build_transform(None)

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, i: int) -> Tensor:
        tile = self.tf(load_image(self.tiles[i]))
        return torch.stack([rotate_tile(tile, a, self.aerial_size) for a in self.angles])
