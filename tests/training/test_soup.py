"""Model soups: uniform means checked by hand, greedy's Recipe 1 on a hand-made case and on a real city."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest
import torch

import vgloc
from vgloc.describers import ExtractionOptions, NetDescriber, resolve_describer
from vgloc.evaluation import load_sets
from vgloc.models import create_model, load_model, save_model
from vgloc.training.checkpoint import save_training_checkpoint
from vgloc.training.soup import (
    ValidationScorer,
    average_state_dicts,
    inspect_ingredients,
    make_soup,
    save_soup,
)

SPEC = "tiny+gem+fc64"
OPTIONS = ExtractionOptions(
    image_size=(48, 64), batch_size=64, precision="fp32", num_workers=0, progress=False
)
DOMAINS = ("queries", "queries_night")


def test_uniform_average_by_hand() -> None:
    a = {"w": torch.tensor([1.0, 2.0]), "h": torch.tensor([0.5], dtype=torch.float16), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, 6.0]), "h": torch.tensor([1.5], dtype=torch.float16), "n": torch.tensor(7)}
    c = {"w": torch.tensor([2.0, 1.0]), "h": torch.tensor([1.0], dtype=torch.float16), "n": torch.tensor(9)}
    soup = average_state_dicts([a, b, c])
    assert soup["w"].tolist() == [2.0, 3.0]  # (1+3+2)/3, (2+6+1)/3
    assert soup["h"].dtype == torch.float16 and soup["h"].tolist() == [1.0]
    assert soup["n"].item() == 3  # integer buffers (num_batches_tracked): the first model's
    assert average_state_dicts([a])["w"].tolist() == [1.0, 2.0]


def _toy(path: Path, w: float) -> Path:
    """A training checkpoint of a one-number 'model' (the soup never builds it)."""
    return save_training_checkpoint(
        path, {"model_spec": "toy", "model": {"w": torch.tensor([w], dtype=torch.float64)}}
    )


def _peak_at(target: float, calls: list[float]):  # type: ignore[no-untyped-def]
    def score(sd: Mapping[str, torch.Tensor]) -> float:
        w = float(sd["w"].item())
        calls.append(w)
        return -abs(w - target)

    return score


def test_greedy_keeps_only_ingredients_that_do_not_lower_the_score(tmp_path: Path) -> None:
    # score(w) = -|w - 1.5|. Alone: A -0.5, B -1, C -1.5, D -0.5, E -8.5 -> order A, D (tie: given
    # order), B, C, E. Soup {A} w=1 (-0.5); +D: w=1.5 (0) kept; +B: w=(1+2+2.5)/3 (-1/3) out;
    # +C: w=1 (-0.5) out; +E: w=13/3 out.
    values = {"A": 1.0, "B": 2.5, "C": 0.0, "D": 2.0, "E": 10.0}
    ingredients = inspect_ingredients([_toy(tmp_path / f"{n}.pt", w) for n, w in values.items()])
    calls: list[float] = []
    result = make_soup(ingredients, "greedy", score=_peak_at(1.5, calls))
    assert [Path(s.path).stem for s in result.steps] == ["A", "D", "B", "C", "E"]
    assert [s.kept for s in result.steps] == [True, True, False, False, False]
    assert [s.without for s in result.steps] == [None, -0.5, 0.0, 0.0, 0.0]
    assert [s.with_it for s in result.steps] == pytest.approx([-0.5, 0.0, -1 / 3, -0.5, -(13 / 3 - 1.5)])
    assert result.own_scores == [-0.5, -1.0, -1.5, -0.5, -8.5]
    assert result.kept == [0, 3] and result.score == 0.0
    assert result.state_dict["w"].item() == 1.5
    # Five ingredients alone, then four candidate soups, each the mean of its members.
    assert calls[5:] == pytest.approx([1.5, 11 / 6, 1.0, 13 / 3])


@pytest.mark.parametrize(("strict", "kept"), [(False, [0, 1]), (True, [0])])
def test_a_tie_is_kept_by_the_papers_rule_and_dropped_by_the_strict_one(
    tmp_path: Path, strict: bool, kept: list[int]
) -> None:
    # A and B both score -0.5 alone and together (w=1): the paper's >= keeps B, the code's > does not.
    ingredients = inspect_ingredients([_toy(tmp_path / "A.pt", 1.0), _toy(tmp_path / "B.pt", 1.0)])
    result = make_soup(ingredients, "greedy", score=_peak_at(1.5, []), strict=strict)
    assert result.kept == kept and result.steps[1].with_it == -0.5


def test_greedy_without_a_score_and_unknown_methods_are_refused(tmp_path: Path) -> None:
    ingredients = inspect_ingredients([_toy(tmp_path / "A.pt", 1.0), _toy(tmp_path / "B.pt", 2.0)])
    with pytest.raises(ValueError, match="needs validation data"):
        make_soup(ingredients, "greedy")
    with pytest.raises(ValueError, match="unknown soup method 'learned'"):
        make_soup(ingredients, "learned")
    with pytest.raises(ValueError, match="at least 2 models"):
        make_soup(ingredients[:1], "uniform")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny networks on a shared 2-core machine run much faster on one thread (as the training tests)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _ingredients(folder: Path, seeds: tuple[int, ...] = (0, 1, 2)) -> list[Path]:
    """Models sharing one start, each nudged by its own noise (stand-ins for fine-tuned runs)."""
    torch.manual_seed(0)
    start = create_model(SPEC).state_dict()
    paths = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        model = create_model(SPEC)
        model.load_state_dict(
            {
                k: v + 0.3 * v.std().nan_to_num() * torch.randn(v.shape, generator=gen)
                if v.is_floating_point() and v.numel() > 1
                else v
                for k, v in start.items()
            }
        )
        paths.append(save_model(model, folder / f"seed{seed}.pt", {"seed": seed}))
    return paths


def test_the_soup_file_describes_like_the_averaged_model_built_by_hand(
    tmp_path: Path, tiny_city: Path
) -> None:
    paths = _ingredients(tmp_path)
    result = make_soup(inspect_ingredients(paths), "uniform")
    out = save_soup(result, tmp_path / "soup.pt")
    by_hand = create_model(SPEC)
    sds = [torch.load(p, weights_only=True)["state_dict"] for p in paths]
    by_hand.load_state_dict(
        {k: sum(sd[k] for sd in sds) / 3 if sds[0][k].is_floating_point() else sds[0][k] for k in sds[0]}
    )
    images = sorted((tiny_city / "images" / "val" / "queries").iterdir())
    # The way `vgloc eval / index build --model SPEC --checkpoint soup.pt` loads it.
    from_file = resolve_describer(SPEC, out).describe(images, OPTIONS)
    np.testing.assert_allclose(from_file, NetDescriber(by_hand).describe(images, OPTIONS), atol=1e-6)
    # The way training starts from it (model.weights / `vgloc train --checkpoint soup.pt`).
    start = create_model(SPEC, weights=out).state_dict()
    assert all(torch.equal(start[k], v) for k, v in by_hand.state_dict().items() if not v.is_floating_point())
    torch.testing.assert_close(start, by_hand.state_dict())
    record = load_model(out).checkpoint_extra["soup"]
    assert record["method"] == "uniform" and [i["kept"] for i in record["ingredients"]] == [True] * 3
    assert [i["path"] for i in record["ingredients"]] == [str(p) for p in paths]
    with pytest.raises(ValueError, match="is one of the ingredients"):
        save_soup(result, paths[0])


def _eval_r1(root: Path, checkpoint: Path) -> float:
    """Mean R@1 over DOMAINS by `vgloc.evaluate` (the code behind `vgloc eval --checkpoint`)."""
    res = vgloc.evaluate(
        root, "val", SPEC, checkpoint=checkpoint, options=OPTIONS, domains=DOMAINS, report=False
    )
    return float(np.mean([res.domains[d].recalls[1] for d in DOMAINS]))


@pytest.mark.usefixtures("one_thread")
def test_greedy_on_a_city_scores_like_vgloc_eval_and_follows_recipe_1(
    tmp_path: Path, tiny_city: Path
) -> None:
    paths = _ingredients(tmp_path, (0, 1, 2))
    db, queries, _ = load_sets(tiny_city, "val", None, None, progress=False)
    scorer = ValidationScorer(SPEC, db, {d: queries[d] for d in DOMAINS}, OPTIONS)
    result = make_soup(inspect_ingredients(paths), "greedy", score=scorer)
    assert result.own_scores == pytest.approx([_eval_r1(tiny_city, p) for p in paths])
    first, *rest = result.steps
    assert {s.kept for s in rest} == {True, False}  # these seeds exercise both branches
    assert first.own == max(result.own_scores) and first.kept
    best = first.own
    for step in rest:
        assert step.without == best and step.kept == (step.with_it >= best)
        best = step.with_it if step.kept else best
    out = save_soup(result, tmp_path / "greedy.pt")
    assert result.score == best == pytest.approx(_eval_r1(tiny_city, out))
