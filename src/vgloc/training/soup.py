"""Model soups: average the weights of several fine-tuned models of one architecture.

Wortsman et al., "Model soups: averaging weights of multiple fine-tuned models improves
accuracy without increasing inference time", ICML 2022 (https://arxiv.org/abs/2203.05482;
code: github.com/mlfoundations/model-soups). A soup is one model whose every floating-point
parameter and buffer is the element-wise mean of its ingredients', so it costs what one
model costs at inference.

* **uniform**: the mean of all ingredients.
* **greedy** (the paper's Recipe 1): score every ingredient alone on held-out validation
  data, sort them best first, start the soup with the best, and try each next one: it is
  kept when the soup with it scores at least as well as the soup without it. The paper's
  Recipe 1 writes ``>=``; the authors' ``main.py`` keeps a model only on a strict ``>``
  (``strict=True`` here). The score is validation Recall@1 (mean over the query domains)
  from :func:`vgloc.evaluation.evaluate_sets`, the protocol of ``vgloc eval`` and
  training validation (:class:`ValidationScorer`); any callable ``state_dict -> float``
  can replace it.

Ingredients are any model file ``vgloc eval --checkpoint`` takes: vgloc model files
(``best_model.pt``, the ``snapshots`` add-on's ``snapshots/epoch_001.pt`` ...), training
checkpoints (``last.pt``, ``best.pt``: their ``model`` entry), and, given the model spec,
authors' state dicts. All are read with ``weights_only=True``. They must share the spec
and every state-dict key, shape and dtype; :func:`inspect_ingredients` checks that for
all of them before anything is averaged or evaluated, naming the first difference.

Averaging rules: floating-point tensors are averaged in float64 and cast back to their
dtype. BatchNorm running means and variances are floating-point buffers, so they are
averaged like the weights, as the authors' code averages the whole state dict. Averaged
statistics are not the statistics of the averaged network; weight-averaging methods such
as SWA (Izmailov et al. 2018) recompute them on training images afterwards, which vgloc
does not do. Integer buffers
(BatchNorm's ``num_batches_tracked``, NetVLAD's ``initialized`` flag) cannot be averaged
meaningfully and are taken from the soup's first ingredient (uniform: the first file
given; greedy: the best-scoring one).

Ingredients are streamed (one read at a time, plus the float64 running sum and the
candidate soup), so memory stays a few models' worth however many are souped; files are read again for the
averaging pass and refused if they changed since they were inspected (sha256).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from vgloc.data.records import GeoImageSet
    from vgloc.describers import ExtractionOptions

from vgloc.training.soup_ingredients import (
    Ingredient,
    SoupMismatchError,
    ingredient_weights,
    inspect_ingredients,
    load_ingredient,
)

__all__ = [
    "SOUP_METHODS",
    "GreedyStep",
    "Ingredient",
    "Scorer",
    "SoupMismatchError",
    "SoupResult",
    "ValidationScorer",
    "average_state_dicts",
    "greedy_soup",
    "ingredient_weights",
    "inspect_ingredients",
    "load_ingredient",
    "make_soup",
    "save_soup",
    "uniform_soup",
]

log = logging.getLogger(__name__)

SOUP_METHODS = ("uniform", "greedy")

#: ``state_dict -> validation score`` (higher is better), e.g. a :class:`ValidationScorer`.
Scorer = Callable[[Mapping[str, Tensor]], float]


class _Pot:
    """A running sum of state dicts: float tensors summed in float64, others from the first."""

    def __init__(self, first: Mapping[str, Tensor]) -> None:
        self.dtypes = {k: v.dtype for k, v in first.items()}
        self.sums = {k: v.to(torch.float64) if v.is_floating_point() else v.clone() for k, v in first.items()}
        self.count = 1

    def mean_with(self, extra: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """The mean of the summed state dicts (and ``extra``, without adding it)."""
        n = self.count + (extra is not None)
        out = {}
        for k, s in self.sums.items():
            if s.is_floating_point():
                total = s + extra[k].to(torch.float64) if extra is not None else s
                out[k] = (total / n).to(self.dtypes[k])
            else:
                out[k] = s.clone()
        return out

    def add(self, sd: Mapping[str, Tensor]) -> None:
        for k, s in self.sums.items():
            if s.is_floating_point():
                s += sd[k].to(torch.float64)
        self.count += 1


def average_state_dicts(state_dicts: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """The element-wise mean of state dicts of one architecture.

    Args:
        state_dicts: One or more state dicts with the same keys, shapes and dtypes.

    Returns:
        Floating-point tensors: the mean (computed in float64, in each tensor's dtype);
        other tensors (integer buffers): the first state dict's, copied.
    """
    if not state_dicts:
        raise ValueError("nothing to average")
    pot = _Pot(state_dicts[0])
    for sd in state_dicts[1:]:
        pot.add(sd)
    return pot.mean_with()


def uniform_soup(ingredients: Sequence[Ingredient], spec: str | None = None) -> dict[str, Tensor]:
    """The mean of all ingredients' weights (read one at a time), as a state dict."""
    pot = _Pot(ingredient_weights(ingredients[0], spec))
    for ing in ingredients[1:]:
        pot.add(ingredient_weights(ing, spec))
    return pot.mean_with()


@dataclass(frozen=True)
class GreedyStep:
    """One ingredient's turn in a greedy soup.

    Attributes:
        index: The ingredient's position in the list given.
        path: The ingredient.
        own: Its validation score alone.
        without: The soup's score before this turn.
        with_it: The score of the soup with this ingredient added (the first ingredient:
            its own score).
        kept: Whether it stayed in the soup.
    """

    index: int
    path: str
    own: float
    without: float | None
    with_it: float
    kept: bool


def greedy_soup(
    ingredients: Sequence[Ingredient],
    score: Scorer,
    *,
    strict: bool = False,
    spec: str | None = None,
    own_scores: Sequence[float] | None = None,
) -> tuple[dict[str, Tensor], list[GreedyStep]]:
    """Recipe 1 of Wortsman et al. (2022): add ingredients best first while the soup improves.

    Args:
        ingredients: From :func:`inspect_ingredients`.
        score: ``state_dict -> score``, higher is better (validation R@1).
        strict: Keep an ingredient only when the soup's score rises (the authors' code);
            default: also when it ties (the paper's ``>=``).
        spec: See :func:`load_ingredient` (authors' files).
        own_scores: Each ingredient's score alone, if already known (else computed).

    Returns:
        ``(state dict of the soup, one step per ingredient in the order tried)``. Ties in
        the individual scores keep the order given.
    """
    if own_scores is None:
        own_scores = [score(ingredient_weights(ing, spec)) for ing in ingredients]
    order = sorted(range(len(ingredients)), key=lambda i: -own_scores[i])
    first = order[0]
    pot = _Pot(ingredient_weights(ingredients[first], spec))
    best = own_scores[first]
    steps = [GreedyStep(first, str(ingredients[first].path), best, None, best, True)]
    for i in order[1:]:
        candidate = ingredient_weights(ingredients[i], spec)
        value = score(pot.mean_with(candidate))
        kept = value > best or (not strict and value == best)
        steps.append(GreedyStep(i, str(ingredients[i].path), own_scores[i], best, value, kept))
        log.info(
            "greedy soup: %s (alone %.2f): soup %.2f -> %.2f, %s",
            ingredients[i].path, own_scores[i], best, value, "kept" if kept else "left out",
        )  # fmt: skip
        if kept:
            pot.add(candidate)
            best = value
    return pot.mean_with(), steps


class ValidationScorer:
    """Validation Recall@1 (mean over query domains) of a state dict, by the evaluation protocol.

    The network is built once from ``spec``; each call loads a state dict into it and
    runs :func:`vgloc.evaluation.evaluate_sets` (exact search, positives within
    ``threshold_m``, all queries in the denominator), as ``vgloc eval`` does.

    Args:
        spec: The model spec of the ingredients.
        database: The validation database (M images).
        queries: Domain name -> validation queries, in the database's frame.
        options: Extraction options (image size, batch size, device, precision).
        threshold_m: Positive radius in metres.
        published: A published model name whose preprocessing (normalisation, size) applies.
    """

    def __init__(
        self,
        spec: str,
        database: GeoImageSet,
        queries: Mapping[str, GeoImageSet],
        options: ExtractionOptions,
        *,
        threshold_m: float = 25.0,
        published: str | None = None,
    ) -> None:
        from vgloc.models import GeoLocalizationModel
        from vgloc.models.hub import find_published

        if not queries:
            raise ValueError("validation needs at least one query domain")
        self.model = GeoLocalizationModel(spec)
        self.entry = find_published(published) if published else None
        self.database, self.queries = database, dict(queries)
        self.options, self.threshold_m = options, float(threshold_m)

    def __call__(self, state_dict: Mapping[str, Tensor]) -> float:
        """Mean R@1 (percent) over the query domains of the model with ``state_dict``."""
        from vgloc.describers import NetDescriber
        from vgloc.evaluation import evaluate_sets

        self.model.load_state_dict(dict(state_dict), strict=True)
        describer = NetDescriber(self.model, published=self.entry)
        results = evaluate_sets(
            describer,
            self.database,
            self.queries,
            options=self.options,
            recall_values=(1,),
            threshold_m=self.threshold_m,
            metrics=("recall",),
        )
        return float(sum(r.recalls[1] for r in results.values()) / len(results))


@dataclass
class SoupResult:
    """A soup and how it was made.

    Attributes:
        state_dict: The soup's weights.
        spec: Its model spec.
        method: ``"uniform"`` or ``"greedy"``.
        ingredients: All ingredients considered, in the order given.
        kept: Indices (into ``ingredients``) of those in the soup.
        own_scores: Validation score of each ingredient alone (same order), if scored.
        score: The soup's validation score, if scored.
        steps: The greedy trace (empty for uniform).
        strict: Greedy's rule (``>`` when True, ``>=`` when False).
        published: The published name whose preprocessing applies, if any.
    """

    state_dict: dict[str, Tensor]
    spec: str
    method: str
    ingredients: list[Ingredient]
    kept: list[int]
    own_scores: list[float] | None = None
    score: float | None = None
    steps: list[GreedyStep] = field(default_factory=list)
    strict: bool = False
    published: str | None = None


def make_soup(
    ingredients: Sequence[Ingredient],
    method: str = "uniform",
    *,
    score: Scorer | None = None,
    strict: bool = False,
    spec: str | None = None,
) -> SoupResult:
    """Cook a uniform or greedy soup from inspected ingredients.

    Args:
        ingredients: From :func:`inspect_ingredients` (checked to share one architecture).
        method: ``"uniform"`` or ``"greedy"``.
        score: The validation score, e.g. a :class:`ValidationScorer` for
            ``ingredients[0].spec``. Required for greedy; with uniform it scores each
            ingredient and the soup for the record.
        strict: Greedy's tie rule (see :func:`greedy_soup`).
        spec: See :func:`load_ingredient` (authors' files).

    Returns:
        A :class:`SoupResult`.
    """
    if method not in SOUP_METHODS:
        raise ValueError(f"unknown soup method {method!r}; choose from {', '.join(SOUP_METHODS)}")
    if method == "greedy" and score is None:
        raise ValueError("a greedy soup needs validation data to score ingredients (--val DATASET)")
    if len(ingredients) < 2:
        raise ValueError(f"a soup needs at least 2 models, got {len(ingredients)}")
    own = None if score is None else [score(ingredient_weights(ing, spec)) for ing in ingredients]
    steps: list[GreedyStep] = []
    if method == "greedy":
        assert score is not None and own is not None
        sd, steps = greedy_soup(ingredients, score, strict=strict, spec=spec, own_scores=own)
        kept = sorted(s.index for s in steps if s.kept)
        value: float | None = [s.with_it for s in steps if s.kept][-1]
    else:
        sd = uniform_soup(ingredients, spec)
        kept = list(range(len(ingredients)))
        value = None if score is None else score(sd)
    first = ingredients[0]
    return SoupResult(
        sd, first.spec, method, list(ingredients), kept, own, value, steps, strict, first.published
    )


def save_soup(
    result: SoupResult, out: str | os.PathLike[str], extra: Mapping[str, Any] | None = None
) -> Path:
    """Write the soup as a vgloc model file (atomically), loadable like any ``best_model.pt``.

    The file's ``extra["soup"]`` records the method, every ingredient (path, sha256,
    kind, score alone, kept), the greedy trace and the soup's score.

    Args:
        result: From :func:`make_soup`.
        out: Destination file; must not be one of the ingredients.
        extra: More metadata (e.g. the validation settings), plain types only.

    Returns:
        ``out``.
    """
    from vgloc.models import GeoLocalizationModel, save_model

    out = Path(out)
    for ing in result.ingredients:
        if out.exists() and ing.path.exists() and out.resolve() == ing.path.resolve():
            raise ValueError(f"--out {out} is one of the ingredients; write the soup to another file")
    model = GeoLocalizationModel(result.spec)
    model.load_state_dict(result.state_dict, strict=True)
    record: dict[str, Any] = {
        "method": result.method,
        "paper": "Wortsman et al., Model soups, ICML 2022 (arXiv:2203.05482)",
        "ingredients": [
            {
                "path": str(ing.path),
                "sha256": ing.sha256,
                "kind": ing.kind,
                "score": None if result.own_scores is None else result.own_scores[i],
                "kept": i in result.kept,
            }
            for i, ing in enumerate(result.ingredients)
        ],
        "score": result.score,
        "score_name": "validation R@1 (mean over domains)",
        "greedy_rule": ">" if result.strict else ">=",
        "greedy": [vars(s).copy() for s in result.steps],
        "published": result.published,
    }
    return save_model(model, out, {**dict(extra or {}), "soup": record})
