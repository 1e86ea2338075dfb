"""Spec strings: canonical round trip and clear errors."""

from __future__ import annotations

import pytest

from vgloc.models import ModelSpec, list_models
from vgloc.registry import UnknownNameError


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("resnet18+gem+fc512", "resnet18+gem+fc512"),
        ("resnet50.conv4+netvlad64", "resnet50.conv4+netvlad64"),
        ("tiny+avg", "tiny+avg"),
        ("resnet18.conv4+netvlad64", "resnet18.conv4+netvlad64"),
        # Defaults are made explicit (clusters) or dropped (conv5 cut, none head).
        ("resnet18.conv5+gem", "resnet18+gem"),
        ("resnet50.conv4+netvlad", "resnet50.conv4+netvlad64"),
        ("tiny+max+none", "tiny+max"),
        ("  ResNet18 + GeM + FC512 ", "resnet18+gem+fc512"),
        ("vgg16+crn32+fc128", "vgg16+crn32+fc128"),
    ],
)
def test_parse_gives_canonical_string_and_round_trips(text: str, canonical: str) -> None:
    spec = ModelSpec.parse(text)
    assert str(spec) == canonical
    assert ModelSpec.parse(str(spec)) == spec
    assert ModelSpec.parse(canonical) == spec


def test_parsed_fields() -> None:
    s = ModelSpec.parse("resnet50.conv4+netvlad32+fc256")
    assert (s.backbone, s.cut, s.aggregator, s.aggregator_arg, s.head, s.head_arg) == (
        "resnet50",
        "conv4",
        "netvlad",
        32,
        "fc",
        256,
    )
    assert s.out_channels == 1024
    t = ModelSpec.parse("resnet18+gem")
    assert (t.cut, t.aggregator_arg, t.head, t.head_arg) == ("conv5", None, "none", None)


def test_constructor_normalises_defaults_like_parse() -> None:
    assert ModelSpec("resnet18", "gem") == ModelSpec.parse("resnet18.conv5+gem+none")
    assert ModelSpec("resnet18", "netvlad") == ModelSpec.parse("resnet18+netvlad64")
    assert ModelSpec.parse(ModelSpec("tiny", "avg")) == ModelSpec("tiny", "avg")


@pytest.mark.parametrize(
    ("text", "err", "fragments"),
    [
        ("resnet19+gem", UnknownNameError, ["unknown backbone 'resnet19'", "resnet18"]),
        ("resnet18+netvald64", UnknownNameError, ["unknown aggregator", "netvlad"]),
        ("resnet18+gem+fx512", UnknownNameError, ["unknown head", "fc"]),
        ("resnet18.conv3+gem", ValueError, ["no cut 'conv3'", ".conv4", ".conv5"]),
        ("tiny.conv4+gem", ValueError, ["no cut 'conv4'", ".conv5"]),
        ("resnet18+gem+fc", ValueError, ["needs its out_dim", "fc512"]),
        ("resnet18+gem3", ValueError, ["takes no number"]),
        ("resnet18+gem+none2", ValueError, ["takes no number"]),
        ("resnet18", ValueError, ["malformed model spec", "backbone[.cut]+aggregator"]),
        ("resnet18++gem", ValueError, ["malformed"]),
        ("a+b+c+d", ValueError, ["malformed"]),
        ("resnet18+netvlad0", ValueError, ["positive"]),
    ],
)
def test_bad_specs_fail_with_clear_messages(text: str, err: type[Exception], fragments: list[str]) -> None:
    with pytest.raises(err) as info:
        ModelSpec.parse(text)
    for frag in fragments:
        assert frag in str(info.value), (frag, str(info.value))


def test_non_string_spec_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="model spec is a string"):
        ModelSpec.parse(42)  # type: ignore[arg-type]


def test_list_models_rows_and_pattern() -> None:
    rows = {r.name: r for r in list_models("resnet50*")}
    assert rows["resnet50"].dim == "2048" and rows["resnet50"].kind == "backbone"
    assert rows["resnet50.conv4"].dim == "1024"
    # The CLI prints rows through vars().
    fields = ["kind", "name", "dim", "description", "spec", "eval_size", "normalize", "source"]
    assert list(vars(rows["resnet50"])) == fields
    assert all(n.startswith("resnet50") for n in rows)
    kinds = {r.kind for r in list_models()}
    assert kinds == {"backbone", "aggregator", "head", "weights"}
    netvlad = [r for r in list_models("netvlad*")]
    assert [(r.kind, r.name, r.dim) for r in netvlad] == [("aggregator", "netvlad{clusters}", "K*C")]
    weights = {r.name: r for r in list_models("cosplace:*")}
    assert weights["cosplace:resnet50+gem+fc2048"].dim == "2048"
    # Every published spec parses and is already canonical.
    for name in weights:
        spec = name.split(":", 1)[1]
        assert str(ModelSpec.parse(spec)) == spec
