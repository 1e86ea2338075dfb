"""DINOv2 ViT-S/B/L/G-14 backbones (timm modules, the DINOv2 forward pass).

Registered in :data:`vgloc.registry.BACKBONES` as ``dinov2_vits14``, ``dinov2_vitb14``,
``dinov2_vitl14`` and ``dinov2_vitg14`` (Oquab et al., "DINOv2: Learning Robust Visual
Features without Supervision", 2023; facebookresearch/dinov2). The layers are timm's
``vit_*_patch14_dinov2`` modules; the token preparation is DINOv2's own
(``prepare_tokens_with_masks``), because timm resizes the 37x37 position grid
differently: DINOv2 interpolates it bicubically with ``scale_factor=(g + 0.1) / 37``
and ``antialias=False`` (its ``interpolate_offset`` kludge), and every published VPR
model built on DINOv2 (SALAD, MegaLoc, BoQ, CricaVPR) inherits that.

Output contract (see also :class:`~vgloc.models.model.GeoLocalizationModel`):

- ``backbone(x)`` is the final-LayerNorm'd patch-token map ``(B, C, H/14, W/14)``, so
  every ordinary aggregator works (``dinov2_vits14+gem``).
- ``backbone.forward_tokens(x)`` returns ``(map, cls)`` with the normalised CLS token
  ``(B, C)``; aggregators that declare ``needs_cls_token = True`` (SALAD, MegaLoc,
  CricaVPR) receive that pair from the model.

State-dict keys are DINOv2's own without the ``model.`` wrapper and without the
unused ``mask_token``: ``backbone.cls_token``, ``backbone.pos_embed``,
``backbone.patch_embed.proj.*``, ``backbone.blocks.N.*``, ``backbone.norm.*`` (MegaLoc's
and CricaVPR's layout). ViT-G's SwiGLU FFN uses timm's packed layout
(``mlp.fc1``/``mlp.fc2``); :func:`dinov2_keys_to_vgloc` converts DINOv2's
``mlp.w12``/``mlp.w3`` names.

Input sides must be multiples of 14 (checked before any compute). Random
initialisation by default; ``pretrained=True`` loads timm's DINOv2 (LVD-142M) weights,
which downloads them from the Hugging Face hub unless they are cached.

Training: ``trainable_blocks`` (default 4, SALAD's and MegaLoc's recipe; BoQ trains 2)
sets which blocks :func:`~vgloc.models.freeze_early_layers` leaves trainable; the patch
embedding, CLS token and position embedding are always frozen with them (SALAD runs
them outside autograd).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vgloc.models.backbones import Backbone
from vgloc.models.published import Preprocessing
from vgloc.registry import BACKBONES

__all__ = [
    "DINOV2_ARCHS",
    "DINOV2_EVAL",
    "PATCH_SIZE",
    "DinoV2Backbone",
    "build_dinov2",
    "check_patch_multiple",
    "dinov2_keys_to_vgloc",
    "register_dinov2_backbone",
]

PATCH_SIZE = 14
# The position grid DINOv2 was trained with (img_size 518 = 37 x 14).
_TRAIN_SIZE = 518
_INTERPOLATE_OFFSET = 0.1

# Evaluation preprocessing of SALAD and MegaLoc (SALAD's README, PROTOCOLS.md section 7):
# a 322x322 resize (23x23 patches) and ImageNet normalisation.
DINOV2_EVAL = Preprocessing(image_size=(322, 322), multiple_of=PATCH_SIZE)

# vgloc name -> (timm model name, embed dim, depth, parameter count for listings)
DINOV2_ARCHS: dict[str, tuple[str, int, int, str]] = {
    "dinov2_vits14": ("vit_small_patch14_dinov2", 384, 12, "22M"),
    "dinov2_vitb14": ("vit_base_patch14_dinov2", 768, 12, "86M"),
    "dinov2_vitl14": ("vit_large_patch14_dinov2", 1024, 24, "304M"),
    "dinov2_vitg14": ("vit_giant_patch14_dinov2", 1536, 40, "1.1B"),
}


def check_patch_multiple(x: Tensor, patch: int = PATCH_SIZE) -> tuple[int, int]:
    """Validate a ``(B, 3, H, W)`` batch for a patch-``patch`` ViT; return the grid ``(H/p, W/p)``.

    Raises:
        ValueError: Wrong rank/channels, or a side that is not a positive multiple of ``patch``.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(x.shape)}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h % patch or w % patch or h == 0 or w == 0:
        raise ValueError(
            f"DINOv2 needs input sides that are multiples of {patch}, got {h}x{w}; resize to e.g. "
            f"{max(1, round(h / patch)) * patch}x{max(1, round(w / patch)) * patch}"
        )
    return h // patch, w // patch


def _timm_vit(name: str, pretrained: bool | str, **kwargs: Any) -> nn.Module:
    """timm's DINOv2 ViT at DINOv2's native 518 grid; downloads only when ``pretrained``."""
    import timm

    timm_name = DINOV2_ARCHS[name][0]
    if not pretrained:
        return timm.create_model(timm_name, pretrained=False, img_size=_TRAIN_SIZE, num_classes=0, **kwargs)
    tag = "lvd142m" if pretrained is True else str(pretrained)
    try:
        return timm.create_model(
            f"{timm_name}.{tag}", pretrained=True, img_size=_TRAIN_SIZE, num_classes=0, **kwargs
        )
    except Exception as err:  # hub, socket, guard and missing-file errors all end up here
        from vgloc.models.pretrained import WeightsDownloadError

        raise WeightsDownloadError(
            f"could not load DINOv2 weights timm/{timm_name}.{tag} from the Hugging Face hub "
            f"({type(err).__name__}: {err}). If this machine is offline, copy the Hugging Face "
            f"cache of 'timm/{timm_name}.{tag}' here (HF_HOME), or build with pretrained=False and "
            "load a checkpoint with weights=PATH."
        ) from err


class DinoV2Backbone(Backbone):
    """A DINOv2 ViT: image -> normalised patch-token map (and CLS token).

    Args:
        vit: A timm ``VisionTransformer`` built for DINOv2 (its embeddings, blocks and
            final norm are adopted; its head is dropped).
        name: Registry name (``"dinov2_vitb14"``).
        trainable_blocks: Final blocks left trainable by :meth:`freeze_early_layers`.

    Attributes:
        trainable_blocks: See above; change it with :meth:`set_trainable_blocks`.
        patch_size: 14.

    Shape:
        - Input: ``(B, 3, H, W)`` with H, W multiples of 14
        - Output: ``(B, C, H/14, W/14)``; :meth:`forward_tokens` adds the CLS token ``(B, C)``
    """

    blocks: nn.Sequential
    cls_token: nn.Parameter
    pos_embed: nn.Parameter
    patch_embed: Any
    norm: nn.Module

    #: The position-embedding resize is computed from the input size, so an ONNX trace
    #: bakes that size in (vgloc.models.engines runs other sizes through torch).
    onnx_fixed_image_size = True

    def __init__(self, vit: Any, *, name: str, trainable_blocks: int = 4) -> None:
        super().__init__(name=name, cut="last", out_channels=int(vit.embed_dim), frozen=[])
        self.patch_size = PATCH_SIZE
        parts: dict[str, Any] = dict(vit.named_children())
        self.cls_token = cast(nn.Parameter, vit.cls_token)
        self.pos_embed = cast(nn.Parameter, vit.pos_embed)
        self.patch_embed = parts["patch_embed"]
        # timm checks the input size against img_size; DINOv2 accepts any multiple of 14.
        self.patch_embed.strict_img_size = False
        self.blocks = parts["blocks"]
        self.norm = parts["norm"]
        self.trainable_blocks = 0
        self.set_trainable_blocks(trainable_blocks)

    @property
    def depth(self) -> int:
        """Number of transformer blocks."""
        return len(self.blocks)

    def set_trainable_blocks(self, n: int) -> list[str]:
        """Leave the last ``n`` blocks (and the final norm) trainable; return the frozen paths.

        Only the list used by :meth:`freeze_early_layers` changes; nothing is frozen here.
        """
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= self.depth:
            raise ValueError(f"trainable_blocks must be an int in [0, {self.depth}], got {n!r}")
        self.trainable_blocks = n
        self.frozen = ["cls_token", "pos_embed", "patch_embed"]
        self.frozen += [f"blocks.{i}" for i in range(self.depth - n)]
        return list(self.frozen)

    def freeze_early_layers(self) -> list[str]:
        """Freeze the embeddings and all but the last ``trainable_blocks`` blocks.

        Returns:
            The frozen paths, relative to the backbone.
        """
        for path in self.frozen:
            if path in ("cls_token", "pos_embed"):
                self.get_parameter(path).requires_grad_(False)
            else:
                self.get_submodule(path).requires_grad_(False)
        return list(self.frozen)

    def interpolate_pos_encoding(self, gh: int, gw: int) -> Tensor:
        """DINOv2's position embedding for a ``gh x gw`` patch grid, ``(1, 1 + gh*gw, C)``.

        Bicubic, ``scale_factor=((g + 0.1) / 37)``, no antialias: DINOv2's
        ``interpolate_pos_encoding`` exactly (the +0.1 changes the sampled values, not
        only the size, so ``size=`` would not reproduce it).
        """
        n = self.pos_embed.shape[1] - 1
        m = int(math.sqrt(n))
        if gh == m and gw == m:
            return self.pos_embed
        dim = self.pos_embed.shape[-1]
        pos = self.pos_embed.float()
        patch = pos[:, 1:].reshape(1, m, m, dim).permute(0, 3, 1, 2)
        scale = ((gh + _INTERPOLATE_OFFSET) / m, (gw + _INTERPOLATE_OFFSET) / m)
        patch = F.interpolate(patch, scale_factor=scale, mode="bicubic", antialias=False)
        patch = patch.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat((pos[:, :1], patch), dim=1).to(self.pos_embed.dtype)

    def _run_blocks(self, tokens: Tensor, grid: tuple[int, int]) -> Tensor:
        for blk in self.blocks:
            tokens = blk(tokens)
        return tokens

    def forward_tokens(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The patch-token map and the CLS token, both after the final LayerNorm.

        Shape:
            - x: ``(B, 3, H, W)``, H and W multiples of 14
            - Output: ``((B, C, H/14, W/14), (B, C))``
        """
        gh, gw = check_patch_multiple(x, self.patch_size)
        b = x.shape[0]
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(b, -1, -1), tokens), dim=1)
        tokens = tokens + self.interpolate_pos_encoding(gh, gw).to(tokens.dtype)
        tokens = self.norm(self._run_blocks(tokens, (gh, gw)))
        fmap = tokens[:, 1:].reshape(b, gh, gw, -1).permute(0, 3, 1, 2)
        return fmap, tokens[:, 0]

    def forward(self, x: Tensor) -> Tensor:
        """The patch-token map ``(B, C, H/14, W/14)`` (see :meth:`forward_tokens`)."""
        return self.forward_tokens(x)[0]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, depth={self.depth}, trainable_blocks={self.trainable_blocks}"


def build_dinov2(
    name: str,
    pretrained: bool | str = False,
    trainable_blocks: int = 4,
    *,
    backbone_cls: type[DinoV2Backbone] = DinoV2Backbone,
    registry_name: str | None = None,
    **vit_kwargs: Any,
) -> DinoV2Backbone:
    """Build a DINOv2 backbone by architecture name (``"dinov2_vitb14"``).

    Args:
        name: One of :data:`DINOV2_ARCHS`.
        pretrained: ``True`` (or a timm tag such as ``"lvd142m"``) for DINOv2's weights.
        trainable_blocks: See :class:`DinoV2Backbone`.
        backbone_cls: The backbone class (a subclass for variants such as CricaVPR's).
        registry_name: The name the result reports (default ``name``).
        **vit_kwargs: Passed to timm's builder (``block_fn``, ``init_values`` ...). With
            ``pretrained``, DINOv2's weights are loaded into the plain ViT first and then
            copied non-strictly, so extra modules (adapters) keep their initialisation.

    Raises:
        WeightsDownloadError: ``pretrained`` and the weights are neither cached nor downloadable.
    """
    vit = _timm_vit(name, False if vit_kwargs else pretrained, **vit_kwargs)
    if pretrained and vit_kwargs:
        _missing, unexpected = vit.load_state_dict(_timm_vit(name, pretrained).state_dict(), strict=False)
        if unexpected:
            raise RuntimeError(f"DINOv2 weights do not fit the variant: unexpected keys {unexpected[:5]}")
    return backbone_cls(vit, name=registry_name or name, trainable_blocks=trainable_blocks)


def dinov2_keys_to_vgloc(sd: Mapping[str, Tensor], prefix: str = "backbone.") -> dict[str, Tensor]:
    """facebookresearch/dinov2 ViT keys under ``prefix`` -> this backbone's keys.

    Drops ``mask_token`` (unused at inference, absent here) and packs ViT-G's SwiGLU
    ``mlp.w12``/``mlp.w3`` into timm's ``mlp.fc1``/``mlp.fc2``. Other keys pass through.
    """
    out: dict[str, Tensor] = {}
    for key, val in sd.items():
        if key == f"{prefix}mask_token":
            continue
        out[key.replace(".mlp.w12.", ".mlp.fc1.").replace(".mlp.w3.", ".mlp.fc2.")] = val
    return out


def register_dinov2_backbone(
    name: str, arch: str, build: Callable[[str, bool | str], Backbone], description: str, **metadata: Any
) -> None:
    """Register a DINOv2 backbone variant: the metadata every ViT/14 shares, plus ``metadata``.

    Args:
        name: Registry name (``"dinov2_vitb14"``, ``"dinov2_vitb14_nonorm"``).
        arch: The DINOv2 architecture it is built from (a key of :data:`DINOV2_ARCHS`).
        build: ``(cut, pretrained) -> Backbone``.
        description: One line for ``vgloc models``.
    """
    timm_name, dim, _depth, _params = DINOV2_ARCHS[arch]
    build.__name__ = f"build_{name}"
    BACKBONES.register(
        name,
        build,
        channels={"last": dim},
        default_cut="last",
        stride={"last": PATCH_SIZE},
        multiple_of=PATCH_SIZE,
        timm=timm_name,
        description=description,
        **metadata,
    )


def _register(name: str) -> None:
    timm_name, _dim, depth, params = DINOV2_ARCHS[name]

    def build(cut: str, pretrained: bool | str) -> Backbone:
        return build_dinov2(name, pretrained)

    register_dinov2_backbone(
        name,
        name,
        build,
        f"DINOv2 ViT/14 ({params} params, {depth} blocks; timm {timm_name}); patch-token map, "
        "input sides multiples of 14; last 4 blocks trainable",
        cls_token=True,
    )


for _name in DINOV2_ARCHS:
    _register(_name)
