"""GeM with a fixed exponent (``gemfixed{p}``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vgloc.models import GeoLocalizationModel, ModelSpec
from vgloc.models.aggregators import GeM


def test_gemfixed_p_is_a_buffer_with_gems_key() -> None:
    agg = GeM(8, p=4.0, trainable_p=False)
    assert [n for n, _ in agg.named_parameters()] == []
    assert list(agg.state_dict()) == ["p"] and float(agg.p) == 4.0
    x = torch.rand(2, 8, 3, 3) + 0.1
    xn = F.normalize(x, dim=1)
    torch.testing.assert_close(agg(x), xn.pow(4).mean(dim=(2, 3)).pow(0.25))


def test_gemfixed_spec_default_and_checkpoint_compatibility() -> None:
    assert str(ModelSpec.parse("resnet18+gemfixed")) == "resnet18+gemfixed3"
    fixed = GeoLocalizationModel("tiny+gemfixed5+fc8")
    assert float(fixed.aggregator.p) == 5.0
    assert not any(n.endswith(".p") for n, _ in fixed.named_parameters())
    # A learnable-p model's weights load strictly (same keys), p included.
    learnable = GeoLocalizationModel("tiny+gem+fc8")
    fixed.load_state_dict(learnable.state_dict(), strict=True)
    assert float(fixed.aggregator.p) == 3.0
