"""The pair classifiers (classification, hybrid): shapes, the BCE loss, exhaustive scoring, training."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vgloc.crossview.evaluate import evaluate_crossview
from vgloc.crossview.network import (
    CrossViewConfig,
    build_crossview_net,
    load_any_crossview,
    load_crossview,
)
from vgloc.crossview.pairnet import (
    ClassificationNet,
    HybridNet,
    PairClassifier,
    pair_bce_loss,
    parse_negatives,
    score_all_pairs,
)
from vgloc.crossview.train import TrainSettings, train_crossview
from vgloc.registry import CROSSVIEW_NETWORKS

ARCHS = ["classification", "hybrid"]


def _net(arch: str, **kw: object) -> PairClassifier:
    net = build_crossview_net(
        CrossViewConfig("tiny+gem+fc16", ground_size=(24, 32), aerial_size=16, arch=arch, **kw)  # type: ignore[arg-type]
    )
    assert isinstance(net, PairClassifier)
    return net


def test_registered() -> None:
    assert {"embedding", "classification", "hybrid"} <= set(CROSSVIEW_NETWORKS.names())
    assert isinstance(_net("classification"), ClassificationNet) and isinstance(_net("hybrid"), HybridNet)


@pytest.mark.parametrize("arch", ARCHS)
def test_score_all_pairs_equals_one_pair_at_a_time(arch: str) -> None:
    torch.manual_seed(0)
    net = _net(arch).eval()
    g = net.embed_ground(torch.randn(3, 3, 24, 32))
    a = net.embed_aerial(torch.randn(5, 3, 16, 16))
    scores = score_all_pairs(net, g, a, pairs_per_call=4)  # chunks cross query boundaries
    assert scores.shape == (3, 5)
    with torch.no_grad():
        one = torch.stack(
            [torch.cat([net.classify(g[i : i + 1], a[j : j + 1]) for j in range(5)]) for i in range(3)]
        )
    torch.testing.assert_close(scores, one, rtol=1e-4, atol=1e-5)


def test_bce_loss_is_the_balanced_pair_bce() -> None:
    torch.manual_seed(0)
    net = _net("hybrid").eval()
    ground, aerial = torch.randn(4, 3, 24, 32), torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        loss = pair_bce_loss(net, ground, aerial, negatives=2)
        full = net(ground[:, None].expand(-1, 4, -1, -1, -1).flatten(0, 1), aerial.repeat(4, 1, 1, 1)).view(
            4, 4
        )
    pos = full.diagonal()
    neg = torch.stack([full[i, (i + s) % 4] for i in range(4) for s in (1, 2)])
    want = 0.5 * (F.softplus(-pos).mean() + F.softplus(neg).mean())  # BCE with logits, by hand
    torch.testing.assert_close(loss, want, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="negatives"):
        pair_bce_loss(net, ground, aerial, negatives=4)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread: small steps on a loaded 2-core machine are ~50x slower with two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("one_thread")
def test_classification_learns_a_batch() -> None:
    torch.manual_seed(0)
    net = _net("classification").train()
    ground, aerial = torch.randn(4, 3, 24, 32), torch.randn(4, 3, 16, 16)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(12):
        opt.zero_grad()
        loss = pair_bce_loss(net, ground, aerial, negatives=3)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="one network"):
        _net("classification", aerial_spec="tiny+gem+fc16x")
    with pytest.raises(ValueError, match="orientation head"):
        _net("hybrid", orientation_head=True)
    with pytest.raises(KeyError, match="hybrd"):
        _net("hybrd")
    assert parse_negatives("all", 8) == 7 and parse_negatives(2.0, 8) == 2
    for bad in (0, 8, 1.5, "some", True):
        with pytest.raises(ValueError, match="negatives"):
            parse_negatives(bad, 8)


def test_train_refuses_mismatched_losses(tmp_path: Path) -> None:
    hybrid = CrossViewConfig("tiny+gem+fc16", arch="hybrid")
    with pytest.raises(ValueError, match="bce"):
        train_crossview(TrainSettings(str(tmp_path), loss="infonce"), hybrid, tmp_path)
    with pytest.raises(ValueError, match="gradient caching"):
        train_crossview(TrainSettings(str(tmp_path), loss="bce", chunk_size=2), hybrid, tmp_path)
    with pytest.raises(ValueError, match="pair classifiers"):
        train_crossview(TrainSettings(str(tmp_path), loss="bce"), CrossViewConfig("tiny+gem+fc16"), tmp_path)


@pytest.mark.parametrize("arch", ARCHS)
def test_train_save_load_evaluate(xv_city: Path, tmp_path: Path, arch: str) -> None:
    cfg = CrossViewConfig("tiny+gem+fc16", ground_size=(24, 32), aerial_size=16, arch=arch)
    settings = TrainSettings(str(xv_city), loss="bce", loss_args={"negatives": "all"}, steps=2, batch_size=4)
    ckpt = train_crossview(settings, cfg, tmp_path)
    net, extra = load_any_crossview(ckpt)
    assert isinstance(net, PairClassifier) and net.config == cfg and len(extra["loss_history"]) == 1
    with pytest.raises(ValueError, match="pair classifier"):
        load_crossview(ckpt)  # what an aerial index needs: embeddings
    res = evaluate_crossview(ckpt, xv_city, samples=2, fusion="mean")
    assert res["arch"] == arch and res["orientation_method"] == "best-scoring rotation"
    assert 0 <= res["recall@1"] <= res["recall@5"] <= res["recall@10"] <= 100
    assert sum(res["orientation_histogram_10deg"]) == res["queries"] > 0
