"""A test-local published model: ``tiny+gem+fc16`` released under a fake name with its own key names.

The "authors" call the backbone ``encoder``, the pooling ``pool`` and the projection
``proj``, wrap the state dict in ``{"model_state_dict": ...}`` with DataParallel's
``module.`` prefix, and evaluate at 56x70 with their own mean/std: everything the
published-model plumbing must undo, without a download or a large network.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from torch import Tensor

from vgloc.models import GeoLocalizationModel
from vgloc.models.published import Preprocessing, PublishedModel
from vgloc.registry import PUBLISHED_MODELS

NAME = "fakepub-tiny"
SPEC = "tiny+gem+fc16"
SIZE = (56, 70)
MEAN = (0.5, 0.4, 0.3)
STD = (0.2, 0.25, 0.3)
_TO_VGLOC = {"encoder.": "backbone.", "pool.": "aggregator.", "proj.": "head."}


def fake_keys(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The fake authors' key names -> vgloc's."""
    out = {}
    for key, val in sd.items():
        prefix = next(p for p in _TO_VGLOC if key.startswith(p))
        out[_TO_VGLOC[prefix] + key[len(prefix) :]] = val
    return out


def to_author_keys(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """vgloc's key names -> the fake authors' (the inverse of :func:`fake_keys`)."""
    back = {v: k for k, v in _TO_VGLOC.items()}
    return {back[next(p for p in back if k.startswith(p))] + k.split(".", 1)[1]: v for k, v in sd.items()}


def make_entry(**overrides: object) -> PublishedModel:
    """The fake entry (fields overridable, e.g. ``sha256=`` or ``hub_repo=``)."""
    fields: dict[str, object] = {
        "name": NAME,
        "spec": SPEC,
        "descriptor_dim": 16,
        "preprocessing": Preprocessing(image_size=SIZE, mean=MEAN, std=STD),
        "source": "Fake et al., a test release",
        "filename": "fakepub_tiny_16.pth",
        "url": "https://example.invalid/releases/fakepub_tiny_16.pth",
        "convert_keys": fake_keys,
        "description": "tiny test model under a published name",
    }
    fields.update(overrides)
    return PublishedModel(**fields)  # type: ignore[arg-type]


def registered(entry: PublishedModel) -> Iterator[PublishedModel]:
    """Register ``entry`` for the duration of a fixture."""
    PUBLISHED_MODELS.register(entry.name, entry, description=entry.description)
    try:
        yield entry
    finally:
        PUBLISHED_MODELS.unregister(entry.name)


def reference_model(seed: int = 1) -> GeoLocalizationModel:
    """The network whose weights the fake release holds (random, seeded), in eval mode."""
    torch.manual_seed(seed)
    model = GeoLocalizationModel(SPEC)
    with torch.no_grad():  # visible weights: GeM p and the fc differ from their defaults
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def write_release(model: GeoLocalizationModel, path: Path) -> Path:
    """Save ``model`` as the fake authors publish it (container, ``module.``, their keys)."""
    sd = {f"module.{k}": v for k, v in to_author_keys(model.state_dict()).items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save({"model_state_dict": sd, "epoch": 3}, path)
    return path
