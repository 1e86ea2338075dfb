"""Soup ingredients: every model file `vgloc eval --checkpoint` takes, checked to share one architecture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.models import _fake_published as fake
from vgloc.models import create_model, save_model
from vgloc.training.checkpoint import save_training_checkpoint
from vgloc.training.soup_ingredients import (
    SoupMismatchError,
    ingredient_weights,
    inspect_ingredients,
    load_ingredient,
)

SPEC = "tiny+gem+fc64"


def _model_file(path: Path, seed: int, spec: str = SPEC) -> Path:
    torch.manual_seed(seed)
    return save_model(create_model(spec), path)


def _fake_training_checkpoint(path: Path, spec: str, sd: dict[str, torch.Tensor]) -> Path:
    """The layout `vgloc train` writes as last.pt (only the keys a soup reads, plus optimizer noise)."""
    return save_training_checkpoint(
        path, {"model_spec": spec, "model": sd, "optimizer": {"state": {}}, "epoch": 1}
    )


def test_model_files_training_checkpoints_and_authors_state_dicts_give_the_same_weights(
    tmp_path: Path,
) -> None:
    model_file = _model_file(tmp_path / "best_model.pt", 0)
    sd = torch.load(model_file, weights_only=True)["state_dict"]
    last = _fake_training_checkpoint(tmp_path / "last.pt", SPEC, sd)
    authors = tmp_path / "authors.pth"
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in sd.items()}}, authors)

    read = {p.name: load_ingredient(p, SPEC if p == authors else None) for p in (model_file, last, authors)}
    assert [ing.kind for ing, _ in read.values()] == ["model", "training", "state_dict"]
    for ing, weights in read.values():
        assert ing.spec == SPEC
        assert weights.keys() == sd.keys()
        assert all(torch.equal(weights[k], sd[k]) for k in sd)


def test_an_authors_state_dict_needs_the_spec(tmp_path: Path) -> None:
    authors = tmp_path / "authors.pth"
    torch.save(create_model(SPEC).state_dict(), authors)
    with pytest.raises(ValueError, match="--model SPEC"):
        load_ingredient(authors)


def test_a_spec_other_than_the_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SoupMismatchError, match="holds a tiny\\+gem\\+fc64 model"):
        load_ingredient(_model_file(tmp_path / "a.pt", 0), "tiny+gem+fc32")


def test_fewer_than_two_ingredients_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 2 models, got 1"):
        inspect_ingredients([_model_file(tmp_path / "a.pt", 0)])


def test_another_spec_is_named_as_the_first_difference(tmp_path: Path) -> None:
    a, b = _model_file(tmp_path / "a.pt", 0), _model_file(tmp_path / "b.pt", 1, "tiny+gem+fc32")
    with pytest.raises(SoupMismatchError, match=r"b\.pt differs from .*a\.pt: spec 'tiny\+gem\+fc32' vs"):
        inspect_ingredients([a, b])


@pytest.mark.parametrize(
    ("other", "message"),
    [
        ({"w": torch.zeros(2), "b": torch.zeros(3)}, r"'b' has shape \(3,\) vs \(1,\)"),
        ({"w": torch.zeros(2)}, "key 'b' is missing"),
        ({"w": torch.zeros(2), "b": torch.zeros(1), "c": torch.zeros(1)}, "unexpected key 'c'"),
        ({"w": torch.zeros(2, dtype=torch.float16), "b": torch.zeros(1)}, "'w' has dtype float16 vs float32"),
    ],
)
def test_keys_shapes_and_dtypes_must_match(
    tmp_path: Path, other: dict[str, torch.Tensor], message: str
) -> None:
    a = _fake_training_checkpoint(tmp_path / "a.pt", "toy", {"w": torch.zeros(2), "b": torch.zeros(1)})
    b = _fake_training_checkpoint(tmp_path / "b.pt", "toy", other)
    with pytest.raises(SoupMismatchError, match=message):
        inspect_ingredients([a, b])


def test_a_file_changed_after_inspection_is_refused(tmp_path: Path) -> None:
    a, b = _model_file(tmp_path / "a.pt", 0), _model_file(tmp_path / "b.pt", 1)
    ingredients = inspect_ingredients([a, b])
    _model_file(b, 2)  # e.g. a training run still writing last.pt
    assert ingredient_weights(ingredients[0], None)
    with pytest.raises(ValueError, match="changed while the soup was being made"):
        ingredient_weights(ingredients[1], None)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        inspect_ingredients([_model_file(tmp_path / "a.pt", 0), tmp_path / "nope.pt"])


@pytest.fixture
def published() -> Iterator[str]:
    """The fake published model (tiny+gem+fc16 with its own key names and preprocessing), registered."""
    for entry in fake.registered(fake.make_entry()):
        yield entry.name


def test_a_published_name_must_have_the_files_architecture_and_brings_its_preprocessing(
    tmp_path: Path, published: str
) -> None:
    tuned = save_model(fake.reference_model(), tmp_path / "tuned.pt")  # e.g. fine-tuned from the release
    ingredient, _ = load_ingredient(tuned, published)
    assert (ingredient.spec, ingredient.published) == (fake.SPEC, published)
    release = fake.write_release(fake.reference_model(2), tmp_path / "release.pth")  # authors' key names
    ingredient, weights = load_ingredient(release, published)
    assert ingredient.kind == "state_dict" and ingredient.published == published
    expected = fake.reference_model(2).state_dict()
    assert all(torch.equal(weights[k], expected[k]) for k in expected)
    with pytest.raises(SoupMismatchError, match=r"holds a tiny\+gem\+fc64 model, but --model fakepub-tiny"):
        load_ingredient(_model_file(tmp_path / "other.pt", 0), published)
