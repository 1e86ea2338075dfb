"""A city's architectural style: what makes one synthetic city look like a region of the world.

A :class:`CityStyle` narrows the generator's choices (facade colours, window designs,
share of glass towers, building heights), sets the amount and colour of the
vegetation and the colour of the shop signs. It is given to
:func:`vgloc.data.synthetic.generate_city` (``style=``) and stored on the
:class:`~vgloc.data.synthetic.citymap.CityMap`; the renderer reads it there.

``style=None`` (the default) is the original city: every random draw and every
colour stays what it was, so existing cities are byte-identical. A style changes
only *which* value a draw selects (a palette restricted to some entries, a
threshold), never the number of draws, so the street plan of a seed is the same
with and without a style.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vgloc.data.synthetic.textures import Textures, get_textures

if TYPE_CHECKING:
    from vgloc.data.synthetic.citymap import CityMap

__all__ = ["CityStyle", "city_textures", "style_rgb"]

_N_WALLS = 14  # entries of citymap._WALL_PALETTE
_N_PUNCHED = 12  # punched-window designs (12, 13 are curtain-wall glass)


@dataclass(frozen=True)
class CityStyle:
    """How one city is built and planted (defaults: the original city).

    Attributes:
        walls: facade palette entries to draw from (0..13: sand plaster, red brick, dark
            brick, light concrete, grey concrete, off-white, ochre, pale blue, sage,
            salmon, dark brown, stone, cream, slate); None = all.
        windows: punched-window designs to draw from (0..11); None = all.
        glass_share: share of facade templates that are glass curtain walls (0.12).
        floors_shift: floors added to every block's mean height (negative: lower).
        tree_rate: chance that a block edge is tree-lined (0.35).
        foliage: RGB factors on tree crowns and grass (dry olive, lush green...).
        sign_tint: RGB the shop signs' colours are pulled towards (60 %), or None.
        ground: RGB factors on asphalt and sidewalks (pale limestone, red laterite...).
    """

    walls: tuple[int, ...] | None = None
    windows: tuple[int, ...] | None = None
    glass_share: float = 0.12
    floors_shift: float = 0.0
    tree_rate: float = 0.35
    foliage: tuple[float, float, float] = (1.0, 1.0, 1.0)
    sign_tint: tuple[float, float, float] | None = None
    ground: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        for name, values, n in (("walls", self.walls, _N_WALLS), ("windows", self.windows, _N_PUNCHED)):
            if values is not None and (not values or any(not 0 <= int(v) < n for v in values)):
                raise ValueError(f"CityStyle.{name} must be a non-empty subset of 0..{n - 1}, got {values}")
        if not 0.0 <= self.glass_share <= 1.0 or not 0.0 <= self.tree_rate <= 1.0:
            raise ValueError(
                f"glass_share and tree_rate must be in [0, 1], got {self.glass_share}, {self.tree_rate}"
            )
        if (
            len(self.foliage) != 3
            or len(self.ground) != 3
            or (self.sign_tint is not None and len(self.sign_tint) != 3)
        ):
            raise ValueError("foliage, ground and sign_tint are RGB triples")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (lists for tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CityStyle:
        """Inverse of :meth:`to_dict`."""
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**fields)


def style_rgb(city: CityMap, base: tuple[float, float, float], factors: str) -> tuple[float, float, float]:
    """``base`` colour times the city style's ``factors`` (``"foliage"``, ``"ground"``).

    Returns ``base`` itself, untouched, for a city without a style or with neutral
    factors (so the original city renders bit for bit as before).
    """
    style = getattr(city, "style", None)
    f = (1.0, 1.0, 1.0) if style is None else tuple(getattr(style, factors))
    if f == (1.0, 1.0, 1.0):
        return base
    return (base[0] * f[0], base[1] * f[1], base[2] * f[2])


def city_textures(city: CityMap) -> Textures:
    """The atlases the renderer uses for ``city``: its seed's, with the style's foliage and signs."""
    style = getattr(city, "style", None)
    if style is None or (tuple(style.foliage) == (1.0, 1.0, 1.0) and style.sign_tint is None):
        return get_textures(city.seed)
    return _styled(city.seed, style)


@functools.lru_cache(maxsize=16)
def _styled(seed: int, style: CityStyle) -> Textures:
    tex = get_textures(seed)
    foliage = np.asarray(style.foliage, np.float32)
    sprites = dict(tex.sprites)
    for name, (rgb, alpha, tint, emissive) in tex.sprites.items():
        if name.startswith("tree"):
            crown = (rgb[..., 1] > rgb[..., 0])[..., None]  # green crown, not the brown trunk
            sprites[name] = (np.where(crown, np.clip(rgb * foliage, 0, 1), rgb), alpha, tint, emissive)
    signs = tex.sign_rgb
    if style.sign_tint is not None:
        signs = (0.4 * signs + 0.6 * np.asarray(style.sign_tint, np.float32)).astype(np.float32)
    return dataclasses.replace(tex, sprites=sprites, sign_rgb=signs)
