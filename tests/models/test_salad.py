"""SALAD: the authors' checkpoint layout and forward pass (fixtures), and the aggregator's math."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.models.fixture_weights import (
    RULES,
    assert_converter_covers_spec,
    assert_matches_fixture,
    fixture_input_for,
    load_published_fixture,
)
from vgloc.models.model import GeoLocalizationModel
from vgloc.models.salad import SALAD, log_optimal_transport
from vgloc.registry import PUBLISHED_MODELS

FIXTURE = "salad_dinov2_vitb14_8448"


@pytest.mark.slow
@pytest.mark.parametrize("rule", RULES)
def test_authors_checkpoint_reproduces_fixture(rule: str, tmp_path: Path) -> None:
    entry = PUBLISHED_MODELS.get("salad")
    model = GeoLocalizationModel(entry.spec).eval()
    assert model.descriptor_dim == entry.descriptor_dim == 8448
    # dino_salad.ckpt is a plain state dict saved with torch.save.
    load_published_fixture(model, entry.convert_keys, FIXTURE, rule, tmp_path / "dino_salad.ckpt")
    with torch.no_grad():
        assert_matches_fixture(model(fixture_input_for(FIXTURE)), FIXTURE, rule)


def test_published_entry() -> None:
    entry = PUBLISHED_MODELS.get("salad")
    assert entry.preprocessing.image_size == (322, 322) and entry.preprocessing.multiple_of == 14
    assert entry.url is not None and entry.url.endswith(entry.filename)
    assert not entry.batch_dependent


def test_converter_maps_every_author_key_onto_the_spec() -> None:
    entry = PUBLISHED_MODELS.get("salad")
    assert_converter_covers_spec(entry.spec, entry.convert_keys, FIXTURE)


def test_sinkhorn_marginals() -> None:
    torch.manual_seed(0)
    b, m, n = 2, 5, 12
    log_p = log_optimal_transport(torch.randn(b, m, n), torch.tensor(1.0), iters=200)
    p = log_p.exp() / (m + n)  # undo the (m + n) scaling
    # Converged Sinkhorn: every token's column sums to 1/(m+n), clusters 1/(m+n), dustbin (n-m)/(m+n).
    assert torch.allclose(p.sum(1), torch.full((b, n), 1 / (m + n)), atol=1e-5)
    rows = torch.full((b, m + 1), 1 / (m + n))
    rows[:, -1] = (n - m) / (m + n)
    assert torch.allclose(p.sum(2), rows, atol=1e-5)


def test_salad_output_layout_and_batch_independence() -> None:
    torch.manual_seed(0)
    agg = SALAD(32, clusters=4, cluster_dim=8, token_dim=16, mlp_dim=24).eval()
    fmap, cls = torch.randn(3, 32, 4, 5), torch.randn(3, 32)
    with torch.no_grad():
        out = agg((fmap, cls))
        alone = agg((fmap[1:2], cls[1:2]))
    assert out.shape == (3, 4 * 8 + 16)
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-6)
    assert torch.allclose(out[1:2], alone, atol=1e-6)
    # The global token leads, then each cluster's vector is unit norm before the final L2 (cluster-dim-major).
    clusters = out[:, 16:].reshape(3, 8, 4)
    token_norm = out[:, :16].norm(dim=1)
    assert torch.allclose(clusters.norm(dim=1), token_norm[:, None].expand(3, 4), atol=1e-5)
    assert math.isclose(float(token_norm[0]), 1 / math.sqrt(5), rel_tol=1e-5)


def test_salad_needs_more_tokens_than_clusters() -> None:
    agg = SALAD(16, clusters=8)
    with pytest.raises(ValueError, match="more patch tokens"):
        agg((torch.randn(1, 16, 2, 4), torch.randn(1, 16)))
