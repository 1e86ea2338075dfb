"""DINOv2 backbones: shapes, input checks, DINOv2's position interpolation, freezing, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vgloc.models import freeze_early_layers
from vgloc.models.dinov2 import DINOV2_ARCHS, DinoV2Backbone, build_dinov2, dinov2_keys_to_vgloc
from vgloc.models.model import GeoLocalizationModel
from vgloc.models.pretrained import WeightsDownloadError
from vgloc.registry import BACKBONES


@pytest.fixture(scope="module")
def vits() -> DinoV2Backbone:
    torch.manual_seed(0)
    return build_dinov2("dinov2_vits14").eval()


def test_every_size_is_registered_with_its_width() -> None:
    for name, (_timm, dim, _depth, _params) in DINOV2_ARCHS.items():
        meta = BACKBONES.metadata(name)
        assert meta["channels"] == {"last": dim} and meta["multiple_of"] == 14


@pytest.mark.parametrize("name", ["dinov2_vitb14", "dinov2_vitl14", "dinov2_vitg14"])
def test_larger_sizes_have_dinov2_layouts(name: str) -> None:
    # Built on the meta device: the layout (widths, depths, SwiGLU for ViT-G) without the memory.
    with torch.device("meta"):
        bb = build_dinov2(name)
    _timm, dim, depth, _ = DINOV2_ARCHS[name]
    assert bb.out_channels == dim and bb.depth == depth
    assert tuple(bb.pos_embed.shape) == (1, 1 + 37 * 37, dim)
    if name == "dinov2_vitg14":
        # DINOv2's SwiGLU: w12 (2 x 4096) and w3 map onto timm's packed fc1/fc2.
        assert tuple(bb.blocks[0].mlp.fc1.weight.shape) == (8192, dim)
        assert tuple(bb.blocks[0].mlp.fc2.weight.shape) == (dim, 4096)


def test_map_and_token_shapes_for_non_square_input(vits: DinoV2Backbone) -> None:
    x = torch.randn(2, 3, 56, 98)
    with torch.no_grad():
        fmap, cls = vits.forward_tokens(x)
        plain = vits(x)
    assert fmap.shape == (2, 384, 4, 7) and cls.shape == (2, 384)
    assert torch.equal(plain, fmap)
    # The map is the final-normed tokens in row-major patch order: each location differs.
    assert not torch.allclose(fmap[..., 0, 0], fmap[..., 3, 6])


@pytest.mark.parametrize("hw", [(55, 56), (56, 60), (0, 14)])
def test_sides_must_be_multiples_of_14_checked_before_compute(
    vits: DinoV2Backbone, hw: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_a: object) -> None:
        raise AssertionError("patch embedding ran before the size check")

    monkeypatch.setattr(vits.patch_embed, "forward", boom)
    with pytest.raises(ValueError, match="multiples of 14"):
        vits(torch.randn(1, 3, *hw))


def test_position_embedding_uses_dinov2_offset_interpolation(vits: DinoV2Backbone) -> None:
    assert vits.interpolate_pos_encoding(37, 37) is vits.pos_embed  # native 518x518 grid
    pos = vits.interpolate_pos_encoding(16, 23)
    assert pos.shape == (1, 1 + 16 * 23, 384)
    assert torch.equal(pos[:, 0], vits.pos_embed[:, 0])
    grid = vits.pos_embed[:, 1:].reshape(1, 37, 37, 384).permute(0, 3, 1, 2)
    by_size = F.interpolate(grid, size=(16, 23), mode="bicubic", antialias=False)
    by_size = by_size.permute(0, 2, 3, 1).reshape(1, -1, 384)
    # DINOv2's +0.1 offset changes the sampled values, not only the size.
    assert not torch.allclose(pos[:, 1:], by_size, atol=1e-6)


def test_dinov2_with_ordinary_aggregator() -> None:
    model = GeoLocalizationModel("dinov2_vits14+gem").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 42, 70))
    assert out.shape == (2, 384)
    assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)


def test_cls_token_aggregator_needs_a_vit_backbone() -> None:
    with pytest.raises(ValueError, match="CLS token"):
        GeoLocalizationModel("resnet18+salad")


def test_trainable_blocks_and_freezing() -> None:
    model = GeoLocalizationModel("dinov2_vits14+salad")
    backbone = model.backbone
    assert isinstance(backbone, DinoV2Backbone) and backbone.trainable_blocks == 4
    frozen = freeze_early_layers(model)
    assert frozen[:3] == ["cls_token", "pos_embed", "patch_embed"] and "blocks.7" in frozen
    assert not backbone.cls_token.requires_grad and not backbone.patch_embed.proj.weight.requires_grad
    assert not any(p.requires_grad for p in backbone.blocks[7].parameters())
    assert all(p.requires_grad for p in backbone.blocks[8].parameters())
    assert all(p.requires_grad for p in model.aggregator.parameters())
    assert backbone.set_trainable_blocks(2)[-1] == "blocks.9"
    with pytest.raises(ValueError, match="trainable_blocks"):
        backbone.set_trainable_blocks(13)


def test_salad_on_dinov2_trains_a_step_with_frozen_early_blocks() -> None:
    torch.manual_seed(0)
    model = GeoLocalizationModel("dinov2_vits14+salad")
    freeze_early_layers(model)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    x = torch.randn(2, 3, 126, 126)  # 9x9 = 81 patches: SALAD needs more tokens than its 64 clusters
    before = model.backbone.blocks[11].mlp.fc2.weight.detach().clone()
    frozen_before = model.backbone.blocks[0].mlp.fc2.weight.detach().clone()
    desc = model(x)
    loss = 1.0 - (desc[0] * desc[1]).sum()  # pull the two views of one "place" together
    loss.backward()
    assert model.backbone.blocks[0].attn.qkv.weight.grad is None
    assert model.backbone.blocks[11].attn.qkv.weight.grad is not None
    opt.step()
    assert not torch.equal(model.backbone.blocks[11].mlp.fc2.weight, before)
    assert torch.equal(model.backbone.blocks[0].mlp.fc2.weight, frozen_before)


def test_pretrained_fails_offline_with_a_clear_message() -> None:
    with pytest.raises(WeightsDownloadError, match="vit_small_patch14_dinov2"):
        build_dinov2("dinov2_vits14", pretrained=True)


def test_dinov2_key_converter_drops_mask_token_and_packs_swiglu() -> None:
    t = torch.zeros(1)
    sd = {"backbone.mask_token": t, "backbone.blocks.0.mlp.w12.weight": t, "backbone.blocks.0.mlp.w3.bias": t}
    assert set(dinov2_keys_to_vgloc(sd)) == {
        "backbone.blocks.0.mlp.fc1.weight",
        "backbone.blocks.0.mlp.fc2.bias",
    }
