"""CPU renderer of the synthetic city: street-level perspective views and aerial tiles.

This module stays one file because the renderer's vectorised passes share per-column
ray-cast state and one set of hashing, noise, ground and finishing helpers (aerial tiles
reuse them too); splitting would scatter one algorithm.

Street views are ray cast per image column (a "2.5-D" renderer, as in early
first-person games): all walls are vertical and axis-aligned, so one horizontal
ray per column finds the walls it crosses, and each wall covers one vertical
span of that column. The ``K`` nearest front-facing walls per column are kept,
so taller buildings show above lower ones in front of them. Facades are
evaluated procedurally per pixel (floors, bays, window atlases, shop signs),
the ground is classified per pixel (asphalt, markings, sidewalks, grass) and the
sky is a gradient with clouds. Trees, street lamps and occluders are depth-tested
billboards. Everything is vectorised numpy over columns or pixels.

Camera model. ``heading`` is degrees clockwise from grid north; ``pitch`` is
degrees up. Pitch is rendered as a vertical shift of the horizon (a "y-shear"),
exact for the horizon and a close approximation for |pitch| <= 15 degrees;
verticals stay vertical. ``fov`` is the horizontal field of view; pixels are square.

Domains (:class:`Conditions`): ``database`` (fixed sun, the database's look),
``day`` (jittered sun, exposure, white balance, clouds), ``night`` (dark sky,
some windows lit, street lamps with light pools, sensor noise, low contrast),
``fog`` (blend towards grey with the ray-cast depth, visibility 30-90 m) and
``occluded`` (a day view with cars, pedestrians and poles in front).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from vgloc.data.synthetic.citymap import (
    BLOCK_TYPE_PARK,
    BLOCK_TYPE_PLAZA,
    DB_CAMERA_HEIGHT_M,
    GROUND_LOBBY,
    GROUND_RESIDENTIAL,
    GROUND_SHOP,
    SIDEWALK_M,
    CityMap,
)
from vgloc.data.synthetic.style import city_textures, style_rgb
from vgloc.data.synthetic.textures import (
    N_SIGNS,
    NOISE,
    SIGN_H,
    SIGN_W,
    SPRITE_H,
    SPRITE_W,
    WIN_H,
    WIN_W,
    Textures,
)

DEFAULT_IMAGE_SIZE: tuple[int, int] = (192, 256)  # (H, W)
DEFAULT_FOV_DEG = 80.0
DOMAINS: tuple[str, ...] = ("database", "day", "night", "fog", "occluded")
MAX_DIST_M = 400.0  # walls farther than this are not drawn (haze hides them anyway)
SPRITE_DIST_M = 150.0
LAYERS = 3  # walls kept per column


@dataclass(frozen=True)
class Occluder:
    """An object in front of the camera, placed relative to it.

    Attributes:
        kind: ``"car_side"``, ``"car_rear"``, ``"pedestrian"`` or ``"pole"``.
        forward: distance along the optical axis in metres.
        lateral_frac: horizontal position as a fraction of the half field of view (-1 left .. 1 right).
        tint: RGB colour of the tinted parts (car body, clothes, sign).
    """

    kind: str
    forward: float
    lateral_frac: float
    tint: tuple[float, float, float]


_OCCLUDER_SIZE = {  # (width, height) in metres
    "car_side": (4.4, 1.5),
    "car_rear": (1.8, 1.5),
    "pedestrian": (0.6, 1.75),
    "pole": (0.35, 4.5),
}


@dataclass(frozen=True)
class Conditions:
    """Lighting, weather and clutter of one rendering (see the module docstring for the domains).

    Attributes:
        sun_azimuth, sun_elevation: degrees (azimuth clockwise from north).
        exposure: multiplies the final colours.
        white_balance: per-channel gains.
        cloud_cover: 0 clear .. 1 overcast.
        cloud_shift: degrees the cloud layer is rotated (weather changes between visits).
        night: night lighting (dark ambient, lit windows, lamps).
        lit_fraction: share of windows lit at night.
        lit_salt: which windows are lit (varies between nights).
        noise_sigma: standard deviation of additive sensor noise (0..1 scale).
        contrast: contrast around mid-grey (< 1 flattens).
        fog_visibility_m: meteorological visibility (5 % contrast) in metres; inf for none.
        fog_rgb: the fog colour.
        haze_m: visibility of the mild everyday aerial perspective.
        occluders: objects drawn in front of the camera.
        noise_seed: seed of the sensor noise.
    """

    sun_azimuth: float = 150.0
    sun_elevation: float = 40.0
    exposure: float = 1.0
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    cloud_cover: float = 0.35
    cloud_shift: float = 0.0
    night: bool = False
    lit_fraction: float = 0.35
    lit_salt: int = 0
    noise_sigma: float = 0.0
    contrast: float = 1.0
    fog_visibility_m: float = math.inf
    fog_rgb: tuple[float, float, float] = (0.74, 0.76, 0.78)
    haze_m: float = 1500.0
    occluders: tuple[Occluder, ...] = ()
    noise_seed: int = 0

    @classmethod
    def sample(cls, domain: str, seed: int | np.random.Generator | list[int] = 0) -> Conditions:
        """Draw the conditions of one image of a domain.

        Args:
            domain: one of :data:`DOMAINS`.
            seed: an int, a list of ints (a SeedSequence entropy) or a Generator.

        Returns:
            The conditions; ``database`` ignores the seed (one fixed look).
        """
        if domain not in DOMAINS:
            raise ValueError(f"unknown domain {domain!r}; choose one of {list(DOMAINS)}")
        if domain == "database":
            return cls()
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        day = cls(
            sun_azimuth=float(rng.uniform(0, 360)),
            sun_elevation=float(rng.uniform(20, 60)),
            exposure=float(rng.uniform(0.85, 1.15)),
            white_balance=tuple(float(v) for v in rng.uniform(0.93, 1.07, 3)),  # type: ignore[arg-type]
            cloud_cover=float(rng.uniform(0.1, 0.7)),
            cloud_shift=float(rng.uniform(0, 360)),
            noise_seed=int(rng.integers(1 << 31)),
        )
        if domain == "day":
            return day
        if domain == "occluded":
            return replace(day, occluders=_sample_occluders(rng))
        if domain == "night":
            return replace(
                day,
                sun_elevation=-20.0,
                night=True,
                exposure=float(rng.uniform(0.9, 1.3)),
                white_balance=(1.08, 0.98, 0.85),
                cloud_cover=float(rng.uniform(0.0, 0.6)),
                lit_fraction=float(rng.uniform(0.2, 0.5)),
                lit_salt=int(rng.integers(1 << 30)),
                noise_sigma=float(rng.uniform(0.02, 0.045)),
                contrast=float(rng.uniform(0.6, 0.85)),
                haze_m=math.inf,
            )
        # fog
        g = float(rng.uniform(0.68, 0.82))
        return replace(
            day,
            cloud_cover=1.0,
            sun_elevation=float(rng.uniform(15, 35)),
            exposure=float(rng.uniform(0.9, 1.05)),
            fog_visibility_m=float(rng.uniform(30, 90)),
            fog_rgb=(g, g + 0.01, g + 0.025),
            contrast=float(rng.uniform(0.8, 0.95)),
        )


def _sample_occluders(rng: np.random.Generator) -> tuple[Occluder, ...]:
    out = []
    n = int(rng.integers(2, 5))
    for _ in range(n):
        kind = str(rng.choice(["car_side", "car_rear", "pedestrian", "pole"], p=[0.3, 0.15, 0.4, 0.15]))
        forward = {
            "car_side": rng.uniform(4.5, 9.0),
            "car_rear": rng.uniform(3.5, 8.0),
            "pedestrian": rng.uniform(2.0, 7.0),
            "pole": rng.uniform(1.5, 4.0),
        }[kind]
        t = rng.uniform(0.05, 0.95, 3)
        tint = (float(t[0]), float(t[1]), float(t[2]))
        out.append(Occluder(kind, float(forward), float(rng.uniform(-0.85, 0.85)), tint))
    return tuple(out)


def _hash(*ints: np.ndarray | int) -> np.ndarray:
    """A fast integer hash to [0, 1) (for per-window randomness without storing it)."""
    acc: np.ndarray = np.asarray(2166136261, dtype=np.uint32)
    with np.errstate(over="ignore"):  # wrap-around multiplication is the point of the hash
        for v in ints:
            a = np.asarray(v).astype(np.int64).astype(np.uint32)
            acc = (acc ^ a) * np.uint32(16777619)
            acc = acc ^ (acc >> np.uint32(13))
        acc = acc * np.uint32(0x5BD1E995)
        acc = acc ^ (acc >> np.uint32(15))
    return (acc >> np.uint32(8)).astype(np.float32) / np.float32(16777216.0)


def _check_view_args(size: tuple[int, int], fov_deg: float, pitch_deg: float, domain: str) -> tuple[int, int]:
    try:
        H, W = (int(size[0]), int(size[1]))
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"size must be (height, width), got {size!r}") from None
    if H < 8 or W < 8 or H > 4096 or W > 4096:
        raise ValueError(f"size must be (height, width) within 8..4096, got {size!r}")
    if not 10.0 <= float(fov_deg) <= 150.0:
        raise ValueError(f"fov_deg must be within 10..150 degrees, got {fov_deg!r}")
    if not -30.0 <= float(pitch_deg) <= 30.0:
        raise ValueError(f"pitch_deg must be within -30..30 degrees (y-shear camera), got {pitch_deg!r}")
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose one of {list(DOMAINS)}")
    return H, W


def render_view(
    city: CityMap,
    x: float,
    y: float,
    heading_deg: float,
    pitch_deg: float = 0.0,
    fov_deg: float = DEFAULT_FOV_DEG,
    size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    domain: str = "day",
    *,
    conditions: Conditions | None = None,
    seed: int | list[int] = 0,
    camera_height: float = DB_CAMERA_HEIGHT_M,
    return_depth: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Render a street-level perspective view.

    Args:
        city: the city.
        x, y: camera UTM easting and northing in metres (the city's frame, as in its file names).
        heading_deg: viewing direction, degrees clockwise from grid north.
        pitch_deg: degrees up (|pitch| <= 30, rendered as a horizon shift).
        fov_deg: horizontal field of view in degrees.
        size: (height, width) in pixels.
        domain: one of :data:`DOMAINS`; ignored when ``conditions`` is given.
        conditions: explicit lighting/weather/occluders; default ``Conditions.sample(domain, seed)``.
        seed: seed of the sampled conditions.
        camera_height: metres above the ground.
        return_depth: also return the per-pixel depth.

    Returns:
        The image, uint8 of shape (H, W, 3); with ``return_depth`` also the depth along
        the optical axis in metres, float32 (H, W), ``inf`` for sky.
    """
    H, W = _check_view_args(size, fov_deg, pitch_deg, domain)
    for name, v in (("x", x), ("y", y), ("heading_deg", heading_deg), ("camera_height", camera_height)):
        if not math.isfinite(float(v)):
            raise ValueError(f"{name} must be finite, got {v!r}")
    if not 0.3 <= float(camera_height) <= 100.0:
        raise ValueError(f"camera_height must be within 0.3..100 m, got {camera_height!r}")
    cond = conditions if conditions is not None else Conditions.sample(domain, seed)
    lx, ly = city.utm_to_local(float(x), float(y))
    img, depth = _render(
        city,
        float(lx),
        float(ly),
        float(heading_deg),
        float(pitch_deg),
        float(fov_deg),
        H,
        W,
        cond,
        float(camera_height),
    )
    out = _finish(img, depth, cond)
    return (out, depth) if return_depth else out


# ---------------------------------------------------------------------- lighting
def _sun_vector(cond: Conditions) -> tuple[float, float, float]:
    az, el = math.radians(cond.sun_azimuth), math.radians(cond.sun_elevation)
    return math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el)


def _face_light(cond: Conditions) -> np.ndarray:
    """Light intensity on the four wall orientations (south, north, west, east) and the ground."""
    sx, sy, sz = _sun_vector(cond)
    if cond.night:
        return np.full(5, 0.07, dtype=np.float32)
    sun = 0.65 * (1.0 - 0.6 * cond.cloud_cover)
    amb = 0.5 + 0.15 * cond.cloud_cover
    normals = np.array([[0, -1, 0], [0, 1, 0], [-1, 0, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float32)
    lam = np.maximum(0.0, normals @ np.array([sx, sy, sz], dtype=np.float32))
    return (amb + sun * lam).astype(np.float32)


def _sky_colours(cond: Conditions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(horizon, zenith, cloud) colours."""
    if cond.night:
        return (
            np.array([0.09, 0.075, 0.08], np.float32),
            np.array([0.01, 0.012, 0.035], np.float32),
            np.array([0.07, 0.06, 0.065], np.float32),
        )
    grey = cond.cloud_cover
    hor = np.array([0.78, 0.84, 0.92], np.float32) * (1 - 0.3 * grey) + 0.3 * grey * np.float32(0.8)
    zen = np.array([0.3, 0.5, 0.85], np.float32) * (1 - 0.5 * grey) + 0.5 * grey * np.float32(0.72)
    cloud = np.array([0.95, 0.95, 0.96], np.float32) * (1 - 0.3 * grey)
    return hor, zen, cloud


# ---------------------------------------------------------------------- planar colour helpers
# Colours are handled as three 1-D channel arrays (3, N): numpy's where/take on 1-D
# float32 arrays are several times faster than masked writes into (N, 3) arrays.
def _rgb(c: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    return np.asarray(c, dtype=np.float32).reshape(3, 1)


def _put(col: np.ndarray, m: np.ndarray, val: np.ndarray | float) -> None:
    """col[:, m] = val (val: scalar, (3, 1) or (3, N)), channel by channel."""
    val = np.asarray(val, dtype=np.float32)
    for c in range(3):
        v = val if val.ndim == 0 else val[c if val.shape[0] == 3 else 0]
        np.copyto(col[c], np.broadcast_to(v, col[c].shape), where=m)


def _noise_at(tex: Textures, a: np.ndarray, b: np.ndarray, scale: float, off: int = 0) -> np.ndarray:
    ia = (a * scale).astype(np.int32) & (NOISE - 1)
    ib = ((b * scale).astype(np.int32) + off) & (NOISE - 1)
    return np.take(tex.noise.ravel(), ia * NOISE + ib)


# ---------------------------------------------------------------------- ground albedo
def _below(a: np.ndarray, period: float, width: float) -> np.ndarray:
    """``(a mod period) < width`` without np.mod (several times slower on floats)."""
    q = a * np.float32(1.0 / period)
    return (q - np.floor(q)) < np.float32(width / period)


def ground_albedo(
    city: CityMap, tex: Textures, gx: np.ndarray, gy: np.ndarray, footprint: np.ndarray
) -> np.ndarray:
    """Colour of the ground at local points (asphalt, markings, sidewalks, courtyards, grass).

    Args:
        city: the city.
        tex: its textures.
        gx, gy: (N,) local metres.
        footprint: (N,) metres per pixel there (fine markings fade out beyond ~0.3 m/px).

    Returns:
        (3, N) float32 colours (channels first).
    """
    gx = gx.astype(np.float32, copy=False)
    gy = gy.astype(np.float32, copy=False)
    clo, chi = city.f32("city", "col_lo"), city.f32("city", "col_hi")
    rlo, rhi = city.f32("city", "row_lo"), city.f32("city", "row_hi")
    nc, nr = len(clo), len(rlo)
    ex = np.stack([clo, chi], 1).ravel()
    ey = np.stack([rlo, rhi], 1).ravel()
    kx = np.searchsorted(ex, gx, side="right")
    ky = np.searchsorted(ey, gy, side="right")
    in_col = (kx & 1) == 1
    in_row = (ky & 1) == 1
    outside = (kx == 0) | (kx == len(ex)) | (ky == 0) | (ky == len(ey))
    noise = _noise_at(tex, gy, gx, 3.0)
    col = _rgb(style_rgb(city, (0.3, 0.3, 0.32), "ground")) * (0.92 + 0.08 * noise)[None, :]
    # Streets: dashed centre lines and zebra crossings near intersections (only street pixels).
    st = np.nonzero(~(in_col & in_row) & ~outside)[0]
    if st.size:
        sx, sy, kxs, kys = gx[st], gy[st], kx[st], ky[st]
        ns = ~in_col[st] & in_row[st]  # a north-south street segment
        ew = in_col[st] & ~in_row[st]
        j = np.clip(kxs >> 1, 1, nc - 1)
        xc = 0.5 * (np.take(chi, j - 1) + np.take(clo, j))
        i = np.clip(kys >> 1, 1, nr - 1)
        yc = 0.5 * (np.take(rhi, i - 1) + np.take(rlo, i))
        ci = np.clip((kxs - 1) >> 1, 0, nc - 1)
        ri = np.clip((kys - 1) >> 1, 0, nr - 1)
        d_row = np.minimum(np.abs(sy - np.take(rlo, ri)), np.abs(sy - np.take(rhi, ri)))
        d_col = np.minimum(np.abs(sx - np.take(clo, ci)), np.abs(sx - np.take(chi, ci)))
        paint = (ns & (np.abs(sx - xc) < 0.12) & _below(sy, 6.0, 3.0)) | (
            ew & (np.abs(sy - yc) < 0.12) & _below(sx, 6.0, 3.0)
        )
        paint |= ns & (d_row > 1.0) & (d_row < 4.0) & _below(sx - xc, 1.2, 0.6)
        paint |= ew & (d_col > 1.0) & (d_col < 4.0) & _below(sy - yc, 1.2, 0.6)
        # Markings fade when they get thinner than a pixel.
        a = paint * np.clip(1.6 - np.take(footprint, st) * 4.0, 0.0, 1.0)
        col[:, st] += (np.float32(0.85) - col[:, st]) * a[None, :]
    # Blocks: sidewalk ring, then courtyard / park / plaza (only block pixels).
    bk = np.nonzero(in_col & in_row & ~outside)[0]
    if bk.size:
        bx, by = gx[bk], gy[bk]
        ci = (kx[bk] - 1) >> 1
        ri = (ky[bk] - 1) >> 1
        c_lo, c_hi, r_lo, r_hi = np.take(clo, ci), np.take(chi, ci), np.take(rlo, ri), np.take(rhi, ri)
        btype = np.take(city.block_type.ravel(), ci * nr + ri)
        d_edge = np.minimum(np.minimum(bx - c_lo, c_hi - bx), np.minimum(by - r_lo, r_hi - by))
        side = (d_edge < SIDEWALK_M) & (btype != BLOCK_TYPE_PARK)
        joints = (_below(bx, 1.5, 0.08) | _below(by, 1.5, 0.08)) * np.clip(
            1.6 - np.take(footprint, bk) * 4.0, 0, 1
        )
        nb = np.take(noise, bk)
        pave = (0.95 + 0.05 * nb - 0.08 * joints)[None, :]
        grass = (btype == BLOCK_TYPE_PARK) & ~side
        path = grass & ((np.abs(bx - 0.5 * (c_lo + c_hi)) < 1.5) | (np.abs(by - 0.5 * (r_lo + r_hi)) < 1.5))
        out = _rgb((0.45, 0.42, 0.38)) * np.ones((1, bk.size), np.float32)  # courtyards
        _put(out, side, _rgb(style_rgb(city, (0.6, 0.58, 0.55), "ground")) * pave)
        _put(out, side & (d_edge < 0.3), 0.72)  # kerb stones
        _put(out, ~side & (btype == BLOCK_TYPE_PLAZA), _rgb((0.68, 0.64, 0.58)) * pave)
        _put(out, grass, _rgb(style_rgb(city, (0.25, 0.42, 0.17), "foliage")) * (0.85 + 0.15 * nb)[None, :])
        _put(out, path, _rgb((0.66, 0.6, 0.5)))
        col[:, bk] = out
    _put(col, outside, _rgb(style_rgb(city, (0.25, 0.42, 0.17), "foliage")) * (0.85 + 0.15 * noise)[None, :])
    return col


# ---------------------------------------------------------------------- walls
def _shade_walls(
    city: CityMap,
    tex: Textures,
    bid: np.ndarray,
    fid: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    z: np.ndarray,
    f: float,
    cond: Conditions,
    light: np.ndarray,
) -> np.ndarray:
    """Facade colours (3, N) at wall points (u metres along the face from its left edge, v metres up).

    The upper floors and the ground floor are shaded on their own pixel subsets (each
    about half of the wall pixels or less), which halves the work of one full pass.
    """

    def b(key: str, idx: np.ndarray) -> np.ndarray:
        return np.take(city.f32("bld", key), idx)

    def brgb(key: str, idx: np.ndarray) -> np.ndarray:
        tab = city._cache.get(f"rgbT.{key}")
        if tab is None:
            tab = city._cache[f"rgbT.{key}"] = np.ascontiguousarray(city.bld[key].T, dtype=np.float32)
        return np.stack([np.take(tab[c], idx) for c in range(3)])

    n = bid.shape[0]
    gh, h, par = b("ground_h", bid), b("height", bid), b("parapet", bid)
    bw = np.take(city.f32("faces", "bay_w"), fid)
    flen = np.take(city.f32("faces", "hi"), fid) - np.take(city.f32("faces", "lo"), fid)
    wall = brgb("wall_rgb", bid)
    noise = _noise_at(tex, v, u, 4.0)
    col = wall * (0.88 + 0.12 * noise)[None, :]
    glass_kind = np.zeros(n, dtype=np.int8)  # 1 lit-able pane, 2 shop window, 3 sign, 4 window frame
    bay_f = np.floor(u / bw)
    ss = u / bw - bay_f
    trim_m = (v >= h - par) | ((v >= gh - 0.3) & (v < gh))
    fl_i = np.full(n, -1, dtype=np.int64)
    fade = np.zeros(n, dtype=np.float32)

    # ---- upper floors: floors x bays grid, a window per cell, optional string courses.
    up = np.nonzero((v >= gh) & (v < h - par))[0]
    if up.size:
        bu = np.take(bid, up)
        fh, ww, wh = b("floor_h", bu), b("win_w", bu), b("win_h", bu)
        vv = (np.take(v, up) - np.take(gh, up)) / fh
        fi = np.floor(vv)
        tt = vv - fi
        wx = (np.take(ss, up) - 0.5) / ww + 0.5
        wy = (tt - 0.55) / wh + 0.5
        inwin = (wx >= 0) & (wx < 1) & (wy >= 0) & (wy < 1)
        course = (b("courses", bu) > 0) & (tt < 0.07) & ~inwin
        trim_m[up[course]] = True
        fl_i[up] = fi.astype(np.int64)
        # Anti-aliasing: far facades fade to their mean colour instead of shimmering.
        feat = np.minimum(ww * np.take(bw, up), wh * fh)
        fade[up] = np.clip(2.5 * (np.take(z, up) / f) / feat - 0.6, 0.0, 1.0)
        _window_lookup(city, tex, col, glass_kind, up[inwin], bu[inwin], wx[inwin], wy[inwin])
    trim = brgb("trim_rgb", bid)
    _put(col, trim_m, trim * np.where(v >= h - par, 0.92, 1.0).astype(np.float32)[None, :])

    # ---- ground floor by type: shop (sign, awning, windows, doors), residential, lobby.
    lo = np.nonzero(v < gh - 0.3)[0]
    if lo.size:
        bl = np.take(bid, lo)
        gtype = np.take(city.bld["ground"], bl)
        vl, ul, sl, ghl, fl = (np.take(a, lo) for a in (v, u, ss, gh, flen))
        sign_seed = np.take(city.bld["sign"], bl)
        kind = np.zeros(lo.size, dtype=np.int8)  # 0 wall, 1 door, 2 glass
        # Residential: windows like the upper floors and a door in the middle bay.
        res = gtype == GROUND_RESIDENTIAL
        nb = np.maximum(1.0, np.round(fl / np.take(bw, lo)))
        door = res & (np.take(bay_f, lo) == np.floor(nb / 2)) & (np.abs(sl - 0.5) < 0.22) & (vl < 2.4)
        wwl = b("win_w", bl)
        wx = (sl - 0.5) / wwl + 0.5
        rw = res & ~door & (vl > 1.0) & (vl < ghl - 0.7) & (wx >= 0) & (wx < 1)
        wy = (vl - 1.0) / np.maximum(ghl - 1.7, 0.5)
        _window_lookup(city, tex, col, glass_kind, lo[rw], bl[rw], wx[rw], wy[rw])
        # Shops.
        shop = gtype == GROUND_SHOP
        sign_lo, sign_hi = ghl - 1.25, ghl - 0.4
        in_face = (ul > 0.4) & (ul < fl - 0.4)
        in_sign = shop & (vl >= sign_lo) & (vl < sign_hi) & in_face
        awn = shop & (vl >= ghl - 1.75) & (vl < sign_lo) & in_face
        awn &= _hash(sign_seed, 3) < 0.4
        bay_i = np.take(bay_f, lo).astype(np.int64)
        sdoor = shop & (np.abs(sl - 0.5) < 0.16) & (vl < 2.3)
        sdoor &= _hash(sign_seed, bay_i) < 0.3
        swin = shop & ~awn & ~sdoor & (vl > 0.45) & (vl < sign_lo - 0.15) & (np.abs(sl - 0.5) < 0.42)
        lobby = (gtype == GROUND_LOBBY) & (vl > 0.2) & (np.abs(sl - 0.5) < 0.46)
        kind[door | sdoor] = 1
        kind[swin | lobby] = 2
        # Dark glass with a display behind (coloured blobs from the noise texture).
        g = np.nonzero(kind == 2)[0]
        if g.size:
            disp = np.clip(_noise_at(tex, vl[g], ul[g], 2.0, 17), 0, 1)
            base = np.where(lobby[g][None, :], _rgb((0.2, 0.3, 0.32)), _rgb((0.14, 0.15, 0.17)))
            col[:, lo[g]] = base + 0.12 * disp[None, :] * wall[:, lo[g]]
            glass_kind[lo[g]] = 2
        d = np.nonzero(kind == 1)[0]
        col[:, lo[d]] = _rgb((0.2, 0.14, 0.1))
        a = np.nonzero(awn)[0]
        if a.size:
            stripes = np.where(np.mod(ul[a], 1.0) < 0.5, 1.0, 0.75).astype(np.float32)
            col[:, lo[a]] = brgb("awning_rgb", bl[a]) * stripes[None, :]
        s = np.nonzero(in_sign)[0]
        if s.size:
            seg_n = np.maximum(1.0, np.round((fl[s] - 0.8) / 7.0))
            seg_len = (fl[s] - 0.8) / seg_n
            us = ul[s] - 0.4
            seg = np.floor(us / seg_len)
            sid = (sign_seed[s] + seg.astype(np.int64) * 7919) % N_SIGNS
            sy = np.clip(((sign_hi[s] - vl[s]) / 0.85 * SIGN_H).astype(np.int64), 0, SIGN_H - 1)
            sx = np.clip(((us / seg_len - seg) * SIGN_W).astype(np.int64), 0, SIGN_W - 1)
            flat = (sid * SIGN_H + sy) * SIGN_W + sx
            for c in range(3):
                col[c][lo[s]] = np.take(tex.sign_rgb[..., c].ravel(), flat)
            glass_kind[lo[s]] = 3
    # Building edges: a dark seam where facades meet.
    col *= np.where((u < 0.12) | (u > flen - 0.12), 0.7, 1.0).astype(np.float32)[None, :]

    # ---- lighting
    lf = np.take(light, np.take(city.faces["dir"], fid))
    ao = 1.0 - 0.25 * np.exp(-v / 1.5)  # ambient occlusion near the ground
    if not cond.night:
        gain = np.where(glass_kind > 0, 0.85 + 0.25 * (lf - 0.5), lf * ao)  # glass mirrors the sky
        lit = col * gain[None, :]
        fd = np.nonzero(fade > 0)[0]
        if fd.size:
            bf = np.take(bid, fd)
            wm = tex.win_mean[np.take(city.bld["win_design"], bf)].T
            aw = (b("win_w", bf) * b("win_h", bf))[None, :]
            mean = wall[:, fd] * (1 - aw) * np.take(lf * ao, fd)[None, :] + wm * aw
            lit[:, fd] += (mean - lit[:, fd]) * fade[fd][None, :]
        return lit
    # Night: dark ambient; lamps light the lowest metres; some windows glow.
    bay_all = bay_f.astype(np.int64)
    lit = col * (0.09 + 0.22 * np.exp(-v / 3.0))[None, :]
    pane = np.nonzero(glass_kind == 1)[0]
    if pane.size:
        bp, fp, flp, byp = bid[pane], fid[pane], fl_i[pane], bay_all[pane]
        on = _hash(bp, fp, flp, byp, cond.lit_salt) < cond.lit_fraction
        warm = np.where(
            (_hash(bp, flp, byp, 11) < 0.7)[None, :], _rgb((1.0, 0.78, 0.45)), _rgb((0.75, 0.85, 1.0))
        )
        lit[:, pane] = np.where(on[None, :], warm * 0.85, col[:, pane] * 0.03)
    shopw = np.nonzero(glass_kind == 2)[0]
    if shopw.size:
        on = _hash(bid[shopw], fid[shopw], bay_all[shopw], cond.lit_salt, 7) < 0.6
        cs = col[:, shopw]
        lit[:, shopw] = np.where(on[None, :], _rgb((1.0, 0.8, 0.5)) * (0.6 + 0.3 * cs), lit[:, shopw])
    sg = np.nonzero(glass_kind == 3)[0]
    if sg.size:
        on = _hash(np.take(city.bld["sign"], bid[sg]), cond.lit_salt, 5) < 0.5
        lit[:, sg] = np.where(on[None, :], col[:, sg] * 0.9, lit[:, sg])
    return lit


def _window_lookup(
    city: CityMap,
    tex: Textures,
    col: np.ndarray,
    glass_kind: np.ndarray,
    pix: np.ndarray,
    bids: np.ndarray,
    wx: np.ndarray,
    wy: np.ndarray,
) -> None:
    """Write window-atlas texels into ``col`` at pixels ``pix`` (window-local wx, wy in [0, 1))."""
    if not pix.size:
        return
    d = np.take(city.bld["win_design"], bids)
    ty = np.clip(((1.0 - wy) * WIN_H).astype(np.int64), 0, WIN_H - 1)
    tx = np.clip((wx * WIN_W).astype(np.int64), 0, WIN_W - 1)
    flat = (d * WIN_H + ty) * WIN_W + tx
    keep = np.take(tex.win_alpha.ravel(), flat) > 0.5  # arched tops show the wall
    pix, flat = pix[keep], flat[keep]
    for c in range(3):
        col[c][pix] = np.take(tex.win_rgb[..., c].ravel(), flat)
    glass_kind[pix] = np.where(np.take(tex.win_glass.ravel(), flat) > 0.5, 1, 4)


# ---------------------------------------------------------------------- main renderer
def _render(
    city: CityMap,
    x: float,
    y: float,
    heading: float,
    pitch: float,
    fov: float,
    H: int,
    W: int,
    cond: Conditions,
    cam_h: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Render into a float image (H, W, 3) in [0, ~1] and a depth map (H, W) (local coordinates)."""
    tex = city_textures(city)  # the seed's atlases, with the style's foliage and signs
    th = math.radians(heading)
    sin_h, cos_h = math.sin(th), math.cos(th)
    half = math.radians(fov) / 2
    f = (W / 2) / math.tan(half)
    hr = H / 2 + f * math.tan(math.radians(pitch))  # horizon row (continuous pixel coordinate)
    cols = np.arange(W, dtype=np.float64) + 0.5 - W / 2
    alpha = np.arctan(cols / f)
    ang = th + alpha
    dx, dy = np.sin(ang), np.cos(ang)
    cosa = np.cos(alpha)
    light = _face_light(cond)

    # ---- candidate buildings in the view wedge
    R = MAX_DIST_M
    pts = np.array(
        [[x, y]] + [[x + R * math.sin(th + a), y + R * math.cos(th + a)] for a in np.linspace(-half, half, 5)]
    )
    ids = city.items_in_box("bld", pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())
    B = city.bld
    x0, x1, y0, y1 = B["x0"][ids], B["x1"][ids], B["y0"][ids], B["y1"][ids]
    # Cull boxes entirely outside the left/right frustum planes or behind the camera.
    cx_ = np.stack([x0, x1, x0, x1], 1) - x
    cy_ = np.stack([y0, y0, y1, y1], 1) - y
    nl = (-math.cos(th - half), math.sin(th - half))  # left plane normal (points outward)
    nr = (math.cos(th + half), -math.sin(th + half))
    out_l = ((cx_ * nl[0] + cy_ * nl[1]) > 0).all(1)
    out_r = ((cx_ * nr[0] + cy_ * nr[1]) > 0).all(1)
    behind = ((cx_ * sin_h + cy_ * cos_h) < 0).all(1)
    keep = ~(out_l | out_r | behind)
    ids, x0, x1, y0, y1 = ids[keep], x0[keep], x1[keep], y0[keep], y1[keep]

    # Front faces only: the west face when the camera is west of the box, etc.
    fxm = (x < x0) | (x > x1)
    fx_id = (4 * ids + np.where(x < x0, 2, 3))[fxm]
    fx_c = np.where(x < x0, x0, x1)[fxm]
    fym = (y < y0) | (y > y1)
    fy_id = (4 * ids + np.where(y < y0, 0, 1))[fym]
    fy_c = np.where(y < y0, y0, y1)[fym]
    F = city.faces
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_dx = 1.0 / np.where(np.abs(dx) < 1e-9, 1e-9, dx)
        inv_dy = 1.0 / np.where(np.abs(dy) < 1e-9, 1e-9, dy)
        tx = (fx_c[None, :] - x) * inv_dx[:, None]  # (W, nfx)
        sx = y + tx * dy[:, None]
        okx = (tx > 0.05) & (sx >= F["lo"][fx_id][None, :]) & (sx <= F["hi"][fx_id][None, :])
        ty = (fy_c[None, :] - y) * inv_dy[:, None]
        sy = x + ty * dx[:, None]
        oky = (ty > 0.05) & (sy >= F["lo"][fy_id][None, :]) & (sy <= F["hi"][fy_id][None, :])
    T = np.concatenate([np.where(okx, tx, np.inf), np.where(oky, ty, np.inf)], 1)
    S = np.concatenate([sx, sy], 1)
    face_ids = np.concatenate([fx_id, fy_id])
    rows_ = np.arange(W)
    lay_t = np.full((LAYERS, W), np.inf)
    lay_s = np.zeros((LAYERS, W))
    lay_f = np.zeros((LAYERS, W), dtype=np.int64)
    if T.shape[1]:
        for k in range(min(LAYERS, T.shape[1])):
            jmin = T.argmin(1)
            lay_t[k] = T[rows_, jmin]
            lay_s[k] = S[rows_, jmin]
            lay_f[k] = face_ids[jmin]
            T[rows_, jmin] = np.inf
    valid = np.isfinite(lay_t) & (lay_t < R)
    lay_z = np.where(valid, lay_t * cosa[None, :], np.inf)
    lay_b = lay_f // 4
    lay_h = np.where(valid, B["height"][lay_b], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        top = np.where(valid, hr - f * (lay_h - cam_h) / lay_z, np.inf)
        bot = np.where(valid, hr + f * cam_h / lay_z, -np.inf)
    rr = (np.arange(H, dtype=np.float64) + 0.5)[:, None]
    owner = np.full((H, W), -1, dtype=np.int8)
    for k in range(LAYERS - 1, -1, -1):
        m = (rr >= top[k][None, :]) & (rr < bot[k][None, :])
        owner[m] = k

    imgp = np.empty((3, H * W), dtype=np.float32)  # channels first while shading (see _put)
    zbuf = np.empty(H * W, dtype=np.float32)
    cls = owner.ravel()
    rows_of = np.repeat(np.arange(H, dtype=np.float32) + 0.5, W)

    # ---- walls
    pix = np.nonzero(cls >= 0)[0]
    if pix.size:
        ix = pix % W
        key = cls[pix].astype(np.int64) * W + ix
        z = np.take(lay_z.ravel(), key).astype(np.float32)
        fid = np.take(lay_f.ravel(), key)
        u = (np.take(F["usign"], fid) * (np.take(lay_s.ravel(), key) - np.take(F["u0"], fid))).astype(
            np.float32
        )
        v = cam_h + (np.float32(hr) - np.take(rows_of, pix)) * z / np.float32(f)
        imgp[:, pix] = _shade_walls(city, tex, fid // 4, fid, u, v, z, f, cond, light)
        zbuf[pix] = z

    # ---- ground
    pix = np.nonzero((cls < 0) & (rows_of > hr + 0.5))[0]
    if pix.size:
        zg = np.float32(cam_h * f) / (np.take(rows_of, pix) - np.float32(hr))
        lat = ((pix % W).astype(np.float32) + np.float32(0.5 - W / 2)) * zg / np.float32(f)
        wx_ = x + zg * sin_h + lat * cos_h
        wy_ = y + zg * cos_h - lat * sin_h
        g = ground_albedo(city, tex, wx_, wy_, zg / np.float32(f))
        g *= light[4] if not cond.night else np.float32(0.05)
        if cond.night:
            g += _lamp_pools(city, x, y, sin_h, cos_h, wx_, wy_)
        _put(g, zg > 2000, _sky_colours(cond)[0].reshape(3, 1))
        imgp[:, pix] = g
        zbuf[pix] = zg

    # ---- sky
    pix = np.nonzero((cls < 0) & (rows_of <= hr + 0.5))[0]
    if pix.size:
        elev = np.arctan((np.float32(hr) - np.take(rows_of, pix)) / np.float32(f))
        hor, zen, cloud_c = _sky_colours(cond)
        te = np.clip(elev / (math.pi / 2), 0, 1).astype(np.float32) ** 0.6
        col = hor[:, None] * (1 - te[None, :]) + zen[:, None] * te[None, :]
        az = (np.degrees(ang.astype(np.float32)) + np.float32(cond.cloud_shift)) % 360.0
        ch, cw = tex.cloud.shape
        cx = np.take((az / 360.0 * cw).astype(np.int64) % cw, pix % W)
        cy = np.clip((te * (ch - 1)).astype(np.int64), 0, ch - 1)
        dens = np.clip((np.take(tex.cloud.ravel(), cy * cw + cx) - (1 - cond.cloud_cover)) * 3.0, 0, 1)
        dens *= np.clip(elev * 8, 0, 1)
        col += (cloud_c[:, None] - col) * dens[None, :]
        imgp[:, pix] = col
        zbuf[pix] = np.inf
    img = np.ascontiguousarray(imgp.reshape(3, H, W).transpose(1, 2, 0))
    depth = zbuf.reshape(H, W)

    # ---- billboards: trees, lamps, occluders (far to near, depth-tested per pixel)
    sprites = _visible_sprites(city, x, y, sin_h, cos_h, half)
    for occ in cond.occluders:
        w_m, h_m = _OCCLUDER_SIZE[occ.kind]
        lateral = occ.lateral_frac * occ.forward * math.tan(half)
        sprites.append((occ.forward, lateral, w_m, h_m, occ.kind, occ.tint))
    sprites.sort(key=lambda s: -s[0])
    for zs, lat_s, w_m, h_m, name, tint in sprites:
        _draw_sprite(img, depth, tex, name, zs, lat_s, w_m, h_m, tint, f, hr, cam_h, cond)
    return img, depth


def _visible_sprites(
    city: CityMap, x: float, y: float, sin_h: float, cos_h: float, half: float
) -> list[tuple[float, float, float, float, str, tuple[float, float, float] | None]]:
    out: list[tuple[float, float, float, float, str, tuple[float, float, float] | None]] = []
    R = SPRITE_DIST_M
    for kind, arr in (("trees", city.trees), ("lamps", city.lamps)):
        ids = city.items_in_box(kind, x - R, y - R, x + R, y + R)
        if not ids.size:
            continue
        px = arr[ids, 0] - x
        py = arr[ids, 1] - y
        zf = px * sin_h + py * cos_h
        lat = px * cos_h - py * sin_h
        ok = (zf > 0.8) & (zf < R) & (np.abs(lat) < zf * math.tan(half) + 4.0)
        for i in np.nonzero(ok)[0]:
            if kind == "trees":
                v = int(arr[ids[i], 2])
                s = 0.85 + 0.3 * float(_hash(int(ids[i]), 77))
                out.append(
                    (float(zf[i]), float(lat[i]), 5.0 * s, (8.0 if v != 3 else 10.0) * s, f"tree{v}", None)
                )
            else:
                out.append((float(zf[i]), float(lat[i]), 1.8, 6.0, "lamp", None))
    return out


def _draw_sprite(
    img: np.ndarray,
    depth: np.ndarray,
    tex: Textures,
    name: str,
    z: float,
    lateral: float,
    w_m: float,
    h_m: float,
    tint: tuple[float, float, float] | None,
    f: float,
    hr: float,
    cam_h: float,
    cond: Conditions,
) -> None:
    H, W = depth.shape
    cx = W / 2 + f * lateral / z
    wpx = f * w_m / z
    left = cx - wpx / 2
    top = hr - f * (h_m - cam_h) / z
    bot = hr + f * cam_h / z
    c0, c1 = max(0, math.floor(left)), min(W, math.ceil(left + wpx))
    r0, r1 = max(0, math.floor(top)), min(H, math.ceil(bot))
    if c0 >= c1 or r0 >= r1 or wpx < 0.7:
        return
    in_front = depth[r0:r1, c0:c1] > z
    if not in_front.any():  # hidden behind walls: skip the texture look-ups
        return
    rgb, a, tm, em = tex.sprites[name]
    sxi = np.clip(((np.arange(c0, c1) + 0.5 - left) / wpx * SPRITE_W).astype(np.int64), 0, SPRITE_W - 1)
    syi = np.clip(
        ((np.arange(r0, r1) + 0.5 - top) / (bot - top) * SPRITE_H).astype(np.int64), 0, SPRITE_H - 1
    )
    alpha = a[syi[:, None], sxi[None, :]]
    m = (alpha > 0.5) & in_front
    if not m.any():
        return
    col = rgb[syi[:, None], sxi[None, :]]
    if tint is not None:
        t = tm[syi[:, None], sxi[None, :]][..., None]
        col = col * (1 - t) + col * t * np.asarray(tint, np.float32)
    if cond.night:
        e = em[syi[:, None], sxi[None, :]][..., None]
        col = col * 0.06 * (1 - e) + e * np.array([1.0, 0.9, 0.65], np.float32)
    else:
        col = col * _face_light(cond)[0:4].mean()
    blk = img[r0:r1, c0:c1]
    blk[m] = col[m]
    depth[r0:r1, c0:c1][m] = z


def _lamp_pools(
    city: CityMap, x: float, y: float, sin_h: float, cos_h: float, gx: np.ndarray, gy: np.ndarray
) -> np.ndarray:
    """Warm light pools on the ground under street lamps (night)."""
    out = np.zeros((3, gx.shape[0]), dtype=np.float32)
    R = 70.0
    ids = city.items_in_box("lamps", x - R, y - R, x + R, y + R)
    if not ids.size:
        return out
    p = city.lamps[ids]
    zf = (p[:, 0] - x) * sin_h + (p[:, 1] - y) * cos_h
    p = p[(zf > -8) & (np.hypot(p[:, 0] - x, p[:, 1] - y) < R)]
    acc = np.zeros(gx.shape[0], dtype=np.float32)
    for lx, ly in p:
        d2 = ((gx - lx) ** 2 + (gy - ly) ** 2).astype(np.float32)
        acc += np.exp(-d2 / np.float32(2 * 3.5**2))
    out += np.minimum(acc, 1.0)[None, :] * _rgb((0.2, 0.15, 0.08))
    return out


def _finish(img: np.ndarray, depth: np.ndarray, cond: Conditions) -> np.ndarray:
    """Haze/fog by depth, exposure, white balance, contrast, sensor noise; to uint8."""
    hor = _sky_colours(cond)[0]
    if math.isfinite(cond.haze_m):
        a = 1.0 - np.exp(-3.0 * np.minimum(depth, 1e6) / cond.haze_m)
        img += (hor[None, None, :] - img) * a[..., None] * 0.6
    if math.isfinite(cond.fog_visibility_m):
        a = 1.0 - np.exp(-3.0 * np.minimum(depth, 1e6) / cond.fog_visibility_m)
        img += (np.asarray(cond.fog_rgb, np.float32)[None, None, :] - img) * a[..., None]
    img *= np.float32(cond.exposure) * np.asarray(cond.white_balance, np.float32)[None, None, :]
    if cond.contrast != 1.0:
        mid = np.float32(0.5 if not cond.night else 0.12)
        img[:] = mid + (img - mid) * np.float32(cond.contrast)
    if cond.noise_sigma > 0:
        rng = np.random.default_rng(cond.noise_seed)
        H, W = depth.shape
        lum = rng.standard_normal((H, W), dtype=np.float32)[..., None]
        chroma = rng.standard_normal((H, W, 3), dtype=np.float32)
        img += np.float32(cond.noise_sigma) * (0.8 * lum + 0.45 * chroma)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------------- aerial
def render_aerial(
    city: CityMap,
    x: float,
    y: float,
    extent_m: float = 96.0,
    size: int = 256,
    conditions: Conditions | None = None,
) -> np.ndarray:
    """Render a north-up orthographic aerial tile (roofs, shadows, streets, trees).

    Args:
        city: the city.
        x, y: UTM easting/northing of the tile centre (the city's frame).
        extent_m: ground width (= height) of the tile in metres.
        size: tile width (= height) in pixels.
        conditions: lighting (sun direction for shadows); default the database's.

    Returns:
        uint8 image of shape (size, size, 3), row 0 to the north.
    """
    if not (isinstance(size, (int, np.integer)) and 8 <= int(size) <= 4096):
        raise ValueError(f"size must be an int within 8..4096, got {size!r}")
    if not (math.isfinite(extent_m) and extent_m > 0):
        raise ValueError(f"extent_m must be a positive number, got {extent_m!r}")
    cond = conditions if conditions is not None else Conditions()
    tex = city_textures(city)  # the seed's atlases, with the style's foliage and signs
    S = int(size)
    gsd = extent_m / S
    cx, cy = city.utm_to_local(float(x), float(y))
    xs = (cx + (np.arange(S) + 0.5 - S / 2) * gsd).astype(np.float32)
    ys = (cy - (np.arange(S) + 0.5 - S / 2) * gsd).astype(np.float32)
    GX = np.broadcast_to(xs[None, :], (S, S)).ravel()
    GY = np.broadcast_to(ys[:, None], (S, S)).ravel()
    img = np.ascontiguousarray(
        ground_albedo(city, tex, GX, GY, np.full(GX.shape, gsd, np.float32)).T
    ).reshape(S, S, 3)
    light = _face_light(cond)
    img *= light[4]
    sx, sy, _sz = _sun_vector(cond)
    # Shadows fall away from the sun: length = height / tan(elevation).
    k = 1.0 / max(math.tan(math.radians(max(cond.sun_elevation, 5.0))), 0.2)
    shx, shy = -sx / max(math.hypot(sx, sy), 1e-6) * k, -sy / max(math.hypot(sx, sy), 1e-6) * k
    B = city.bld
    margin = 60.0
    ids = city.items_in_box(
        "bld",
        cx - extent_m / 2 - margin,
        cy - extent_m / 2 - margin,
        cx + extent_m / 2 + margin,
        cy + extent_m / 2 + margin,
    )

    def px_range(a0: float, a1: float, origin: float, flip: bool) -> tuple[int, int]:
        if not flip:
            lo = (a0 - origin) / gsd + S / 2
            hi = (a1 - origin) / gsd + S / 2
        else:
            lo = (origin - a1) / gsd + S / 2
            hi = (origin - a0) / gsd + S / 2
        return max(0, math.floor(lo + 0.5)), min(S, math.floor(hi + 0.5))

    shadow = np.zeros((S, S), dtype=bool)
    for i in ids:
        h = B["height"][i]
        for t in np.linspace(0.0, 1.0, 8):
            ox, oy = shx * h * t, shy * h * t
            c0, c1 = px_range(B["x0"][i] + ox, B["x1"][i] + ox, cx, False)
            r0, r1 = px_range(B["y0"][i] + oy, B["y1"][i] + oy, cy, True)
            if c0 < c1 and r0 < r1:
                shadow[r0:r1, c0:c1] = True
    tr_ids = city.items_in_box(
        "trees",
        cx - extent_m / 2 - 10,
        cy - extent_m / 2 - 10,
        cx + extent_m / 2 + 10,
        cy + extent_m / 2 + 10,
    )
    crown = 2.6  # canopy radius in metres

    def disc(tx_: float, ty_: float) -> tuple[slice, slice, np.ndarray] | None:
        """The pixel window around a canopy and its squared distances (None when off the tile)."""
        c0, c1 = px_range(tx_ - crown, tx_ + crown, cx, False)
        r0, r1 = px_range(ty_ - crown, ty_ + crown, cy, True)
        if c0 >= c1 or r0 >= r1:
            return None
        return slice(r0, r1), slice(c0, c1), (xs[c0:c1][None, :] - tx_) ** 2 + (ys[r0:r1][:, None] - ty_) ** 2

    for i in tr_ids:
        w = disc(city.trees[i, 0] + shx * 4, city.trees[i, 1] + shy * 4)
        if w is not None:
            shadow[w[0], w[1]] |= w[2] < crown**2
    img[shadow] *= 0.55 if not cond.night else 1.0
    for i in ids:
        c0, c1 = px_range(B["x0"][i], B["x1"][i], cx, False)
        r0, r1 = px_range(B["y0"][i], B["y1"][i], cy, True)
        if c0 >= c1 or r0 >= r1:
            continue
        roof = B["roof_rgb"][i]
        px_x = xs[c0:c1][None, :]
        px_y = ys[r0:r1][:, None]
        d_edge = np.minimum(
            np.minimum(px_x - B["x0"][i], B["x1"][i] - px_x), np.minimum(px_y - B["y0"][i], B["y1"][i] - px_y)
        )
        n = tex.noise[(px_y * 2).astype(np.int64) & (NOISE - 1), (px_x * 2).astype(np.int64) & (NOISE - 1)]
        col = roof[None, None, :] * (0.92 + 0.08 * n)[..., None]
        col = np.where((d_edge < 0.6)[..., None], col * 0.75 + 0.1, col)
        # Roof furniture: a grid of small boxes (vents, AC units) on some roofs.
        if _hash(int(B["sign"][i]), 9) < 0.6:
            cell = 6.0 + 4.0 * float(_hash(int(B["sign"][i]), 10))
            box = (
                (np.mod(px_x - B["x0"][i], cell) < 1.6)
                & (np.mod(px_y - B["y0"][i], cell) < 1.2)
                & (d_edge > 1.5)
            )
            col = np.where(box[..., None], np.float32(0.72), col)
        img[r0:r1, c0:c1] = col * light[4]
    greens = np.array(
        [[0.16, 0.34, 0.12], [0.1, 0.25, 0.1], [0.45, 0.42, 0.12], [0.08, 0.22, 0.14]], np.float32
    )
    for i in tr_ids:
        w = disc(city.trees[i, 0], city.trees[i, 1])
        if w is None:
            continue
        m = w[2] < crown**2
        shade = 1.0 - 0.35 * np.sqrt(w[2][m] / crown**2)
        blk = img[w[0], w[1]]
        blk[m] = greens[int(city.trees[i, 2])][None, :] * shade[:, None] * light[4] * 1.2
    return _finish(img, np.full((S, S), 300.0, np.float32), replace(cond, haze_m=math.inf, occluders=()))
