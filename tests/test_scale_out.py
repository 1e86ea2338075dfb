"""Which shard a process describes: ``--shard K/N``, torchrun's environment, or one of one."""

from __future__ import annotations

import pytest

from vgloc.scale_out import RankInfo, parse_shard, rank_info


def test_rank_from_torchrun_environment() -> None:
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "10.0.0.1"}
    assert rank_info(env=env) == RankInfo(3, 4, 1, True)
    # Without a rendezvous address there is no barrier to wait at.
    assert rank_info(env={"RANK": "0", "WORLD_SIZE": "2"}).distributed is False


def test_without_torchrun_one_shard_of_one() -> None:
    assert rank_info(env={}) == RankInfo(0, 1, 0, False)


def test_explicit_shard_wins_over_the_environment() -> None:
    env = {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "x"}
    assert rank_info("2/5", env=env) == RankInfo(2, 5, 0, False)


@pytest.mark.parametrize("text", ["3", "2/2", "-1/2", "a/b", "0/0", "1/"])
def test_bad_shard_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="K/N"):
        parse_shard(text)


def test_rank_outside_world_is_refused() -> None:
    with pytest.raises(ValueError, match="RANK=2"):
        rank_info(env={"RANK": "2", "WORLD_SIZE": "2"})
