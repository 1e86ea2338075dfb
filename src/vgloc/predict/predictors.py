"""Predictors: retrieved neighbours (best first) -> one position with a confidence.

Registered in :data:`vgloc.registry.PREDICTORS` (look them up with
:func:`resolve_predictor`):

``nearest`` (default)
    The position of the most similar database image (the field's Recall@1 view).

``kde``
    The im2gps kNN kernel density estimate (Hays & Efros 2008; Vo et al. 2017):
    each of the top-``k`` neighbours is an isotropic Gaussian of ``sigma_m``
    metres centred on its position, weighted by ``max(similarity, 0) ** m``;
    the densest point wins. Mean shift climbs from every neighbour at once
    (a few steps) and the end point of highest density wins, so the estimate
    can fall *between* database images that agree instead of snapping to one of
    them, and a world-scale top-100 spread over several places finds its
    densest place, not the mode nearest the top-1. In lat/lon
    (:meth:`Predictor.predict_latlon`) every step is taken back to the Earth's
    surface, so the densest point is searched on the surface, with no UTM.

Defaults (``DEFAULT_KDE``): ``k=10`` neighbours, ``m=4`` and ``sigma_m=25``. The
sigma equals the field's 25 m correctness threshold, so neighbours that would
count as the same place reinforce each other; ``m=4`` makes a neighbour of
similarity 0.9 count about 1.6 times one of 0.8. World-scale data (no UTM frame)
left at these defaults uses ``WORLD_KDE`` instead (:func:`vgloc.predict.kde_params_for`):
``k=100``, ``m=10``, ``sigma_m=4000`` (Vo et al. 2017, "Revisiting IM2GPS in the deep
learning era"); ``sigma_km=4`` is accepted wherever ``sigma_m`` is.

``nearest`` is the default because the density only helps when similarities
separate right from wrong neighbours: with untrained descriptors (all we can run
offline) every top-k similarity is about equal and the density drifts towards
the middle of unrelated neighbours (``benchmarks/bench_locate_modes.py``).

Confidence (both) is the *spatial consensus* of the retrieved evidence:

    confidence = sum_i w_i * exp(-|p - x_i|^2 / (2 sigma^2)) / sum_i w_i

with ``p`` the predicted point and ``x_i``, ``w_i`` the top-``k`` neighbours'
positions and weights. It lies in (0, 1]: 1 means every retrieved neighbour
agrees with the prediction; 0.3 means about 30 % of the similarity-weighted
evidence supports it, the rest points elsewhere. It is a ranking score (higher
is more often right), not a calibrated probability.

Where the arithmetic happens: :meth:`Predictor.predict_xy` works in planar UTM
metres (one-zone data, as vgloc always has); :meth:`Predictor.predict_latlon`
works anywhere on Earth: the neighbours go to local east-north-up metres around
the top-1 neighbour (:class:`vgloc.geo.LocalTangentPlane`, WGS84), the same
arithmetic runs there, and the result goes back to lat/lon. On one-zone data the
two agree to millimetres: the only difference is UTM's scale factor (UTM metres
are 0.9996 to ~1.001 true metres), which acts like a sigma off by that factor.
In 3-D ENU, distances are chords, so neighbours on the far side of the Earth are
far (never folded onto the plane); a kde mode is a 3-D mean taken back to the
surface, which for neighbours spread over ``s`` metres differs from the mode
along the surface by about ``s^3 / R^2`` (3 m for s = 50 km).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from vgloc.geo import LocalTangentPlane
from vgloc.predict.kernels import (
    DEFAULT_KDE,
    KDEParams,
    consensus,
    mean_shift_mode,
    neighbour_weights,
)
from vgloc.registry import PREDICTORS

__all__ = [
    "KDEPredictor",
    "KernelPredictor",
    "NearestPredictor",
    "Predictor",
    "resolve_predictor",
]


class Predictor(ABC):
    """The contract of a predictor: neighbours, best first -> (position, confidence).

    A predictor implements :meth:`estimate` on valid neighbours in metric
    coordinates (planar metres, D = 2, or local ENU metres, D = 3); the base class
    cleans the input (first :attr:`k` neighbours, finite values) and does the
    coordinate work for :meth:`predict_xy` and :meth:`predict_latlon`.

    Attributes:
        name: the registry name.
        k: how many neighbours it reads; callers retrieve at least this many.
    """

    name: ClassVar[str] = ""
    k: int

    @abstractmethod
    def estimate(self, similarities: np.ndarray, points: np.ndarray) -> tuple[int | np.ndarray, float]:
        """Predict from ``K >= 1`` valid neighbours.

        Args:
            similarities: (K,) finite similarities, best first (K <= :attr:`k`).
            points: (K, D) finite metric coordinates of the neighbours.

        Returns:
            ``(choice, confidence)``: ``choice`` is a neighbour's index (its exact
            coordinates are the prediction) or a (D,) point in the same coordinates;
            ``confidence`` is in [0, 1].
        """

    def estimate_on_surface(
        self,
        similarities: np.ndarray,
        points: np.ndarray,
        surface: Callable[[np.ndarray], np.ndarray],
    ) -> tuple[int | np.ndarray, float]:
        """:meth:`estimate` for points in 3-D local coordinates of a curved surface.

        ``surface`` maps (S, 3) points onto the surface (the Earth's, in the local
        east-north-up frame). The default ignores it; a predictor that searches for a
        point between the neighbours (``kde``) keeps its search on the surface.
        """
        return self.estimate(similarities, points)

    def _clean(self, similarities: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sims = np.asarray(similarities, dtype=np.float64).reshape(-1)[: self.k]
        pts = np.asarray(points, dtype=np.float64)
        pts = pts.reshape(len(pts), -1)[: self.k]
        if len(sims) != len(pts):
            raise ValueError(f"{len(sims)} similarities for {len(pts)} neighbour positions")
        valid = np.isfinite(sims) & np.all(np.isfinite(pts), axis=1)
        if not valid.any():
            raise ValueError("no valid neighbour to predict a position from")
        return sims[valid], pts[valid]

    def predict_xy(self, similarities: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, float]:
        """Predict a planar position (UTM metres) from ranked neighbours.

        Args:
            similarities: (K,) similarities, best first; NaN entries are skipped.
            xy: (K, 2) neighbour coordinates in one planar metric frame.

        Returns:
            ``(xy, confidence)``: the (2,) position and the consensus in [0, 1].

        Raises:
            ValueError: no neighbour with finite similarity and coordinates.
        """
        sims, pts = self._clean(similarities, xy)
        choice, conf = self.estimate(sims, pts)
        point = pts[choice] if isinstance(choice, (int, np.integer)) else np.asarray(choice, dtype=np.float64)
        return point.copy(), conf

    def predict_latlon(self, similarities: np.ndarray, latlon: np.ndarray) -> tuple[np.ndarray, float]:
        """Predict a latitude/longitude from ranked neighbours anywhere on Earth.

        The neighbours are put in local east-north-up metres around the top-1
        neighbour (WGS84), :meth:`estimate` runs there, and the result is taken back
        to the surface (module docstring: why 3-D, and the agreement with UTM).

        Args:
            similarities: (K,) similarities, best first; NaN entries are skipped.
            latlon: (K, 2) neighbour latitude/longitude in degrees.

        Returns:
            ``(latlon, confidence)``: the (2,) position in degrees and the consensus.

        Raises:
            ValueError: no neighbour with finite similarity and coordinates.
        """
        sims, ll = self._clean(similarities, latlon)
        plane = LocalTangentPlane(ll[0, 0], ll[0, 1])
        choice, conf = self.estimate_on_surface(
            sims, plane.to_local(ll), lambda p: plane.to_local(plane.to_latlon(p))
        )
        if isinstance(choice, (int, np.integer)):
            return ll[int(choice)].copy(), conf  # exactly the neighbour's own coordinates
        return plane.to_latlon(np.asarray(choice, dtype=np.float64)[None])[0], conf


@dataclass(frozen=True)
class KernelPredictor(Predictor):
    """A predictor scored with the Gaussian kernel consensus (the fields of :class:`KDEParams`)."""

    k: int = DEFAULT_KDE.k
    m: float = DEFAULT_KDE.m
    sigma_m: float = DEFAULT_KDE.sigma_m
    mean_shift_steps: int = DEFAULT_KDE.mean_shift_steps

    def __post_init__(self) -> None:
        self.params  # noqa: B018  # validates the values (KDEParams raises ValueError)

    @property
    def params(self) -> KDEParams:
        """The parameters as a :class:`KDEParams`."""
        return KDEParams(k=self.k, m=self.m, sigma_m=self.sigma_m, mean_shift_steps=self.mean_shift_steps)

    @classmethod
    def from_params(cls, params: KDEParams) -> KernelPredictor:
        """The predictor with these parameters."""
        return cls(**dataclasses.asdict(params))


_PARAMETERS = {
    "k": "neighbours used (top-k retrieved)",
    "m": "similarity exponent of the weights max(s, 0)**m",
    "sigma_m": "kernel standard deviation in metres (sigma_km=4 for world-scale data)",
    "sigma_km": "the same in km (converted to sigma_m)",
    "mean_shift_steps": "at most this many mean-shift steps",
}


@PREDICTORS.register(
    "nearest",
    parameters={k: v for k, v in _PARAMETERS.items() if k != "mean_shift_steps"},
    description="position of the most similar database image; confidence = kernel consensus of the top-k",
)
@dataclass(frozen=True)
class NearestPredictor(KernelPredictor):
    """The top-1 neighbour's position; the kernel parameters only score the confidence.

    ``mean_shift_steps`` is accepted (so one :class:`KDEParams` configures either
    predictor) and unused.
    """

    name: ClassVar[str] = "nearest"

    def estimate(self, similarities: np.ndarray, points: np.ndarray) -> tuple[int | np.ndarray, float]:
        w = neighbour_weights(similarities, self.m)
        return 0, consensus(points[0], points, w, self.sigma_m)


@PREDICTORS.register(
    "kde",
    parameters=dict(_PARAMETERS),
    description="mode of the similarity-weighted Gaussian kernel density of the top-k (im2gps kNN)",
)
@dataclass(frozen=True)
class KDEPredictor(KernelPredictor):
    """The mode of the weighted kernel density of the top-``k`` neighbours (module docstring)."""

    name: ClassVar[str] = "kde"

    def estimate(self, similarities: np.ndarray, points: np.ndarray) -> tuple[int | np.ndarray, float]:
        return self._mode(similarities, points, None)

    def estimate_on_surface(
        self,
        similarities: np.ndarray,
        points: np.ndarray,
        surface: Callable[[np.ndarray], np.ndarray],
    ) -> tuple[int | np.ndarray, float]:
        return self._mode(similarities, points, surface)

    def _mode(
        self, similarities: np.ndarray, points: np.ndarray, surface: Callable[[np.ndarray], np.ndarray] | None
    ) -> tuple[np.ndarray, float]:
        w = neighbour_weights(similarities, self.m)
        mode = mean_shift_mode(points, w, self.sigma_m, self.mean_shift_steps, project=surface)
        return mode, consensus(mode, points, w, self.sigma_m)


def resolve_predictor(name_or_obj: str | Predictor, **params: Any) -> Predictor:
    """A predictor from a registry name (or an instance), with parameters.

    Args:
        name_or_obj: a name registered in :data:`vgloc.registry.PREDICTORS`
            (``"nearest"``, ``"kde"``) or a :class:`Predictor`.
        **params: constructor parameters (for the built-in ones: ``k``, ``m``,
            ``sigma_m`` or ``sigma_km``, ``mean_shift_steps``); with an instance, they
            replace its fields (dataclass predictors only).

    Returns:
        The :class:`Predictor`.

    Raises:
        vgloc.registry.UnknownNameError: an unknown name (the message lists close matches).
        TypeError: ``name_or_obj`` is neither, or a parameter the predictor does not take.
        ValueError: an invalid parameter value (e.g. ``sigma_m <= 0``).

    Example:
        >>> resolve_predictor("kde", sigma_m=50_000).sigma_m
        50000
    """
    params = _sigma_in_metres(params)
    if isinstance(name_or_obj, Predictor):
        if not params:
            return name_or_obj
        if not dataclasses.is_dataclass(name_or_obj):
            raise TypeError(f"cannot set {sorted(params)} on {name_or_obj!r}; build it with them instead")
        _check_params(type(name_or_obj), params)
        return dataclasses.replace(name_or_obj, **params)
    if not isinstance(name_or_obj, str):
        raise TypeError(
            f"a predictor is a name ({', '.join(PREDICTORS.names())}) or a Predictor, got {name_or_obj!r}"
        )
    factory = PREDICTORS.get(name_or_obj)
    _check_params(factory, params, PREDICTORS.metadata(name_or_obj).get("parameters"))
    predictor = factory(**params)
    if not isinstance(predictor, Predictor):
        raise TypeError(
            f"predictor {name_or_obj!r} built {predictor!r}, which is not a vgloc.predict.Predictor"
        )
    return predictor


def _sigma_in_metres(params: dict[str, Any]) -> dict[str, Any]:
    """``sigma_km`` (the world-scale unit) becomes ``sigma_m``; both at once is refused."""
    if "sigma_km" not in params:
        return params
    if "sigma_m" in params:
        raise TypeError("give the kernel sigma once: sigma_m or sigma_km, not both")
    out = {k: v for k, v in params.items() if k != "sigma_km"}
    out["sigma_m"] = float(params["sigma_km"]) * 1000.0
    return out


def _check_params(factory: Any, params: dict[str, Any], declared: Any = None) -> None:
    """Refuse parameters a dataclass predictor has no field for, naming the ones it has."""
    if not dataclasses.is_dataclass(factory):
        return
    known = [f.name for f in dataclasses.fields(factory)]
    unknown = sorted(set(params) - set(known))
    if unknown:
        listed = ", ".join(declared) if declared else ", ".join(known)
        raise TypeError(
            f"predictor {getattr(factory, 'name', factory)!r} takes no {', '.join(unknown)} (it takes: {listed})"
        )
