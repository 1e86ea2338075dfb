"""The chance level of Recall@N, and the words for the evaluated weights."""

from __future__ import annotations

import numpy as np
import pytest

from vgloc.evaluation.chance import chance_recall, weights_label


def test_chance_recall_matches_random_rankings() -> None:
    rng = np.random.default_rng(0)
    m = 30
    positives = [np.array([], dtype=int), np.array([3]), np.arange(5), np.arange(12), np.arange(m)]
    expected = chance_recall(m, positives, (1, 5, 10, 40))
    trials = 20000
    for n in (1, 5, 10, 40):
        found = [
            np.isin(np.argsort(rng.random((trials, m)), axis=1)[:, :n], p).any(axis=1) for p in positives
        ]
        simulated = 100.0 * float(np.mean(found))
        assert expected[n] == pytest.approx(simulated, abs=1.0), n


def test_chance_recall_closed_cases() -> None:
    # One positive among M: N/M; every image positive: 100 %; none: 0 %; N beyond M: certain.
    assert chance_recall(20, [np.array([7])], (1, 5)) == pytest.approx({1: 5.0, 5: 25.0})
    assert chance_recall(4, [np.arange(4)], (1,)) == {1: 100.0}
    assert chance_recall(4, [np.array([], dtype=int)], (1, 10)) == {1: 0.0, 10: 0.0}
    assert chance_recall(4, [np.array([1])], (10,)) == {10: 100.0}
    assert chance_recall(4, [], (1,)) == {1: 0.0}
    with pytest.raises(ValueError, match="N must be"):
        chance_recall(4, [np.array([1])], (0,))


def test_weights_label_says_trained_pretrained_or_random() -> None:
    assert weights_label("resnet18+gem", {"checkpoint": "best.pt"}) == "trained weights from best.pt"
    assert "ImageNet-pretrained" in weights_label("resnet18+gem", {"pretrained": True})
    assert "hand-crafted" in weights_label("rootsift+vlad16", {})
    assert "random initialisation" in weights_label("tiny+gem", {"checkpoint": None, "pretrained": False})
