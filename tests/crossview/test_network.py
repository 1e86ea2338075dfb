"""Two-branch network: weight sharing modes, orientation head, checkpoint round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vgloc.crossview.network import CrossViewConfig, CrossViewNet, load_crossview, save_crossview

SPEC = "tiny+gem+fc16"


def test_sharing_modes() -> None:
    sep = CrossViewNet(CrossViewConfig(SPEC))
    assert sep.ground is not sep.aerial and sep.ground.head is not sep.aerial.head
    shared = CrossViewNet(CrossViewConfig(SPEC, sharing="shared"))
    assert shared.aerial is shared.ground
    last = CrossViewNet(CrossViewConfig(SPEC, sharing="shared_last"))
    assert last.ground.backbone is not last.aerial.backbone
    assert last.aerial.head is last.ground.head and last.aerial.aggregator is last.ground.aggregator
    n_sep = sum(p.numel() for p in sep.parameters())
    assert sum(p.numel() for p in last.parameters()) < n_sep
    assert sum(p.numel() for p in shared.parameters()) == n_sep // 2


def test_bad_configs() -> None:
    with pytest.raises(ValueError, match="sharing"):
        CrossViewConfig(SPEC, sharing="half")
    with pytest.raises(ValueError, match="same spec"):
        CrossViewNet(CrossViewConfig(SPEC, "tiny+gem+fc32", sharing="shared"))
    with pytest.raises(ValueError, match="same aggregator"):
        CrossViewNet(CrossViewConfig(SPEC, "tiny+gem+fc32", sharing="shared_last"))
    with pytest.raises(ValueError, match="must match"):
        CrossViewNet(CrossViewConfig(SPEC, "tiny+gem+fc32"))


def test_orientation_head_outputs_unit_vectors() -> None:
    net = CrossViewNet(CrossViewConfig(SPEC, orientation_head=True))
    assert net.orientation is not None
    out = net.orientation(torch.randn(3, 16), torch.randn(3, 16))
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = CrossViewNet(
        CrossViewConfig(SPEC, sharing="shared_last", orientation_head=True, ground_size=(24, 32))
    )
    path = save_crossview(net, tmp_path / "x.pt", {"steps": 3})
    back, extra = load_crossview(path)
    assert extra == {"steps": 3} and back.config == net.config
    x = torch.randn(2, 3, 24, 32)
    torch.testing.assert_close(back.encode_ground(x), net.eval().encode_ground(x))
    assert back.aerial.head is back.ground.head  # sharing survives the round trip


def test_load_refuses_other_files(tmp_path: Path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a vgloc cross-view checkpoint"):
        load_crossview(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_crossview(tmp_path / "missing.pt")
