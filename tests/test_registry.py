"""Registry: registration, lookup with suggestions, patterns, metadata."""

from __future__ import annotations

import pytest

from vgloc.registry import Registry, UnknownNameError


@pytest.fixture
def reg() -> Registry[object]:
    r: Registry[object] = Registry("pool")

    @r.register("avg", channels=1, description="average")
    def build_avg() -> str:
        return "avg"

    r.register("max", object(), description="max")
    r.register("gem", "GEM-OBJ", p=3)
    r.register("netvlad", "NV")
    return r


def test_decorator_returns_the_object_and_get_finds_it(reg: Registry[object]) -> None:
    builder = reg.get("avg")
    assert callable(builder) and builder() == "avg"
    assert reg.get("gem") == "GEM-OBJ"


def test_metadata_is_stored_and_read_only(reg: Registry[object]) -> None:
    assert reg.metadata("gem")["p"] == 3
    assert reg.entry("avg").description == "average"
    assert reg.entry("gem").description == ""
    with pytest.raises(TypeError):
        reg.metadata("gem")["p"] = 4  # type: ignore[index]


def test_names_are_sorted_and_filtered_by_pattern(reg: Registry[object]) -> None:
    assert reg.names() == ["avg", "gem", "max", "netvlad"]
    assert reg.names("*a*") == ["avg", "max", "netvlad"]
    assert reg.names("G*") == ["gem"]  # case-insensitive
    assert reg.names("x*") == []
    assert list(reg) == reg.names() and len(reg) == 4 and "gem" in reg and "nope" not in reg


def test_unknown_name_lists_close_matches(reg: Registry[object]) -> None:
    with pytest.raises(UnknownNameError) as info:
        reg.get("netvald")
    msg = str(info.value)
    assert "unknown pool 'netvald'" in msg
    assert "did you mean: netvlad?" in msg
    assert "known: avg, gem, max, netvlad" in msg
    assert not msg.startswith('"')  # not KeyError's quoted repr


def test_unknown_name_error_is_both_key_and_value_error(reg: Registry[object]) -> None:
    with pytest.raises(KeyError):
        reg.get("zzz")
    with pytest.raises(ValueError, match="known: avg"):
        reg.get("zzz")
    assert reg.suggest("zzz") == []


def test_duplicate_registration_is_refused_unless_override(reg: Registry[object]) -> None:
    with pytest.raises(ValueError, match="already registered"):
        reg.register("gem", "OTHER")
    reg.register("gem", "OTHER", override=True)
    assert reg.get("gem") == "OTHER"


@pytest.mark.parametrize("bad", ["", "two words", None])
def test_invalid_names_are_refused(reg: Registry[object], bad: object) -> None:
    with pytest.raises(ValueError, match="invalid pool name"):
        reg.register(bad, "x")  # type: ignore[arg-type]


def test_unregister(reg: Registry[object]) -> None:
    reg.unregister("max")
    assert "max" not in reg
    with pytest.raises(UnknownNameError):
        reg.unregister("max")


def test_model_registries_are_filled_by_importing_vgloc_models() -> None:
    import vgloc.models  # noqa: F401
    from vgloc.registry import AGGREGATORS, BACKBONES, HEADS

    assert {"resnet18", "resnet50", "vgg16", "tiny"} <= set(BACKBONES.names())
    assert {"avg", "max", "gem", "netvlad", "crn"} <= set(AGGREGATORS.names())
    assert {"fc", "none"} <= set(HEADS.names())
    assert BACKBONES.metadata("resnet50")["channels"] == {"conv4": 1024, "conv5": 2048}


def test_claimant_prefers_a_claiming_entry_and_falls_back() -> None:
    reg: Registry[type] = Registry("thing")

    class Everything:
        @staticmethod
        def claims(spec: str) -> bool:
            raise AssertionError("the fallback is never asked")

    class Sift:
        @staticmethod
        def claims(spec: str) -> bool:
            return spec.startswith("sift")

    with pytest.raises(RuntimeError, match="no fallback thing"):
        reg.claimant("x")
    reg.register("local", Everything, fallback=True)
    reg.register("sift", Sift)
    assert reg.claimant("sift+mnn") is Sift
    assert reg.claimant("orb+mnn") is Everything
