"""An aerial index and street-photo location against it: tile centre, heading, confidence.

``build_aerial_index`` describes every tile of a split (at ``K`` rotations) with a
cross-view checkpoint and writes ``DIR/aerial_index.pt`` atomically: the embeddings, the
tile paths and centres, the rotation angles and the checkpoint's path and SHA-256, so
:func:`locate_photos` refuses an index whose checkpoint changed. The file holds tensors
and plain types only and is read with ``torch.load(weights_only=True)``. The index is
small (``T x K x D`` floats), so the search is an exact matrix product, not FAISS.

A photo's answer is the best tile (by its best rotation), the tile centre as the
position, the heading from the best rotation (+ the orientation head when the network
has one), and a confidence: the softmax probability of that tile over all tiles at
temperature 0.1 on the cosine similarities.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from vgloc._version import __version__
from vgloc.crossview.data import CrossViewPairs, TileDataset, load_pairs
from vgloc.crossview.network import load_crossview
from vgloc.data.datasets import ImageDataset
from vgloc.data.transforms import build_transform
from vgloc.io import atomic_path

__all__ = ["INDEX_FILE", "build_aerial_index", "locate_photos"]

INDEX_FILE = "aerial_index.pt"
INDEX_FORMAT = "vgloc-aerial-index"
CONFIDENCE_TEMPERATURE = 0.1


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@torch.no_grad()
def build_aerial_index(
    checkpoint: str | os.PathLike[str],
    dataset: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    split: str = "test",
    folder: str = "database",
    samples: int = 8,
    batch_size: int = 32,
    device: str = "cpu",
) -> Path:
    """Describe the aerial tiles of ``dataset``'s ``split`` and write ``out_dir/aerial_index.pt``.

    Args:
        checkpoint: A cross-view checkpoint.
        dataset: A synthetic city or CSV layout (see :func:`vgloc.crossview.data.load_pairs`).
        out_dir: Output folder.
        split: Split whose tiles are indexed.
        folder: Street-view folder of a synthetic city (read only to list the split).
        samples: Rotations per tile (``k * 360 / K`` degrees).

    Returns:
        The index file.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    ckpt = Path(checkpoint)
    net, _ = load_crossview(ckpt)
    pairs: CrossViewPairs = load_pairs(dataset, split, folder)
    net = net.to(device)
    tiles = TileDataset(pairs.tiles, net.config.aerial_size, samples)
    emb = []
    for x in DataLoader(tiles, max(1, batch_size // samples)):
        b, k = x.shape[:2]
        emb.append(net.encode_aerial(x.flatten(0, 1).to(device)).cpu().view(b, k, -1))
    payload = {
        "format": INDEX_FORMAT,
        "vgloc_version": __version__,
        "checkpoint": str(ckpt.resolve()),
        "checkpoint_sha256": _sha256(ckpt),
        "angles": tiles.angles,
        "tiles": [str(p) for p in pairs.tiles],
        "tile_latlon": torch.as_tensor(pairs.tile_latlon),
        "embeddings": torch.cat(emb),
    }
    out = Path(out_dir) / INDEX_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.save(payload, tmp)
    return out


@torch.no_grad()
def locate_photos(
    index: str | os.PathLike[str], photos: Sequence[str | os.PathLike[str]], *, device: str = "cpu"
) -> list[dict[str, Any]]:
    """Locate and orient street photos against an aerial index.

    Args:
        index: ``aerial_index.pt`` or the folder holding it.
        photos: Image files.

    Returns:
        One dict per photo: ``image``, ``lat``, ``lon`` (tile centre), ``heading_deg``
        (clockwise from north, 0..360), ``confidence`` (0..1), ``tile``.

    Raises:
        ValueError: Not an index, or its checkpoint changed since it was built.
        FileNotFoundError: A missing index, checkpoint or photo.
    """
    path = Path(index)
    path = path / INDEX_FILE if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"no aerial index {path} (build one with `vgloc crossview index`)")
    if not photos:
        raise ValueError("no photos to locate")
    for p in photos:
        if not Path(p).is_file():
            raise FileNotFoundError(f"no photo {p}")
    idx = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(idx, dict) or idx.get("format") != INDEX_FORMAT:
        raise ValueError(f"{path} is not an aerial index")
    ckpt = Path(idx["checkpoint"])
    if not ckpt.is_file():
        raise FileNotFoundError(f"the index's checkpoint {ckpt} is gone")
    if _sha256(ckpt) != idx["checkpoint_sha256"]:
        raise ValueError(f"{ckpt} changed since the index was built; rebuild the index")
    net, _ = load_crossview(ckpt)
    net = net.to(device)
    ds = ImageDataset(list(photos), build_transform(net.config.ground_size))
    g = torch.cat([net.encode_ground(x.to(device)).cpu() for x, _ in DataLoader(ds, batch_size=16)])
    emb: torch.Tensor = idx["embeddings"]
    sim = torch.einsum("nd,tkd->ntk", g, emb)
    best_sim, best_k = sim.max(-1)  # (N, T)
    prob = torch.softmax(best_sim / CONFIDENCE_TEMPERATURE, dim=1)
    tile = best_sim.argmax(1)
    k = best_k[torch.arange(len(tile)), tile]
    heading = torch.as_tensor(idx["angles"], dtype=torch.float64)[k]
    if net.orientation is not None:
        pred = net.orientation(g.to(device), emb[tile, k].to(device)).cpu().double()
        heading = heading + torch.rad2deg(torch.atan2(pred[:, 1], pred[:, 0]))
    ll = np.asarray(idx["tile_latlon"])
    return [
        {
            "image": str(photos[i]),
            "lat": float(ll[int(tile[i]), 0]),
            "lon": float(ll[int(tile[i]), 1]),
            "heading_deg": round(float(heading[i]) % 360.0, 2),
            "confidence": round(float(prob[i, tile[i]]), 4),
            "tile": idx["tiles"][int(tile[i])],
        }
        for i in range(len(tile))
    ]
