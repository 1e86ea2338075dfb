"""Shared helper for the authors'-checkpoint fixtures (shared/fixtures/checkpoints/README.md).

Builds the rule-A / rule-B synthetic state dicts from ``<name>.keys.tsv`` (via
:mod:`tests.models._fixture_rules`), wraps them the way the authors publish their files
(container dict, ``module.`` prefix, safetensors), reads the fixture's expected outputs and
compares with the README's tolerance. Used by every published-model test (DINOv2 family,
MixVPR, BoQ, ...), so a model test reads::

    for rule in ("A", "B"):
        sd = fixture_state_dict(name, rule)
        ...convert + load strictly...
        assert_matches_fixture(out, name, rule)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.conftest import CHECKPOINT_FIXTURES
from tests.models._fixture_rules import fixture_input, rule_tensor, state_dict_from_tsv

__all__ = [
    "RULES",
    "assert_converter_covers_spec",
    "assert_matches_fixture",
    "fixture_dir",
    "fixture_input",
    "fixture_input_for",
    "fixture_meta",
    "fixture_output",
    "fixture_state_dict",
    "load_published_fixture",
    "rule_tensor",
    "state_dict_from_tsv",
    "wrap_as_published",
]

RULES = ("A", "B")


def fixture_dir() -> Path:
    """The checkpoint fixtures folder; skips the calling test when it is absent."""
    if not (CHECKPOINT_FIXTURES / "README.md").is_file():
        pytest.skip(f"checkpoint fixtures not found at {CHECKPOINT_FIXTURES} (set VGLOC_SHARED)")
    return CHECKPOINT_FIXTURES


def fixture_meta(name: str, rule: str = "A") -> dict[str, Any]:
    """The fixture's json (``rule_b/<name>.json`` for rule B)."""
    sub = "rule_b/" if rule == "B" else ""
    return dict(json.loads((fixture_dir() / f"{sub}{name}.json").read_text()))


def fixture_state_dict(name: str, rule: str = "A") -> dict[str, torch.Tensor]:
    """The authors' state dict (their key names, in their order) under weight ``rule``."""
    return state_dict_from_tsv(fixture_dir() / f"{name}.keys.tsv", rule)


def fixture_output(name: str, rule: str = "A") -> np.ndarray:
    """The authors' output ``[2, D]`` float32 for weight ``rule`` on the fixture input."""
    sub = "rule_b/" if rule == "B" else ""
    return np.asarray(np.load(fixture_dir() / f"{sub}{name}.out.npy"))


def fixture_input_for(name: str) -> torch.Tensor:
    """The fixture input ``(2, 3, H, W)`` with H, W from the fixture's json."""
    meta = fixture_meta(name)
    h, w = _input_hw(meta)
    return fixture_input(h, w)


def _input_hw(meta: dict[str, Any]) -> tuple[int, int]:
    for key in ("input_hw", "input_size", "input"):
        val = meta.get(key)
        if isinstance(val, dict) and "H" in val:
            return int(val["H"]), int(val["W"])
        if isinstance(val, (list, tuple)) and len(val) >= 2:
            return int(val[-2]), int(val[-1])
    shape = meta.get("input_shape")
    if isinstance(shape, (list, tuple)) and len(shape) == 4:
        return int(shape[2]), int(shape[3])
    return 224, 224


def wrap_as_published(
    sd: dict[str, torch.Tensor],
    *,
    container: str | None = None,
    prefix: str = "",
    safetensors_path: Path | None = None,
) -> Any:
    """``sd`` as an authors' file holds it.

    container: e.g. ``"model_state_dict"`` or ``"state_dict"`` (None: a bare dict);
    prefix: e.g. ``"module."`` (DataParallel); safetensors_path: also write the
    (prefixed) tensors there as a .safetensors file and return that path instead.
    """
    inner = {prefix + k: v for k, v in sd.items()}
    if safetensors_path is not None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in inner.items()}, str(safetensors_path))
        return safetensors_path
    return {container: inner} if container else inner


def assert_matches_fixture(out: torch.Tensor | np.ndarray, name: str, rule: str = "A") -> None:
    """Compare ``out`` ``[2, D]`` with the stored output: README tolerance (1e-4 relative)."""
    got = out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
    ref = fixture_output(name, rule)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    assert rel < 1e-4, f"{name} rule {rule}: relative error {rel:.2e}"
    worst = np.abs(got - ref).max()
    assert worst < 1e-4 * np.abs(ref).max(), f"{name} rule {rule}: max abs error {worst:.2e}"


def load_published_fixture(
    model: torch.nn.Module,
    convert_keys: Any,
    name: str,
    rule: str,
    wrapped: Path,
    *,
    container: str | None = None,
    prefix: str = "",
) -> None:
    """Write fixture ``name``'s rule-``rule`` weights as the authors publish them, then load strictly.

    The file at ``wrapped`` (``.safetensors`` or a torch file) holds the state dict as
    ``wrap_as_published`` makes it; it is read back with vgloc's safe reader, unwrapped
    (container, ``module.``) and renamed by ``convert_keys`` (a published entry's
    converter) before ``load_state_dict(strict=True)``.
    """
    from vgloc.models.checkpoints import extract_state_dict, read_weights_file

    sd = fixture_state_dict(name, rule)
    if wrapped.suffix == ".safetensors":
        wrap_as_published(sd, prefix=prefix, safetensors_path=wrapped)
    else:
        torch.save(wrap_as_published(sd, container=container, prefix=prefix), wrapped)
    model.load_state_dict(convert_keys(extract_state_dict(read_weights_file(wrapped))), strict=True)


def assert_converter_covers_spec(spec: str, convert_keys: Any, name: str) -> None:
    """``convert_keys`` maps fixture ``name``'s keys exactly onto ``spec``'s state dict (names and shapes).

    Runs on the meta device (no memory, no compute), so it is a fast check of the whole layout.
    """
    from vgloc.models.model import GeoLocalizationModel

    with torch.device("meta"):
        model = GeoLocalizationModel(spec)
        shapes = {}
        for line in (fixture_dir() / f"{name}.keys.tsv").read_text().splitlines():
            if line.strip():
                key, shape, _ = line.split("\t")
                shapes[key] = torch.empty(tuple(int(s) for s in shape.split(",")) if shape else ())
    converted = convert_keys(shapes)
    ours = model.state_dict()
    assert sorted(set(converted) - set(ours)) == [], "author keys with no place in the spec"
    assert sorted(set(ours) - set(converted)) == [], "spec keys the checkpoint does not fill"
    bad = [k for k in ours if converted[k].shape != ours[k].shape]
    assert bad == [], f"shape mismatches: {bad[:5]}"
