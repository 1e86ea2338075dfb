"""Evaluation of a cross-view network: retrieval recall and orientation error.

Every street view of the split is a query; every aerial tile of the split is a
reference, described at ``K`` rotations (``k * 360 / K`` degrees, Vo & Hays 2016's
test-time rotation sampling). A query's score for a tile is the best similarity over
the rotations (``fusion="best"``) or the similarity to the tile's averaged rotated
descriptors (``fusion="mean"``, one vector per tile in the index).

Metrics: Recall@1/5/10 and recall at top 1 % (the true tile within the best
``ceil(T / 100)`` tiles, as reported on CVUSA); the orientation is estimated against the
query's true tile (so it is measured apart from retrieval): the angle of the best
rotation, plus the orientation head's prediction when the network has one. Median error
and a 10-degree histogram are reported.

Pair classifiers (``classification``, ``hybrid``; :mod:`vgloc.crossview.pairnet`) have no
embeddings: every (query, tile, rotation) pair is scored by the classifier
(:func:`score_pairs`), and the match logit plays the similarity's part (``best``: the best
rotation's logit, ``mean``: the mean logit over rotations). That costs ``N x T x K``
classifier calls, a whole backbone pass each for the classification network, so it is
meant for small test sets (docs/crossview.md says why exhaustive scoring rather than
re-ranking an embedding model's top-K).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from vgloc.crossview.data import CrossViewPairs, TileDataset, load_pairs
from vgloc.crossview.network import CrossViewNet, load_any_crossview
from vgloc.crossview.pairnet import PairClassifier, score_all_pairs
from vgloc.data.datasets import ImageDataset
from vgloc.data.transforms import build_transform
from vgloc.io import write_json_atomic

__all__ = [
    "FUSIONS",
    "describe_pairs",
    "evaluate_crossview",
    "metrics_from_scores",
    "orientation_errors",
    "retrieval_metrics",
    "score_pairs",
]

FUSIONS = ("best", "mean")


@torch.no_grad()
def describe_pairs(
    net: CrossViewNet,
    pairs: CrossViewPairs,
    samples: int,
    batch_size: int = 32,
    device: str = "cpu",
    workers: int = 0,
) -> tuple[Tensor, Tensor, list[float]]:
    """Embeddings of every street view and of every tile at ``samples`` rotations.

    Returns:
        ``(ground (N, D), tiles (T, K, D), angles [K] in degrees)``, on the CPU.
    """
    cfg = net.config
    net = net.to(device).eval()
    ground_ds = ImageDataset(pairs.ground, build_transform(cfg.ground_size))
    g = [
        net.encode_ground(x.to(device)).cpu()
        for x, _ in DataLoader(ground_ds, batch_size, num_workers=workers)
    ]
    tile_ds = TileDataset(pairs.tiles, cfg.aerial_size, samples)
    t = []
    for x in DataLoader(tile_ds, max(1, batch_size // samples), num_workers=workers):
        b, k = x.shape[:2]
        t.append(net.encode_aerial(x.flatten(0, 1).to(device)).cpu().view(b, k, -1))
    return torch.cat(g), torch.cat(t), tile_ds.angles


def retrieval_metrics(
    ground: Tensor, tiles: Tensor, tile_of: np.ndarray, fusion: str = "best"
) -> dict[str, Any]:
    """Recall@1/5/10 and recall at top 1 % of each query's true tile.

    Args:
        ground: ``(N, D)`` street-view embeddings.
        tiles: ``(T, K, D)`` tile embeddings at K rotations.
        tile_of: ``(N,)`` true tile per query.
        fusion: ``best`` (max over rotations) or ``mean`` (averaged, re-normalised descriptors).

    Returns:
        ``{"recall@1": ..., "recall@5": ..., "recall@10": ..., "recall@top1%": ..., "top1%_k": k,
        "median_rank": ...}`` (recalls in percent).
    """
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    if fusion == "best":
        sim = torch.einsum("nd,tkd->ntk", ground, tiles).amax(-1)
    else:
        sim = ground @ F.normalize(tiles.mean(1), dim=1).T
    return metrics_from_scores(sim, tile_of)


def metrics_from_scores(sim: Tensor, tile_of: np.ndarray) -> dict[str, Any]:
    """Recall@1/5/10, recall at top 1 % and median rank from a query x tile score matrix.

    Args:
        sim: ``(N, T)`` scores, higher = better match.
        tile_of: ``(N,)`` true tile per query.

    Returns:
        The keys of :func:`retrieval_metrics`.
    """
    truth = torch.as_tensor(tile_of, dtype=torch.long)
    true_sim = sim[torch.arange(len(truth)), truth]
    rank = (sim > true_sim[:, None]).sum(1)  # 0 = retrieved first; ties count in the query's favour
    n_tiles = sim.shape[1]
    k1 = max(1, math.ceil(n_tiles / 100))
    out: dict[str, Any] = {
        f"recall@{k}": round(100 * float((rank < k).float().mean()), 2) for k in (1, 5, 10)
    }
    out["recall@top1%"] = round(100 * float((rank < k1).float().mean()), 2)
    out["top1%_k"] = k1
    out["median_rank"] = float(rank.float().median()) + 1
    return out


@torch.no_grad()
def orientation_errors(
    net: CrossViewNet,
    ground: Tensor,
    tiles: Tensor,
    angles: list[float],
    tile_of: np.ndarray,
    heading: np.ndarray,
) -> np.ndarray:
    """Absolute heading error (degrees, 0..180) of each query with a known heading, against its true tile.

    The estimate is the angle of the tile rotation that matches best, corrected by the
    orientation head's relative heading when the network has one.

    Shape:
        - ground: ``(N, D)``; tiles: ``(T, K, D)``; tile_of, heading: ``(N,)``
        - Output: ``(M,)``, M = queries with a finite heading
    """
    known = np.isfinite(heading)
    idx = torch.as_tensor(np.flatnonzero(known), dtype=torch.long)
    if len(idx) == 0:
        return np.zeros(0)
    g = ground[idx]
    t = tiles[torch.as_tensor(tile_of, dtype=torch.long)[idx]]  # (M, K, D)
    best = torch.einsum("md,mkd->mk", g, t).argmax(1)
    est = torch.as_tensor(angles, dtype=torch.float64)[best]
    if net.orientation is not None:
        pred = net.orientation(g, t[torch.arange(len(idx)), best]).double()
        est = est + torch.rad2deg(torch.atan2(pred[:, 1], pred[:, 0]))
    diff = (est.numpy() - heading[known]) % 360.0
    return np.minimum(diff, 360.0 - diff)


@torch.no_grad()
def score_pairs(
    net: PairClassifier,
    pairs: CrossViewPairs,
    samples: int,
    batch_size: int = 32,
    device: str = "cpu",
    workers: int = 0,
) -> tuple[Tensor, list[float]]:
    """The match logit of every (street view, tile, rotation) of a split.

    Each image's own part is computed once (:meth:`PairClassifier.embed_ground` /
    ``embed_aerial``); the classifier then runs on every pair, ``8 * batch_size`` pairs per call.

    Returns:
        ``(scores (N, T, K), angles [K] in degrees)``, on the CPU.
    """
    cfg = net.config
    net = net.to(device).eval()
    ground_ds = ImageDataset(pairs.ground, build_transform(cfg.ground_size))
    g = torch.cat(
        [net.embed_ground(x.to(device)) for x, _ in DataLoader(ground_ds, batch_size, num_workers=workers)]
    )
    tile_ds = TileDataset(pairs.tiles, cfg.aerial_size, samples)
    refs = torch.cat(
        [
            net.embed_aerial(x.flatten(0, 1).to(device))
            for x in DataLoader(tile_ds, max(1, batch_size // samples), num_workers=workers)
        ]
    )  # (T * K, ...), tile-major
    scores = score_all_pairs(net, g, refs, pairs_per_call=8 * batch_size)
    return scores.cpu().view(len(g), len(pairs.tiles), samples), tile_ds.angles


def _pair_orientation_errors(
    scores: Tensor, angles: list[float], tile_of: np.ndarray, heading: np.ndarray
) -> np.ndarray:
    """Heading error (degrees, 0..180) of the best-scoring rotation of each query's true tile.

    Shape:
        - scores: ``(N, T, K)``; tile_of, heading: ``(N,)``
        - Output: ``(M,)``, M = queries with a finite heading
    """
    known = np.flatnonzero(np.isfinite(heading))
    truth = torch.as_tensor(tile_of, dtype=torch.long)
    best = scores[torch.arange(len(truth)), truth].argmax(1).numpy()[known]
    diff = (np.asarray(angles, dtype=np.float64)[best] - heading[known]) % 360.0
    return np.minimum(diff, 360.0 - diff)


def evaluate_crossview(
    checkpoint: str | os.PathLike[str],
    dataset: str | os.PathLike[str],
    *,
    split: str = "test",
    folder: str = "queries",
    samples: int = 1,
    fusion: str = "best",
    batch_size: int = 32,
    device: str = "cpu",
    workers: int = 0,
    out_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Evaluate a cross-view checkpoint on a split; write ``results.json`` into ``out_dir`` if given.

    Returns:
        The results: recalls, median orientation error, its histogram (counts per 10-degree
        bin from 0 to 180), the counts and the settings.
    """
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    net, extra = load_any_crossview(checkpoint)
    pairs = load_pairs(dataset, split, folder)
    if isinstance(net, CrossViewNet):
        ground, tiles, angles = describe_pairs(net, pairs, samples, batch_size, device, workers)
        res: dict[str, Any] = retrieval_metrics(ground, tiles, pairs.tile_of, fusion)
        err = orientation_errors(net.cpu(), ground, tiles, angles, pairs.tile_of, pairs.heading)
        method = "best rotation + head" if net.orientation is not None else "best rotation"
    elif isinstance(net, PairClassifier):
        scores, angles = score_pairs(net, pairs, samples, batch_size, device, workers)
        res = metrics_from_scores(scores.amax(-1) if fusion == "best" else scores.mean(-1), pairs.tile_of)
        err = _pair_orientation_errors(scores, angles, pairs.tile_of, pairs.heading)
        method = "best-scoring rotation"
    else:  # a kind registered elsewhere
        raise ValueError(f"{checkpoint}: no evaluation for a {net.config.arch!r} network")
    hist, _ = np.histogram(err, bins=18, range=(0.0, 180.0))
    res.update(
        {
            "median_orientation_error_deg": round(float(np.median(err)), 2) if len(err) else None,
            "orientation_histogram_10deg": hist.tolist(),
            "orientation_method": method,
            "arch": net.config.arch,
            "queries": len(pairs),
            "tiles": len(pairs.tiles),
            "samples": samples,
            "fusion": fusion,
            "split": split,
            "folder": folder,
            "checkpoint": str(checkpoint),
            "config": {**net.config.__dict__, "ground_size": list(net.config.ground_size)},
            "train_settings": extra.get("settings", {}),
        }
    )
    if out_dir is not None:
        write_json_atomic(Path(out_dir) / "results.json", res)
    return res
