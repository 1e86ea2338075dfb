"""BoQ aggregator and the ``boq-resnet50`` published entry against the authors' fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.models._published_check import check_fixture_output, check_published_wrappings
from tests.models._train_check import check_trains
from tests.models.fixture_weights import assert_converter_covers_spec
from vgloc.models import GeoLocalizationModel, ModelSpec
from vgloc.models.boq import BoQ, DinoV2NoNorm, convert_boq_resnet50_keys
from vgloc.registry import PUBLISHED_MODELS


@pytest.fixture(scope="module")
def boq_resnet50() -> GeoLocalizationModel:
    return GeoLocalizationModel(PUBLISHED_MODELS.get("boq-resnet50").spec)


@pytest.mark.parametrize("rule", ["A", "B"])
def test_boq_resnet50_matches_authors_forward(boq_resnet50: GeoLocalizationModel, rule: str) -> None:
    check_fixture_output("boq-resnet50", "boq_resnet50_16384", rule, boq_resnet50)


def test_boq_resnet50_loads_published_wrappings(tmp_path: Path, boq_resnet50: GeoLocalizationModel) -> None:
    check_published_wrappings("boq-resnet50", "boq_resnet50_16384", tmp_path, boq_resnet50)


def test_boq_resnet50_entry() -> None:
    entry = PUBLISHED_MODELS.get("boq-resnet50")
    assert str(ModelSpec.parse(entry.spec)) == entry.spec
    assert entry.preprocessing.image_size == (384, 384)
    assert entry.url is not None and entry.url.endswith(entry.filename)
    assert GeoLocalizationModel(entry.spec).descriptor_dim == entry.descriptor_dim == 16384
    # Only the backbone prefix changes.
    sd = {"backbone.net.6.0.conv1.weight": torch.zeros(1), "aggregator.fc.bias": torch.zeros(1)}
    assert set(convert_boq_resnet50_keys(sd)) == {"backbone.6.0.conv1.weight", "aggregator.fc.bias"}


def test_boq_dimensions_and_errors() -> None:
    agg = BoQ(1024)
    assert (agg.proj_channels, agg.row_dim, agg.out_dim) == (512, 32, 16384)
    assert agg.boqs[0].encoder.self_attn.num_heads == 8
    x = torch.randn(2, 1024, 5, 7)  # any spatial size
    out = agg.eval()(x)
    assert out.shape == (2, 16384)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))
    same, attns = agg.forward_with_attention(x)
    torch.testing.assert_close(same, out)
    assert [a.shape for a in attns] == [(2, 64, 35)] * 2
    torch.testing.assert_close(attns[0].sum(-1), torch.ones(2, 64))  # softmax over tokens
    assert str(ModelSpec.parse("resnet50.conv4+boq")) == "resnet50.conv4+boq32"
    assert BoQ(64, 4).out_dim == 32 * 4 and BoQ(64, 4).boqs[0].encoder.self_attn.num_heads == 1
    with pytest.raises(ValueError, match="must be positive"):
        BoQ(1, 32)
    with pytest.raises(ValueError, match="expects a"):
        agg(torch.randn(1, 512, 4, 4))


def test_boq_trains_with_frozen_early_layers() -> None:
    check_trains("tiny+boq32", size=32)


@pytest.mark.parametrize(
    ("published", "fixture"), [("boq-resnet50", "boq_resnet50_16384"), ("boq-dinov2", "boq_dinov2_12288")]
)
def test_converters_map_every_author_key_onto_the_spec(published: str, fixture: str) -> None:
    entry = PUBLISHED_MODELS.get(published)
    assert_converter_covers_spec(entry.spec, entry.convert_keys, fixture)


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["A", "B"])
def test_boq_dinov2_matches_authors_forward(rule: str) -> None:
    model = GeoLocalizationModel(PUBLISHED_MODELS.get("boq-dinov2").spec)
    check_fixture_output("boq-dinov2", "boq_dinov2_12288", rule, model)


def test_boq_dinov2_entry_and_backbone_skips_final_norm() -> None:
    entry = PUBLISHED_MODELS.get("boq-dinov2")
    assert entry.spec == "dinov2_vitb14_nonorm+boq32" and entry.descriptor_dim == 12288
    assert entry.preprocessing.image_size == (322, 322) and entry.preprocessing.multiple_of == 14
    torch.manual_seed(0)
    model = GeoLocalizationModel("dinov2_vits14_nonorm+boq4").eval()
    bb = model.backbone
    assert isinstance(bb, DinoV2NoNorm) and bb.trainable_blocks == 2
    x = torch.randn(1, 3, 28, 42)
    with torch.no_grad():
        fmap = bb(x)
        # Reference: DINOv2's token preparation and blocks, no final norm.
        tokens = torch.cat((bb.cls_token, bb.patch_embed(x)), dim=1) + bb.interpolate_pos_encoding(2, 3)
        for blk in bb.blocks:
            tokens = blk(tokens)
        torch.testing.assert_close(fmap, tokens[:, 1:].reshape(1, 2, 3, -1).permute(0, 3, 1, 2))
        assert model(x).shape == (1, 192 * 4)
    assert not any(k.startswith("backbone.norm.") for k in model.state_dict())


@pytest.mark.slow
def test_boq_dinov2_trains_last_two_blocks() -> None:
    model = check_trains("dinov2_vits14_nonorm+boq4", size=28)
    trainable = {n.split(".")[1] for n, p in model.backbone.named_parameters() if p.requires_grad}
    assert trainable == {"10", "11"}  # blocks.10, blocks.11; embeddings frozen
