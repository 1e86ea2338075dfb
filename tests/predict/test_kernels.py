"""The kNN kernel density: its densest point against brute force, in the plane and on the Earth."""

from __future__ import annotations

import numpy as np
import pytest

from vgloc.geo import LocalTangentPlane, haversine_m, latlon_to_ecef
from vgloc.predict import DEFAULT_KDE, WORLD_KDE, KDEParams, kde_params_for, resolve_predictor
from vgloc.predict.kernels import kernel_density, mean_shift_mode, neighbour_weights


def test_the_densest_point_is_found_even_when_the_densest_neighbour_climbs_elsewhere() -> None:
    # A heavy lone neighbour (density 1.4 at itself) and an equilateral triangle of light
    # ones (1 + 2 e^-2 = 1.27 at each vertex, but 3 e^(-2/3) = 1.54 at its centre): a
    # single climb from the densest neighbour stays on the lone one.
    pts = np.array([[50.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, np.sqrt(3.0)]])
    w = np.array([1.4, 1.0, 1.0, 1.0])
    assert np.argmax(kernel_density(pts, pts, w, 1.0)) == 0
    mode = mean_shift_mode(pts, w, 1.0, steps=200)
    # (to the 1 mm stopping rule's slack: mean shift converges linearly)
    np.testing.assert_allclose(mode, [0.0, 1.0 / np.sqrt(3.0)], atol=5e-3)


@pytest.mark.parametrize("seed", range(5))
def test_planar_mode_matches_a_brute_force_grid(seed: int) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-300, 300, (3, 2))
    pts = np.concatenate([c + rng.normal(0, 30, (int(rng.integers(2, 6)), 2)) for c in centres])
    w = neighbour_weights(rng.uniform(0.3, 1.0, len(pts)), 4.0)
    sigma = 25.0
    mode = mean_shift_mode(pts, w, sigma, steps=100)
    g = np.arange(-450.0, 450.0, 2.0)
    grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    brute = kernel_density(grid, pts, w, sigma)
    best = float(kernel_density(mode[None], pts, w, sigma)[0])
    # The mode is at least as dense as every grid point (2 m steps: up to a flat-top rounding).
    assert best >= brute.max() * (1 - 1e-3)
    assert best >= kernel_density(pts, pts, w, sigma).max()


def _chord_density(latlon: np.ndarray, neighbours: np.ndarray, w: np.ndarray, sigma_m: float) -> np.ndarray:
    """Brute-force density with WGS84 straight-line distances (no tangent plane, no mean shift)."""
    a, b = latlon_to_ecef(latlon), latlon_to_ecef(neighbours)
    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return np.asarray((w[None, :] * np.exp(-d2 / (2 * sigma_m**2))).sum(1))


@pytest.mark.parametrize("seed", range(6))
def test_world_kde_finds_the_densest_point_on_the_earth_like_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # three places anywhere (seed 0 straddles the antimeridian, seed 1 is near a pole),
    # a few neighbours scattered over ~10 km around each, in random rank order
    places = np.stack([rng.uniform(-70, 70, 3), rng.uniform(-180, 180, 3)], 1)
    places[0] = [[-17.0, 179.99], [88.5, 40.0]][seed % 2] if seed < 2 else places[0]
    neighbours = []
    for lat, lon in places:
        enu = rng.normal(0, 5_000, (int(rng.integers(3, 8)), 2))  # east/north metres
        neighbours.append(LocalTangentPlane(lat, lon).to_latlon(enu))
    ll = np.concatenate(neighbours)[rng.permutation(sum(len(n) for n in neighbours))]
    sims = np.sort(rng.uniform(0.6, 0.95, len(ll)))[::-1]
    kde = resolve_predictor("kde", k=100, m=10.0, sigma_km=4.0, mean_shift_steps=50)
    pred, conf = kde.predict_latlon(sims, ll)
    w = neighbour_weights(sims, 10.0)
    # brute force: a 250 m grid over 24 km around every neighbour, on the ellipsoid
    g = np.arange(-12_000.0, 12_001.0, 250.0)
    grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    cands = np.concatenate([LocalTangentPlane(*p).to_latlon(grid) for p in ll])
    brute = _chord_density(cands, ll, w, 4_000.0)
    found = float(_chord_density(pred[None], ll, w, 4_000.0)[0])
    assert found >= brute.max() * (1 - 1e-3)
    best = cands[int(np.argmax(brute))]
    assert float(haversine_m(pred[0], pred[1], best[0], best[1])) < 500.0
    assert conf == pytest.approx(found / w.sum(), rel=1e-6)


def test_world_defaults_and_sigma_in_km() -> None:
    assert (WORLD_KDE.k, WORLD_KDE.m, WORLD_KDE.sigma_m) == (100, 10.0, 4_000.0)

    class World:
        is_world = True

    class City:
        is_world = False

    assert kde_params_for(DEFAULT_KDE, City()) is DEFAULT_KDE
    assert kde_params_for(DEFAULT_KDE, City(), World()) == WORLD_KDE
    mine = KDEParams(k=50, sigma_m=16_000.0)
    assert kde_params_for(mine, World()) is mine  # an explicit choice is kept
    assert resolve_predictor("kde", sigma_km=16).sigma_m == 16_000.0
    assert resolve_predictor(resolve_predictor("nearest"), sigma_km=0.5).sigma_m == 500.0
    with pytest.raises(TypeError, match="sigma_m or sigma_km"):
        resolve_predictor("kde", sigma_m=1.0, sigma_km=1.0)
