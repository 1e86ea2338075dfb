"""A tiny world photo set and a ``vgloc train geocell``-shaped run folder, built in a second."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# Places on four continents (lat, lon): database photos scatter ~50 km around each.
PLACES = [(48.85, 2.35), (40.71, -74.0), (-33.87, 151.21), (35.68, 139.69)]
SPEC = "tiny+gem"


def write_world(
    root: Path,
    per_place: int = 6,
    queries_per_place: int = 2,
    seed: int = 0,
    places: list[tuple[float, float]] = PLACES,
    spread_deg: float = 0.3,
) -> tuple[Path, Path]:
    """Noise photos tinted per place; ``db.csv`` and ``q.csv`` manifests (path,lat,lon)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    lists: dict[str, list[tuple[str, float, float]]] = {"db": [], "q": []}
    for p, (lat, lon) in enumerate(places):
        tint = rng.uniform(40, 215, 3)
        for which, n in (("db", per_place), ("q", queries_per_place)):
            for i in range(n):
                img = np.clip(tint + rng.normal(0, 30, (48, 64, 3)), 0, 255).astype(np.uint8)
                path = root / f"{which}_{p}_{i}.jpg"
                Image.fromarray(img).save(path)
                lists[which].append(
                    (path.name, lat + rng.normal(0, spread_deg), lon + rng.normal(0, spread_deg))
                )
    out = []
    for which in ("db", "q"):
        with (root / f"{which}.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "lat", "lon"])
            w.writerows([(n, f"{a:.6f}", f"{b:.6f}") for n, a, b in lists[which]])
        out.append(root / f"{which}.csv")
    return out[0], out[1]


def make_geocell_run(run: Path, train_latlon: np.ndarray, t_img: tuple[int, ...] = (12, 3)) -> Path:
    """A run folder as ``vgloc train geocell`` leaves it, with untrained (seeded) classifiers."""
    from vgloc.geo.cells import build_partitions, save_partitions
    from vgloc.losses.margin import MarginHead
    from vgloc.models import create_model, save_model

    torch.manual_seed(0)
    run.mkdir(parents=True, exist_ok=True)
    parts = build_partitions(train_latlon, t_img, min_images=1, t_area_km2=1e-3)
    save_partitions(run / "cells.npz", parts, train_latlon)
    model = create_model(SPEC)
    save_model(model, run / "best_model.pt")
    heads = torch.nn.ModuleList([MarginHead(model.descriptor_dim, p.num_cells, s=30.0) for p in parts])
    state = {"num_cells": [p.num_cells for p in parts], "heads": heads.state_dict(), "scale": 30.0}
    torch.save({"method": "geocell", "model_spec": model.spec, "method_state": state}, run / "best.pt")
    return run
