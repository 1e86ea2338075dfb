"""The procedural city: a street grid of blocks, building footprints with facade styles, poses.

This module stays one file because :meth:`CityMap.generate` draws the blocks, buildings,
faces and street furniture from one seeded generator in a fixed order and the pose and
lookup queries read the arrays it builds; splitting would scatter one data structure.

Coordinates. A city lives in a *local* metric frame: ``x`` metres east and ``y``
metres north of the city's south-west corner. The local frame is a translation
of one UTM zone (:class:`vgloc.geo.MetricFrame`, the zone of the anchor), so
``utm = origin_utm + local`` exactly and UTM distances equal local distances.
Headings are degrees clockwise from grid north (UTM ``+y``), as in the field's
file names.

Layout. Block columns (west to east) are grouped into split districts
``train | park | val | park | test``; the parks are block-wide green strips with
no buildings and no camera positions, so the districts are geographically
disjoint by at least one park block (>= 60 m). A ring of ordinary blocks
surrounds the city so that views from its edge streets still look at buildings.

Buildings. Each block is lined with buildings on its four sides (a perimeter
block with a courtyard, as in most European and many American cities), with
varied frontages, depths, heights, setbacks and occasional gaps; courtyards
sometimes hold a tower that shows over the street fronts. Facade styles are
drawn from a small set of per-city templates (so the same look recurs across
the city, as real streets repeat) plus per-building jitter and a unique shop
sign, and runs of identical town houses are common.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from vgloc.geo import MetricFrame, validate_latlon

if TYPE_CHECKING:
    from vgloc.data.synthetic.style import CityStyle

# Lund, Sweden (the old town south of the cathedral). The project's real sample
# photos (shared/data/lund-exif-gps) were taken here, so maps of synthetic and
# real data show a familiar place; it is also far from any UTM zone edge
# (zone 33, ~2 degrees from the central meridian), so a large city fits in one zone.
DEFAULT_ANCHOR: tuple[float, float] = (55.7047, 13.1910)

SPLITS: tuple[str, ...] = ("train", "val", "test")

# Street geometry (metres). The camera height of the database (a street-view car).
SIDEWALK_M = 3.0
DB_CAMERA_HEIGHT_M = 2.5
MIN_PARK_WIDTH_M = 60.0  # the gap between split districts
BLOCK_TYPE_NORMAL, BLOCK_TYPE_PARK, BLOCK_TYPE_PLAZA = 0, 1, 2

# Facade palettes (linear-ish RGB in [0, 1]): plaster, brick, stone, paint, concrete.
_WALL_PALETTE = np.array(
    [
        [0.78, 0.70, 0.56],  # sand plaster
        [0.62, 0.30, 0.22],  # red brick
        [0.50, 0.25, 0.20],  # dark brick
        [0.72, 0.72, 0.70],  # light concrete
        [0.45, 0.45, 0.46],  # grey concrete
        [0.85, 0.82, 0.74],  # off-white
        [0.82, 0.70, 0.38],  # ochre
        [0.55, 0.63, 0.70],  # pale blue
        [0.58, 0.68, 0.52],  # sage green
        [0.80, 0.56, 0.50],  # salmon
        [0.36, 0.30, 0.26],  # dark brown
        [0.66, 0.58, 0.50],  # stone
        [0.88, 0.78, 0.58],  # cream yellow
        [0.40, 0.46, 0.52],  # slate
    ],
    dtype=np.float32,
)
_ROOF_PALETTE = np.array(
    [
        [0.42, 0.40, 0.38],
        [0.55, 0.27, 0.20],
        [0.30, 0.30, 0.32],
        [0.60, 0.60, 0.58],
        [0.35, 0.28, 0.24],
        [0.25, 0.33, 0.30],
    ],
    dtype=np.float32,
)
GROUND_SHOP, GROUND_RESIDENTIAL, GROUND_LOBBY = 0, 1, 2


@dataclass(frozen=True)
class CitySize:
    """The extent and sampling of one city size (see :data:`SIZES`).

    Attributes:
        train_cols, val_cols, test_cols: block columns of each split district (west to east).
        rows: block rows (south to north) with camera positions.
        db_spacing_m: distance between database panoramas along a street.
        db_headings: views per panorama (evenly spaced headings).
        queries_per_pano: query positions per database panorama in each split.
        aerial_step_m: spacing of aerial tile centres.
    """

    train_cols: int
    val_cols: int
    test_cols: int
    rows: int
    db_spacing_m: float
    db_headings: int
    queries_per_pano: float
    aerial_step_m: float

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# Database images are ~ (street length / spacing) * headings; the counts per size
# are documented in vgloc.data.synthetic.generate.SIZES_DOC and checked by a test.
SIZES: dict[str, CitySize] = {
    "tiny": CitySize(2, 1, 1, 1, 24.0, 4, 0.5, 60.0),
    "small": CitySize(4, 2, 2, 3, 12.0, 4, 0.5, 40.0),
    "medium": CitySize(8, 3, 3, 7, 7.5, 4, 0.25, 40.0),
    "large": CitySize(10, 5, 5, 11, 7.0, 4, 0.2, 40.0),
}


def resolve_size(size: str | CitySize) -> tuple[str, CitySize]:
    """Return ``(name, CitySize)`` for a size name or a custom :class:`CitySize`."""
    if isinstance(size, CitySize):
        return "custom", size
    if size not in SIZES:
        raise ValueError(f"unknown city size {size!r}; choose one of {sorted(SIZES)}")
    return size, SIZES[size]


@dataclass
class PoseSet:
    """Camera poses of one image folder, in the city's UTM frame.

    Attributes:
        east, north: (N,) UTM metres.
        heading: (N,) degrees clockwise from grid north, in [0, 360).
        pitch: (N,) degrees, positive looking up.
        height: (N,) camera height above the ground in metres.
        pano: (N,) int, the panorama (database) or query index the view belongs to.
    """

    east: np.ndarray
    north: np.ndarray
    heading: np.ndarray
    pitch: np.ndarray
    height: np.ndarray
    pano: np.ndarray

    def __len__(self) -> int:
        return len(self.east)


@dataclass
class CityMap:
    """A generated city: blocks, buildings, their facades, trees and lamps, and the split districts.

    Build one with :meth:`CityMap.generate`; the constructor only stores arrays.
    All array coordinates are local metres (see the module docstring).
    """

    seed: int
    size_name: str
    size: CitySize
    anchor: tuple[float, float]
    frame: MetricFrame
    origin_utm: np.ndarray  # (2,) UTM of local (0, 0)
    col_lo: np.ndarray  # (C,) block x extents (sidewalk included)
    col_hi: np.ndarray
    row_lo: np.ndarray  # (R,) block y extents
    row_hi: np.ndarray
    block_type: np.ndarray  # (C, R) int
    col_split: np.ndarray  # (C,) int: -1 ring/park, 0 train, 1 val, 2 test
    split_x: dict[str, tuple[float, float]]  # local x range of camera positions per split
    bld: dict[str, np.ndarray]  # per-building arrays (footprint, height, style)
    faces: dict[str, np.ndarray]  # per-face arrays (4 per building)
    trees: np.ndarray  # (T, 3) x, y, variant
    lamps: np.ndarray  # (L, 2) x, y
    extent: tuple[float, float]  # (width, height) of the city in metres
    style: CityStyle | None = None  # architecture, vegetation, signs (None: the original city)
    _grid: dict[str, Any] = field(default_factory=dict, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def f32(self, table: str, key: str) -> np.ndarray:
        """A float32 copy of ``bld[key]`` / ``faces[key]`` / layout arrays (cached; the renderer's dtype)."""
        ck = f"{table}.{key}"
        if ck not in self._cache:
            src = {"bld": self.bld, "faces": self.faces}[table] if table != "city" else None
            arr = getattr(self, key) if src is None else src[key]
            self._cache[ck] = np.ascontiguousarray(arr, dtype=np.float32)
        return self._cache[ck]

    # ------------------------------------------------------------------ creation
    @classmethod
    def generate(
        cls,
        seed: int = 0,
        size: str | CitySize = "tiny",
        anchor: tuple[float, float] = DEFAULT_ANCHOR,
        style: CityStyle | None = None,
    ) -> CityMap:
        """Generate the city deterministically from a seed.

        Args:
            seed: any non-negative integer; the same seed gives the same city.
            size: a name in :data:`SIZES` or a :class:`CitySize`.
            anchor: (latitude, longitude) in degrees of the city's centre.
            style: its architecture and vegetation (:mod:`vgloc.data.synthetic.style`);
                None = the original city (same draws, same street plan either way).

        Returns:
            The city.
        """
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        size_name, sz = resolve_size(size)
        for name in ("train_cols", "val_cols", "test_cols", "rows", "db_headings"):
            if int(getattr(sz, name)) < 1:
                raise ValueError(f"CitySize.{name} must be >= 1, got {getattr(sz, name)}")
        if not sz.db_spacing_m > 0 or not sz.aerial_step_m > 0 or not sz.queries_per_pano > 0:
            raise ValueError(f"CitySize spacings and query rate must be positive, got {sz}")
        lat, lon = float(anchor[0]), float(anchor[1])
        validate_latlon(lat, lon, f"anchor {anchor!r}")
        rng = np.random.default_rng([int(seed), 0xC17])

        # Columns: ring | train | park | val | park | test | ring
        col_split = [-1] + [0] * sz.train_cols + [-1] + [1] * sz.val_cols + [-1] + [2] * sz.test_cols + [-1]
        ncols = len(col_split)
        park_cols = {1 + sz.train_cols, 2 + sz.train_cols + sz.val_cols}
        nrows = sz.rows + 2
        col_w = rng.uniform(60.0, 100.0, ncols)
        for c in park_cols:
            col_w[c] = max(col_w[c], MIN_PARK_WIDTH_M + rng.uniform(0, 20))
        row_h = rng.uniform(50.0, 85.0, nrows)
        street_x = rng.choice([12.0, 14.0, 16.0, 20.0, 24.0], ncols + 1, p=[0.2, 0.3, 0.25, 0.15, 0.1])
        street_y = rng.choice([12.0, 14.0, 16.0, 20.0, 24.0], nrows + 1, p=[0.2, 0.3, 0.25, 0.15, 0.1])
        col_lo = np.zeros(ncols)
        col_hi = np.zeros(ncols)
        x = street_x[0]
        for c in range(ncols):
            col_lo[c], col_hi[c] = x, x + col_w[c]
            x = col_hi[c] + street_x[c + 1]
        width = x
        row_lo = np.zeros(nrows)
        row_hi = np.zeros(nrows)
        y = street_y[0]
        for r in range(nrows):
            row_lo[r], row_hi[r] = y, y + row_h[r]
            y = row_hi[r] + street_y[r + 1]
        height = y

        block_type = np.zeros((ncols, nrows), dtype=np.int64)
        for c in park_cols:
            block_type[c, :] = BLOCK_TYPE_PARK
        # A few plazas (paved squares with trees) inside the districts.
        for c in range(1, ncols - 1):
            for r in range(1, nrows - 1):
                if block_type[c, r] == BLOCK_TYPE_NORMAL and rng.random() < 0.06:
                    block_type[c, r] = BLOCK_TYPE_PLAZA

        templates = _make_templates(rng, 40, style)
        floors_shift = 0.0 if style is None else style.floors_shift
        bld = _make_buildings(
            rng, templates, col_lo, col_hi, row_lo, row_hi, block_type, ncols, nrows, floors_shift
        )
        faces = _make_faces(bld)
        trees, lamps = _make_street_furniture(
            rng, col_lo, col_hi, row_lo, row_hi, block_type, street_x, street_y,
            0.35 if style is None else style.tree_rate,
        )  # fmt: skip

        # The anchor is the city's centre; the frame is the zone of the anchor.
        frame = MetricFrame.for_points(np.array([lat]), np.array([lon]), what="anchor")
        centre_utm = frame.to_utm(np.array([lat]), np.array([lon]))[0]
        origin = np.round(centre_utm - np.array([width / 2, height / 2]), 2)
        corners = origin + np.array([[0, 0], [width, 0], [0, height], [width, height]])
        clat, clon = frame.to_latlon(corners)
        MetricFrame.for_points(clat, clon, what=f"city of size {size_name!r} at anchor {anchor!r}")

        split_x: dict[str, tuple[float, float]] = {}
        for s_idx, s_name in enumerate(SPLITS):
            cols = [c for c in range(ncols) if col_split[c] == s_idx]
            # From the centre of the street west of the first column to the one east of the last.
            x0 = col_lo[cols[0]] - street_x[cols[0]] / 2
            x1 = col_hi[cols[-1]] + street_x[cols[-1] + 1] / 2
            split_x[s_name] = (float(x0), float(x1))

        city = cls(
            seed=int(seed),
            size_name=size_name,
            size=sz,
            anchor=(lat, lon),
            frame=frame,
            origin_utm=origin,
            col_lo=col_lo,
            col_hi=col_hi,
            row_lo=row_lo,
            row_hi=row_hi,
            block_type=block_type,
            col_split=np.array(col_split),
            split_x=split_x,
            bld=bld,
            faces=faces,
            trees=trees,
            lamps=lamps,
            extent=(float(width), float(height)),
            style=style,
        )
        city._build_grid()
        return city

    # ------------------------------------------------------------------ coordinates
    def local_to_utm(self, xy: np.ndarray) -> np.ndarray:
        """Local metres (N, 2) -> UTM easting/northing (N, 2)."""
        return np.asarray(xy, dtype=np.float64) + self.origin_utm

    def utm_to_local(self, east: float | np.ndarray, north: float | np.ndarray) -> np.ndarray:
        """UTM easting/northing -> local metres, shape (..., 2)."""
        return np.stack(
            [
                np.asarray(east, dtype=np.float64) - self.origin_utm[0],
                np.asarray(north, dtype=np.float64) - self.origin_utm[1],
            ],
            -1,
        )

    @property
    def zone_letter(self) -> str:
        """The UTM latitude band letter of the anchor (for file names)."""
        import utm as _utm

        return str(_utm.latitude_to_zone_letter(self.anchor[0]))

    # ------------------------------------------------------------------ spatial index
    _CELL = 50.0

    def _build_grid(self) -> None:
        """A uniform grid of 50 m cells listing the buildings, trees and lamps touching each cell."""
        nx = math.ceil(self.extent[0] / self._CELL) + 1
        ny = math.ceil(self.extent[1] / self._CELL) + 1
        b = self.bld
        cx0 = np.clip((b["x0"] // self._CELL).astype(int), 0, nx - 1)
        cx1 = np.clip((b["x1"] // self._CELL).astype(int), 0, nx - 1)
        cy0 = np.clip((b["y0"] // self._CELL).astype(int), 0, ny - 1)
        cy1 = np.clip((b["y1"] // self._CELL).astype(int), 0, ny - 1)
        cells: list[list[int]] = [[] for _ in range(nx * ny)]
        for i in range(len(cx0)):
            for gx in range(cx0[i], cx1[i] + 1):
                for gy in range(cy0[i], cy1[i] + 1):
                    cells[gx * ny + gy].append(i)
        self._grid = {"nx": nx, "ny": ny, "bld": _csr(cells)}
        for name, pts in (("trees", self.trees[:, :2]), ("lamps", self.lamps[:, :2])):
            cells = [[] for _ in range(nx * ny)]
            gx = np.clip((pts[:, 0] // self._CELL).astype(int), 0, nx - 1)
            gy = np.clip((pts[:, 1] // self._CELL).astype(int), 0, ny - 1)
            for i in range(len(pts)):
                cells[gx[i] * ny + gy[i]].append(i)
            self._grid[name] = _csr(cells)

    def items_in_box(self, kind: str, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """Indices of buildings/trees/lamps (``kind``) whose grid cells touch a local box.

        Args:
            kind: ``"bld"``, ``"trees"`` or ``"lamps"``.
            x0, y0, x1, y1: the box in local metres.

        Returns:
            Sorted unique int64 indices (a superset of the items inside the box).
        """
        nx, ny = self._grid["nx"], self._grid["ny"]
        start, items = self._grid[kind]
        gx0, gx1 = (int(np.clip(v // self._CELL, 0, nx - 1)) for v in (x0, x1))
        gy0, gy1 = (int(np.clip(v // self._CELL, 0, ny - 1)) for v in (y0, y1))
        cells = (np.arange(gx0, gx1 + 1)[:, None] * ny + np.arange(gy0, gy1 + 1)[None, :]).ravel()
        parts = [items[start[c] : start[c + 1]] for c in cells]
        if not parts:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(parts))

    def inside_building(self, x: np.ndarray, y: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """True where local points lie inside a footprint grown by ``margin`` metres, shape of x."""
        x = np.atleast_1d(np.asarray(x, dtype=np.float64))
        y = np.atleast_1d(np.asarray(y, dtype=np.float64))
        out = np.zeros(x.shape, dtype=bool)
        b = self.bld
        for i in range(x.size):
            ids = self.items_in_box(
                "bld", x.flat[i] - margin, y.flat[i] - margin, x.flat[i] + margin, y.flat[i] + margin
            )
            if ids.size:
                hit = (
                    (b["x0"][ids] - margin <= x.flat[i])
                    & (x.flat[i] <= b["x1"][ids] + margin)
                    & (b["y0"][ids] - margin <= y.flat[i])
                    & (y.flat[i] <= b["y1"][ids] + margin)
                )
                out.flat[i] = bool(hit.any())
        return out

    # ------------------------------------------------------------------ streets and poses
    def streets(self, split: str) -> list[tuple[str, float, float, float, float]]:
        """Street centre-line segments usable for cameras of one split.

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.

        Returns:
            A list of ``(axis, centre, lo, hi, width)``: ``axis`` ``"x"`` for a street along
            x (east-west) at ``y = centre`` from ``x = lo`` to ``hi``, ``"y"`` for north-south.
        """
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
        x0, x1 = self.split_x[split]
        ncols, nrows = len(self.col_lo), len(self.row_lo)
        out: list[tuple[str, float, float, float, float]] = []
        # East-west streets between rows 1..R-2 (the ring rows 0 and R-1 excluded).
        for r in range(1, nrows):
            lo_edge = self.row_hi[r - 1]
            hi_edge = self.row_lo[r]
            out.append(("x", float((lo_edge + hi_edge) / 2), x0, x1, float(hi_edge - lo_edge)))
        y0 = float((self.row_hi[0] + self.row_lo[1]) / 2)
        y1 = float((self.row_hi[nrows - 2] + self.row_lo[nrows - 1]) / 2)
        for c in range(1, ncols):
            xc = float((self.col_hi[c - 1] + self.col_lo[c]) / 2)
            if x0 - 1e-6 <= xc <= x1 + 1e-6:
                out.append(("y", xc, y0, y1, float(self.col_lo[c] - self.col_hi[c - 1])))
        return out

    def database_poses(self, split: str) -> PoseSet:
        """Database panoramas along the split's streets, ``db_headings`` views each.

        Panoramas lie on street centre lines every ``db_spacing_m`` metres (intersections once);
        headings are the street direction plus 45 degrees plus multiples of 360/db_headings,
        so views look diagonally at facades and down the street, like street-view cutouts.

        Returns:
            A :class:`PoseSet` ordered by panorama then heading (pitch 0, height 2.5 m).
        """
        sp = self.size.db_spacing_m
        pts: list[tuple[float, float, float]] = []
        streets = self.streets(split)
        ew = [s for s in streets if s[0] == "x"]
        for axis, centre, lo, hi, _w in streets:
            n = max(1, math.floor((hi - lo) / sp) + 1)
            offs = lo + (hi - lo - (n - 1) * sp) / 2 + sp * np.arange(n)
            for t in offs:
                if axis == "x":
                    pts.append((float(t), centre, 90.0))
                else:
                    # Skip north-south samples inside an intersection (the east-west street has it).
                    if any(abs(t - s[1]) < s[4] / 2 for s in ew):
                        continue
                    pts.append((centre, float(t), 0.0))
        k = self.size.db_headings
        P = np.array(pts, dtype=np.float64).reshape(-1, 3)
        xy = np.round(self.local_to_utm(P[:, :2]), 2)
        heads = (P[:, 2:3] + 45.0 + 360.0 / k * np.arange(k)[None, :]) % 360.0
        n = len(P)
        return PoseSet(
            east=np.repeat(xy[:, 0], k),
            north=np.repeat(xy[:, 1], k),
            heading=np.round(heads.ravel(), 2),
            pitch=np.zeros(n * k),
            height=np.full(n * k, DB_CAMERA_HEIGHT_M),
            pano=np.repeat(np.arange(n), k),
        )

    def query_poses(self, split: str, max_positive_m: float = 25.0) -> PoseSet:
        """Query poses of one split: off the database path, random heading, mild pitch.

        Positions are uniform along the split's streets with a lateral offset anywhere
        across the carriageway or onto the sidewalk, at least 2 m from every database
        panorama and at most ``max_positive_m`` / 1.5 from the nearest one (so each
        query has database images within 25 m). Headings are a database direction plus
        N(0, 15 degrees) jitter (clipped to +-40) and never face a wall closer than 4 m;
        pitch is N(0, 3 degrees) clipped to +-8; height 1.5-2.5 m.

        Returns:
            A :class:`PoseSet` (``pano`` is the query index). Rounded to the file-name precision.
        """
        db = self.database_poses(split)
        db_xy = self.utm_to_local(db.east[:: self.size.db_headings], db.north[:: self.size.db_headings])
        n_q = max(4, round(self.size.queries_per_pano * len(db_xy)))
        rng = np.random.default_rng([self.seed, 0x9E, SPLITS.index(split)])
        streets = self.streets(split)
        lengths = np.array([s[3] - s[2] for s in streets])
        out: list[tuple[float, float, float, float, float]] = []
        attempts = 0
        while len(out) < n_q:
            attempts += 1
            if attempts > 200 * n_q:
                raise RuntimeError(f"could not place {n_q} queries in split {split!r}")
            axis, centre, lo, hi, w = streets[rng.choice(len(streets), p=lengths / lengths.sum())]
            t = rng.uniform(lo, hi)
            lat_off = rng.uniform(-1, 1) * (w / 2 + 0.6 * SIDEWALK_M)
            x, y = (t, centre + lat_off) if axis == "x" else (centre + lat_off, t)
            d = np.sqrt(((db_xy - [x, y]) ** 2).sum(1))
            if d.min() < 2.0 or d.min() > max_positive_m / 1.5:
                continue
            if self.inside_building(np.array([x]), np.array([y]), margin=0.5)[0]:
                continue
            if self._near_furniture(x, y, 1.5):  # not inside a tree trunk or lamp post
                continue
            # Like a photographer on the street: roughly one of the database directions
            # (along the street +-45 degrees) with a jitter of N(0, 15 degrees), clipped to +-40.
            k = self.size.db_headings
            base = (90.0 if axis == "x" else 0.0) + 45.0 + 360.0 / k * int(rng.integers(k))
            heading = (base + float(np.clip(rng.normal(0, 15), -40, 40))) % 360.0
            if self.wall_distance(x, y, heading) < 4.0:
                continue
            pitch = float(np.clip(rng.normal(0, 3), -8, 8))
            height = rng.uniform(1.5, 2.5)
            out.append((x, y, heading, pitch, height))
        Q = np.array(out)
        xy = np.round(self.local_to_utm(Q[:, :2]), 2)
        return PoseSet(
            east=xy[:, 0],
            north=xy[:, 1],
            heading=np.round(Q[:, 2], 2) % 360.0,
            pitch=np.round(Q[:, 3], 2),
            height=np.round(Q[:, 4], 2),
            pano=np.arange(len(Q)),
        )

    def _near_furniture(self, x: float, y: float, r: float) -> bool:
        for kind, pts in (("trees", self.trees), ("lamps", self.lamps)):
            ids = self.items_in_box(kind, x - r, y - r, x + r, y + r)
            if ids.size and (np.hypot(pts[ids, 0] - x, pts[ids, 1] - y) < r).any():
                return True
        return False

    def wall_distance(self, x: float, y: float, heading_deg: float) -> float:
        """Distance in metres from a local point along a heading to the first building wall (inf if none)."""
        th = math.radians(heading_deg)
        dx, dy = math.sin(th), math.cos(th)
        r = 400.0
        ids = self.items_in_box(
            "bld", min(x, x + r * dx), min(y, y + r * dy), max(x, x + r * dx), max(y, y + r * dy)
        )
        best = math.inf
        b = self.bld
        for i in ids:
            # Slab test of a ray against an axis-aligned box.
            tmin, tmax = 0.0, math.inf
            for lo, hi, o, d in ((b["x0"][i], b["x1"][i], x, dx), (b["y0"][i], b["y1"][i], y, dy)):
                if abs(d) < 1e-12:
                    if not lo <= o <= hi:
                        tmin, tmax = 1.0, 0.0
                    continue
                t1, t2 = (lo - o) / d, (hi - o) / d
                tmin, tmax = max(tmin, min(t1, t2)), min(tmax, max(t1, t2))
            if tmin <= tmax:
                best = min(best, tmin)
        return best

    def aerial_centres(self, split: str) -> np.ndarray:
        """Centres (N, 2) in UTM of the aerial tiles covering a split district, on a regular grid."""
        x0, x1 = self.split_x[split]
        y0 = float((self.row_hi[0] + self.row_lo[1]) / 2)
        y1 = float((self.row_hi[-2] + self.row_lo[-1]) / 2)
        st = self.size.aerial_step_m
        # Evenly spaced from edge to edge, at most `st` apart (every camera is near a centre).
        xs = np.linspace(x0, x1, math.ceil((x1 - x0) / st) + 1)
        ys = np.linspace(y0, y1, math.ceil((y1 - y0) / st) + 1)
        xx, yy = np.meshgrid(xs, ys, indexing="xy")
        return np.round(self.local_to_utm(np.stack([xx.ravel(), yy.ravel()], 1)), 2)

    def summary(self) -> dict[str, Any]:
        """JSON-ready description of the layout (for city.json)."""
        return {
            "extent_m": [round(self.extent[0], 2), round(self.extent[1], 2)],
            "origin_utm": [float(self.origin_utm[0]), float(self.origin_utm[1])],
            "frame": self.frame.to_dict(),
            "zone_letter": self.zone_letter,
            "n_buildings": len(self.bld["x0"]),
            "n_trees": len(self.trees),
            "n_lamps": len(self.lamps),
            "split_utm_east_range": {
                s: [round(float(v + self.origin_utm[0]), 2) for v in self.split_x[s]] for s in SPLITS
            },
        }


# ---------------------------------------------------------------------- generation helpers
def _csr(cells: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    start = np.zeros(len(cells) + 1, dtype=np.int64)
    start[1:] = np.cumsum([len(c) for c in cells])
    items = np.array([i for c in cells for i in c], dtype=np.int64)
    return start, items


def _make_templates(rng: np.random.Generator, n: int, style: CityStyle | None = None) -> list[dict[str, Any]]:
    """Facade style templates shared by many buildings (the city's repetition)."""
    # A style picks among fewer entries with the same draws (the original city: all entries).
    walls = _WALL_PALETTE if style is None or style.walls is None else _WALL_PALETTE[list(style.walls)]
    designs = np.arange(12) if style is None or style.windows is None else np.asarray(style.windows)
    glass_share = 0.12 if style is None else style.glass_share
    out = []
    for _ in range(n):
        glass = rng.random() < glass_share  # a modern curtain-wall building
        wall = walls[rng.integers(len(walls))] * rng.uniform(0.9, 1.08)
        trim = np.clip(wall * rng.uniform(0.6, 1.35) + rng.uniform(-0.05, 0.05, 3), 0.05, 0.95)
        if rng.random() < 0.35:
            trim = np.array([0.9, 0.88, 0.84]) * rng.uniform(0.85, 1.0)
        out.append(
            {
                "wall": np.clip(wall, 0.05, 0.95),
                "trim": trim,
                "floor_h": rng.uniform(2.9, 3.8),
                "ground_h": rng.uniform(3.6, 5.0),
                "bay_w": rng.uniform(2.4, 4.6) if not glass else rng.uniform(1.5, 2.2),
                "win_w": rng.uniform(0.35, 0.65) if not glass else rng.uniform(0.88, 0.95),
                "win_h": rng.uniform(0.4, 0.65) if not glass else rng.uniform(0.75, 0.9),
                "win_design": int(designs[rng.integers(len(designs))])
                if not glass
                else 12 + int(rng.integers(0, 2)),
                "ground": int(rng.choice(3, p=[0.55, 0.33, 0.12])) if not glass else GROUND_LOBBY,
                "courses": bool(rng.random() < 0.5) and not glass,
                "roof": _ROOF_PALETTE[rng.integers(len(_ROOF_PALETTE))],
                "parapet": rng.uniform(0.4, 1.4),
            }
        )
    return out


_BLD_KEYS = (
    "x0", "y0", "x1", "y1", "height", "floors", "floor_h", "ground_h", "bay_w", "win_w", "win_h",
    "win_design", "ground", "courses", "sign", "parapet", "template",
)  # fmt: skip


def _make_buildings(
    rng: np.random.Generator,
    templates: list[dict[str, Any]],
    col_lo: np.ndarray,
    col_hi: np.ndarray,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
    block_type: np.ndarray,
    ncols: int,
    nrows: int,
    floors_shift: float = 0.0,
) -> dict[str, np.ndarray]:
    """Perimeter-block buildings for every normal block; arrays keyed by :data:`_BLD_KEYS`."""
    rows: list[dict[str, Any]] = []
    colours: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(x0: float, y0: float, x1: float, y1: float, tpl: int, floors: int, jitter: float) -> None:
        t = templates[tpl]
        h = t["ground_h"] + floors * t["floor_h"] + t["parapet"]
        rows.append(
            {
                "x0": x0, "y0": y0, "x1": x1, "y1": y1, "height": h, "floors": floors,
                "floor_h": t["floor_h"], "ground_h": t["ground_h"], "bay_w": t["bay_w"],
                "win_w": t["win_w"], "win_h": t["win_h"], "win_design": t["win_design"],
                "ground": t["ground"], "courses": t["courses"], "sign": int(rng.integers(1 << 30)),
                "parapet": t["parapet"], "template": tpl,
            }
        )  # fmt: skip
        awning = np.clip(
            rng.choice(
                [[0.6, 0.1, 0.1], [0.1, 0.3, 0.15], [0.15, 0.2, 0.5], [0.7, 0.55, 0.1], [0.3, 0.3, 0.3]]
            )
            * rng.uniform(0.8, 1.2),
            0,
            1,
        )
        colours.append((np.clip(t["wall"] * jitter, 0.03, 0.97), t["trim"], t["roof"], awning))

    for c in range(ncols):
        for r in range(nrows):
            if block_type[c, r] != BLOCK_TYPE_NORMAL:
                continue
            X0, X1 = col_lo[c] + SIDEWALK_M, col_hi[c] - SIDEWALK_M
            Y0, Y1 = row_lo[r] + SIDEWALK_M, row_hi[r] - SIDEWALK_M
            # District character: a taller core, lower edges.
            core = 1.0 - abs((c + 0.5) / ncols - 0.5) * 1.2
            base_floors = int(
                np.clip(rng.normal(2.5 + 5 * core + floors_shift, 1.2), 1, 10 + max(0, floors_shift))
            )
            d = float(min(rng.uniform(11, 18), (X1 - X0) / 2.2, (Y1 - Y0) / 2.2))
            strips = [
                ("x", X0, X1, Y0, Y0 + d),  # south side, frontage along x
                ("x", X0, X1, Y1 - d, Y1),  # north side
                ("y", Y0 + d, Y1 - d, X0, X0 + d),  # west side, frontage along y
                ("y", Y0 + d, Y1 - d, X1 - d, X1),  # east side
            ]
            for si, (ax, a0, a1, b0, b1) in enumerate(strips):
                a = a0
                run_left, run_tpl, run_w, run_floors = 0, 0, 0.0, 0
                while a1 - a > 4.0:
                    if run_left == 0:
                        if rng.random() < 0.3:  # a row of identical town houses
                            run_left = int(rng.integers(3, 7))
                            run_tpl = int(rng.integers(len(templates)))
                            run_w = float(rng.uniform(6, 10))
                            run_floors = int(np.clip(base_floors + rng.integers(-1, 2), 1, 12))
                        else:
                            run_left = 1
                            run_tpl = int(rng.integers(len(templates)))
                            run_w = float(rng.uniform(8, 30))
                            run_floors = int(np.clip(base_floors + rng.integers(-2, 4), 1, 14))
                    wlot = min(run_w, a1 - a)
                    if a1 - (a + wlot) < 5.0:
                        wlot = a1 - a
                    run_left -= 1
                    if rng.random() < 0.07 and run_left == 0:  # a gap: parking, passage
                        a += wlot
                        continue
                    depth = (b1 - b0) * rng.uniform(0.6, 1.0)
                    setback = rng.uniform(2.0, 4.0) if rng.random() < 0.1 else 0.0
                    depth = max(4.0, min(depth, b1 - b0 - setback))
                    # The street side of the strip is b0 for south/west strips, b1 for north/east.
                    if si in (0, 2):
                        q0, q1 = b0 + setback, b0 + setback + depth
                    else:
                        q0, q1 = b1 - setback - depth, b1 - setback
                    jit = rng.uniform(0.92, 1.08)
                    if ax == "x":
                        add(a, q0, a + wlot, q1, run_tpl, run_floors, jit)
                    else:
                        add(q0, a, q1, a + wlot, run_tpl, run_floors, jit)
                    a += wlot
            # Sometimes a tower in the courtyard shows over the street fronts.
            cx0, cx1, cy0, cy1 = X0 + d + 4, X1 - d - 4, Y0 + d + 4, Y1 - d - 4
            if cx1 - cx0 > 10 and cy1 - cy0 > 10 and rng.random() < 0.3:
                tw = min(cx1 - cx0, rng.uniform(12, 25))
                th = min(cy1 - cy0, rng.uniform(12, 25))
                tx = rng.uniform(cx0, cx1 - tw)
                ty = rng.uniform(cy0, cy1 - th)
                add(
                    tx,
                    ty,
                    tx + tw,
                    ty + th,
                    int(rng.integers(len(templates))),
                    int(rng.integers(10, 22)),
                    1.0,
                )
    out = {k: np.array([row[k] for row in rows]) for k in _BLD_KEYS}
    for k in ("x0", "y0", "x1", "y1", "height", "floor_h", "ground_h", "bay_w", "win_w", "win_h", "parapet"):
        out[k] = out[k].astype(np.float64)
    for k in ("floors", "win_design", "ground", "sign", "template"):
        out[k] = out[k].astype(np.int64)
    out["courses"] = out["courses"].astype(bool)
    out["wall_rgb"] = np.array([c[0] for c in colours], dtype=np.float32)
    out["trim_rgb"] = np.array([c[1] for c in colours], dtype=np.float32)
    out["roof_rgb"] = np.array([c[2] for c in colours], dtype=np.float32)
    out["awning_rgb"] = np.array([c[3] for c in colours], dtype=np.float32)
    return out


def _make_faces(bld: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Four walls per building: axis (0: x = const, 1: y = const), position, span, outward side.

    ``u`` along a face runs left to right as seen from outside; ``u0``/``usign`` give
    ``u = usign * (s - u0)`` for the coordinate ``s`` along the face.
    """
    b = bld
    n = len(b["x0"])
    # Order: south (y0, out -y), north (y1, +y), west (x0, -x), east (x1, +x).
    axis = np.tile(np.array([1, 1, 0, 0]), n)
    const = np.stack([b["y0"], b["y1"], b["x0"], b["x1"]], 1).ravel()
    lo = np.stack([b["x0"], b["x0"], b["y0"], b["y0"]], 1).ravel()
    hi = np.stack([b["x1"], b["x1"], b["y1"], b["y1"]], 1).ravel()
    side = np.tile(np.array([-1.0, 1.0, -1.0, 1.0]), n)
    # Seen from outside: south face left = west (u = x - x0); north face left = east (u = x1 - x);
    # west face left = north (u = y1 - y); east face left = south (u = y - y0).
    usign = np.tile(np.array([1.0, -1.0, -1.0, 1.0]), n)
    u0 = np.stack([b["x0"], b["x1"], b["y1"], b["y0"]], 1).ravel()
    length = hi - lo
    nbays = np.maximum(1, np.round(length / np.repeat(b["bay_w"], 4)))
    return {
        "bld": np.repeat(np.arange(n), 4),
        "axis": axis,
        "const": const,
        "lo": lo,
        "hi": hi,
        "side": side,
        "usign": usign,
        "u0": u0,
        "bay_w": (length / nbays).astype(np.float32),
        "dir": np.tile(np.arange(4), n),
    }


def _make_street_furniture(
    rng: np.random.Generator,
    col_lo: np.ndarray,
    col_hi: np.ndarray,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
    block_type: np.ndarray,
    street_x: np.ndarray,
    street_y: np.ndarray,
    tree_rate: float = 0.35,
) -> tuple[np.ndarray, np.ndarray]:
    """Trees (tree-lined streets, parks, plazas) and street lamps along sidewalks."""
    trees: list[tuple[float, float, int]] = []
    lamps: list[tuple[float, float]] = []
    ncols, nrows = block_type.shape
    inset = SIDEWALK_M * 0.45
    for c in range(ncols):
        for r in range(nrows):
            X0, X1, Y0, Y1 = col_lo[c], col_hi[c], row_lo[r], row_hi[r]
            edges = [
                ("x", Y0 + inset, X0, X1),
                ("x", Y1 - inset, X0, X1),
                ("y", X0 + inset, Y0, Y1),
                ("y", X1 - inset, Y0, Y1),
            ]
            for ax, fixed, a0, a1 in edges:
                # Lamps every ~25 m on every block edge, offset from the corners.
                for t in np.arange(a0 + 6.0, a1 - 3.0, 25.0):
                    lamps.append((t, fixed) if ax == "x" else (fixed, t))
                if rng.random() < tree_rate:  # a tree-lined edge
                    sp = rng.uniform(7, 11)
                    for t in np.arange(a0 + 4.0 + rng.uniform(0, 3), a1 - 3.0, sp):
                        v = int(rng.integers(0, 4))
                        trees.append((t, fixed, v) if ax == "x" else (fixed, t, v))
            if block_type[c, r] in (BLOCK_TYPE_PARK, BLOCK_TYPE_PLAZA):
                dens = 1 / 180.0 if block_type[c, r] == BLOCK_TYPE_PARK else 1 / 400.0
                n = rng.poisson((X1 - X0 - 8) * (Y1 - Y0 - 8) * dens)
                for _ in range(n):
                    trees.append(
                        (rng.uniform(X0 + 5, X1 - 5), rng.uniform(Y0 + 5, Y1 - 5), int(rng.integers(0, 4)))
                    )
    return np.array(trees, dtype=np.float64).reshape(-1, 3), np.array(lamps, dtype=np.float64).reshape(-1, 2)
