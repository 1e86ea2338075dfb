"""Procedural texture atlases of the synthetic city: windows, shop signs, sprites, noise, clouds.

Every atlas is drawn once per city seed (cached) with numpy; the renderer samples
them per pixel with nearest-neighbour look-ups. Colours are RGB floats in [0, 1].
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

WIN_H, WIN_W = 32, 24  # window texels (rows, cols)
N_WIN_DESIGNS = 14  # 0..11 punched windows, 12..13 curtain-wall glass panels
SIGN_H, SIGN_W = 12, 96
N_SIGNS = 97  # prime, so sign ids spread over the atlas
NOISE = 64
CLOUD_H, CLOUD_W = 48, 512
SPRITE_H, SPRITE_W = 64, 48


@dataclass(frozen=True)
class Textures:
    """The atlases (see the module docstring).

    Attributes:
        win_rgb: (N_WIN_DESIGNS, WIN_H, WIN_W, 3) daytime window look (frame, glass, mullions).
        win_alpha: (N_WIN_DESIGNS, WIN_H, WIN_W) 1 where the window covers the wall (arches).
        win_glass: (N_WIN_DESIGNS, WIN_H, WIN_W) 1 on glass panes (what lights up at night).
        sign_rgb: (N_SIGNS, SIGN_H, SIGN_W, 3) shop signs (a band with letter-like glyphs).
        noise: (NOISE, NOISE) tileable value noise in [-1, 1] (wall stains, asphalt).
        cloud: (CLOUD_H, CLOUD_W) cloud density in [0, 1], tileable in azimuth.
        sprites: dict name -> (rgb (h, w, 3), alpha (h, w), tint mask (h, w), emissive (h, w)).
    """

    win_rgb: np.ndarray
    win_alpha: np.ndarray
    win_glass: np.ndarray
    win_mean: np.ndarray  # (N_WIN_DESIGNS, 3) mean day colour of the window area
    sign_rgb: np.ndarray
    noise: np.ndarray
    cloud: np.ndarray
    sprites: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def _value_noise(rng: np.random.Generator, h: int, w: int, octaves: tuple[int, ...]) -> np.ndarray:
    """Tileable multi-octave value noise in [-1, 1] by bilinear upsampling of random lattices."""
    out = np.zeros((h, w), dtype=np.float64)
    amp_sum = 0.0
    for i, cells in enumerate(octaves):
        ch, cw = max(1, h * cells // w), cells
        lat = rng.uniform(-1, 1, (ch, cw))
        yy = np.arange(h) * ch / h
        xx = np.arange(w) * cw / w
        y0 = np.floor(yy).astype(int)
        x0 = np.floor(xx).astype(int)
        fy = (yy - y0)[:, None]
        fx = (xx - x0)[None, :]
        fy = fy * fy * (3 - 2 * fy)
        fx = fx * fx * (3 - 2 * fx)
        y1, x1 = (y0 + 1) % ch, (x0 + 1) % cw
        a = lat[y0][:, x0] * (1 - fx) + lat[y0][:, x1] * fx
        b = lat[y1][:, x0] * (1 - fx) + lat[y1][:, x1] * fx
        amp = 0.55**i
        out += amp * (a * (1 - fy) + b * fy)
        amp_sum += amp
    out /= amp_sum
    return (out / max(1e-9, np.abs(out).max())).astype(np.float32)


def _windows(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rgb = np.zeros((N_WIN_DESIGNS, WIN_H, WIN_W, 3), dtype=np.float32)
    alpha = np.ones((N_WIN_DESIGNS, WIN_H, WIN_W), dtype=np.float32)
    glass = np.zeros((N_WIN_DESIGNS, WIN_H, WIN_W), dtype=np.float32)
    yy, xx = np.mgrid[0:WIN_H, 0:WIN_W]
    frames = np.array(
        [[0.92, 0.92, 0.9], [0.25, 0.18, 0.12], [0.12, 0.22, 0.15], [0.5, 0.5, 0.52], [0.08, 0.08, 0.09]]
    )
    for d in range(N_WIN_DESIGNS):
        frame = frames[rng.integers(len(frames))]
        curtain = d >= 12
        # Glass reflects the sky: lighter at the top, a dark interior below.
        g_top = (
            np.array([0.45, 0.55, 0.65]) if not curtain else rng.choice([[0.35, 0.55, 0.6], [0.5, 0.42, 0.3]])
        )
        g_bot = np.array([0.1, 0.12, 0.15]) if not curtain else g_top * 0.55
        t = (yy / (WIN_H - 1))[..., None]
        pane = g_top * (1 - t) + g_bot * t
        # A diagonal sheen makes panes look like glass rather than paint.
        pane = pane + 0.08 * (((xx + yy) % 16) < 3)[..., None]
        img = pane.copy()
        gl = np.ones((WIN_H, WIN_W), dtype=np.float32)
        fw = 2 if not curtain else 1
        border = (xx < fw) | (xx >= WIN_W - fw) | (yy < fw) | (yy >= WIN_H - fw)
        style = d % 4
        mull = np.zeros_like(border)
        if style in (1, 3):
            mull |= abs(xx - WIN_W // 2) < 1
        if style in (2, 3):
            mull |= abs(yy - WIN_H // 3) < 1
        if curtain:
            mull |= abs(yy - WIN_H // 2) < 1
        m = border | mull
        img[m] = frame
        gl[m] = 0
        if d < 12 and d % 3 == 0:  # arched top: the wall shows around the arch
            cy, r = WIN_W / 2, WIN_W / 2
            outside = (yy < r) & ((xx + 0.5 - WIN_W / 2) ** 2 + (yy + 0.5 - cy) ** 2 > r * r)
            alpha[d][outside] = 0
            gl[outside] = 0
        if d < 12 and d % 5 == 1:  # a sill and a lintel band
            img[yy >= WIN_H - 3] = frame * 0.9
            gl[yy >= WIN_H - 3] = 0
        if d < 12 and d % 4 == 2:  # curtains drawn at the sides
            cur = ((xx < 6) | (xx >= WIN_W - 6)) & (gl > 0)
            img[cur] = rng.uniform(0.3, 0.8, 3)
        rgb[d] = img
        glass[d] = gl
    return rgb, alpha, glass


def _signs(rng: np.random.Generator) -> np.ndarray:
    out = np.zeros((N_SIGNS, SIGN_H, SIGN_W, 3), dtype=np.float32)
    for i in range(N_SIGNS):
        bg = rng.uniform(0.05, 0.95, 3)
        bg[rng.integers(3)] *= rng.uniform(0.1, 0.5)  # saturated backgrounds
        fg = np.where(bg.mean() > 0.5, rng.uniform(0.0, 0.2, 3), rng.uniform(0.8, 1.0, 3))
        img = np.broadcast_to(bg, (SIGN_H, SIGN_W, 3)).copy()
        n_chars = int(rng.integers(4, 11))
        cw = 8
        x = int(rng.integers(2, max(3, SIGN_W - n_chars * cw)))
        for _ in range(n_chars):
            if x + cw > SIGN_W - 1:
                break
            # A letter: a few strokes on a 3x5 grid.
            for _s in range(int(rng.integers(2, 5))):
                if rng.random() < 0.5:
                    r0 = 2 + 2 * int(rng.integers(0, 5))
                    img[min(r0, SIGN_H - 2) : min(r0 + 1, SIGN_H - 1), x + 1 : x + cw - 2] = fg
                else:
                    c0 = x + 1 + 2 * int(rng.integers(0, 3))
                    img[2 : SIGN_H - 2, c0 : c0 + 1] = fg
            x += cw
        img[0, :] = img[-1, :] = bg * 0.6  # a frame
        out[i] = img
    return out


def _disc_mask(h: int, w: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1.0


def _sprites(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    H, W = SPRITE_H, SPRITE_W
    out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    yy, xx = np.mgrid[0:H, 0:W]
    greens = [[0.16, 0.34, 0.12], [0.1, 0.25, 0.1], [0.45, 0.42, 0.12], [0.08, 0.22, 0.14]]
    for v in range(4):
        rgb = np.zeros((H, W, 3), dtype=np.float32)
        a = np.zeros((H, W), dtype=np.float32)
        trunk = (abs(xx + 0.5 - W / 2) < 2.0) & (yy > H * 0.55)
        rgb[trunk] = [0.28, 0.2, 0.14]
        a[trunk] = 1
        g = np.array(greens[v])
        if v == 3:  # conifer
            crown = (yy < H * 0.85) & (abs(xx + 0.5 - W / 2) < (yy + 2) * W / (2.0 * H * 0.85))
        else:
            crown = np.zeros((H, W), dtype=bool)
            for _ in range(7):
                crown |= _disc_mask(
                    H,
                    W,
                    rng.uniform(W * 0.3, W * 0.7),
                    rng.uniform(H * 0.2, H * 0.5),
                    rng.uniform(W * 0.18, W * 0.32),
                    rng.uniform(H * 0.12, H * 0.2),
                )
        leaf = _value_noise(rng, H, W, (6, 12))
        shade = (0.75 + 0.25 * leaf)[..., None] * (1.1 - 0.4 * yy[..., None] / H)
        rgb[crown] = (g * shade)[crown]
        a[crown] = 1
        out[f"tree{v}"] = (rgb, a, np.zeros((H, W), np.float32), np.zeros((H, W), np.float32))
    # Street lamp: a pole with an arm and a head (the head glows at night).
    rgb = np.zeros((H, W, 3), dtype=np.float32)
    a = np.zeros((H, W), dtype=np.float32)
    em = np.zeros((H, W), dtype=np.float32)
    pole = (abs(xx + 0.5 - W / 2) < 2.5) & (yy > 3)
    arm = (yy >= 3) & (yy < 5) & (xx >= W / 2) & (xx < W - 6)
    head = (yy >= 4) & (yy < 8) & (xx >= W - 14) & (xx < W - 4)
    for m, c in ((pole, 0.22), (arm, 0.22), (head, 0.5)):
        rgb[m] = c
        a[m] = 1
    em[head] = 1
    out["lamp"] = (rgb, a, np.zeros((H, W), np.float32), em)
    # Occluders: a car (side), a car (rear), a pedestrian, a pole with a sign.
    rgb = np.zeros((H, W, 3), dtype=np.float32)
    a = np.zeros((H, W), dtype=np.float32)
    tint = np.zeros((H, W), dtype=np.float32)
    body = (yy > H * 0.4) & (yy < H * 0.85) & (xx > 1) & (xx < W - 2)
    cabin = (
        (yy > H * 0.08)
        & (yy <= H * 0.42)
        & (xx > W * 0.22)
        & (xx < W * 0.78)
        & ((yy - H * 0.08) > -(xx - W * 0.22) * 0.9 + H * 0.0)
    )
    windows = cabin & (yy > H * 0.14) & (yy < H * 0.38) & (abs(xx - W / 2) > 1)
    wheels = _disc_mask(H, W, W * 0.22, H * 0.86, W * 0.11, H * 0.14) | _disc_mask(
        H, W, W * 0.78, H * 0.86, W * 0.11, H * 0.14
    )
    for m in (body, cabin):
        rgb[m] = 1.0
        tint[m] = 1
        a[m] = 1
    rgb[windows] = [0.12, 0.15, 0.18]
    tint[windows] = 0
    rgb[wheels] = 0.05
    tint[wheels] = 0
    a[wheels] = 1
    out["car_side"] = (rgb, a, tint, np.zeros((H, W), np.float32))
    rgb = np.zeros((H, W, 3), dtype=np.float32)
    a = np.zeros((H, W), dtype=np.float32)
    tint = np.zeros((H, W), dtype=np.float32)
    body = (yy > H * 0.35) & (yy < H * 0.9) & (xx > 2) & (xx < W - 3)
    cabin = (yy > H * 0.05) & (yy <= H * 0.36) & (xx > 6) & (xx < W - 7)
    rear_win = (yy > H * 0.1) & (yy < H * 0.33) & (xx > 9) & (xx < W - 10)
    lights = (yy > H * 0.45) & (yy < H * 0.55) & ((xx < 9) | (xx > W - 10)) & body
    tyres = (yy >= H * 0.9) & ((abs(xx - 8) < 4) | (abs(xx - (W - 9)) < 4))
    for m in (body, cabin):
        rgb[m] = 1.0
        tint[m] = 1
        a[m] = 1
    rgb[rear_win] = [0.1, 0.12, 0.15]
    tint[rear_win] = 0
    rgb[lights] = [0.8, 0.05, 0.05]
    tint[lights] = 0
    rgb[tyres] = 0.04
    a[tyres] = 1
    out["car_rear"] = (rgb, a, tint, np.zeros((H, W), np.float32))
    rgb = np.zeros((H, W, 3), dtype=np.float32)
    a = np.zeros((H, W), dtype=np.float32)
    tint = np.zeros((H, W), dtype=np.float32)
    head_m = _disc_mask(H, W, W / 2, H * 0.07, W * 0.12, H * 0.065)
    torso = (yy > H * 0.13) & (yy < H * 0.55) & (abs(xx + 0.5 - W / 2) < W * 0.3 - (yy < H * 0.18) * 3)
    legs = (yy >= H * 0.55) & (
        ((xx + 0.5 - W / 2) > -W * 0.25) & ((xx + 0.5 - W / 2) < -W * 0.03)
        | ((xx + 0.5 - W / 2) > W * 0.03) & ((xx + 0.5 - W / 2) < W * 0.25)
    )
    rgb[head_m] = [0.75, 0.58, 0.45]
    a[head_m] = 1
    rgb[torso] = 1.0
    tint[torso] = 1
    a[torso] = 1
    rgb[legs] = [0.15, 0.15, 0.2]
    a[legs] = 1
    out["pedestrian"] = (rgb, a, tint, np.zeros((H, W), np.float32))
    rgb = np.zeros((H, W, 3), dtype=np.float32)
    a = np.zeros((H, W), dtype=np.float32)
    tint = np.zeros((H, W), dtype=np.float32)
    pole = abs(xx + 0.5 - W / 2) < W * 0.2
    sign = (yy > 2) & (yy < 14) & (xx > 2) & (xx < W - 2)
    rgb[pole] = 0.35
    a[pole] = 1
    rgb[sign] = 1.0
    tint[sign] = 1
    a[sign] = 1
    out["pole"] = (rgb, a, tint, np.zeros((H, W), np.float32))
    return out


@functools.lru_cache(maxsize=8)
def get_textures(seed: int) -> Textures:
    """The atlases of one city seed (cached; deterministic).

    Args:
        seed: the city seed.

    Returns:
        The :class:`Textures`.
    """
    rng = np.random.default_rng([int(seed), 0x7E7])
    win_rgb, win_alpha, win_glass = _windows(rng)
    w = np.maximum(win_alpha, 1e-6)[..., None]
    win_mean = (win_rgb * w).sum((1, 2)) / w.sum((1, 2))
    cloud = _value_noise(rng, CLOUD_H, CLOUD_W, (8, 16, 32, 64))
    cloud = (cloud - cloud.min()) / (cloud.max() - cloud.min())
    return Textures(
        win_rgb=win_rgb,
        win_alpha=win_alpha,
        win_glass=win_glass,
        win_mean=win_mean.astype(np.float32),
        sign_rgb=_signs(rng),
        noise=_value_noise(rng, NOISE, NOISE, (4, 8, 16, 32)),
        cloud=cloud.astype(np.float32),
        sprites=_sprites(rng),
    )
