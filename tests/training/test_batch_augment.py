"""Batched on-device augmentation: the same pixels as the per-image path, seeded per sample."""

from __future__ import annotations

import pytest
import torch

from vgloc.config import AugmentConfig
from vgloc.training.augment import TrainAugment
from vgloc.training.batch_augment import AugmentingCollate, BatchAugment

SIZE = (40, 56)
FULL = AugmentConfig(
    brightness=0.7,
    contrast=0.7,
    saturation=0.7,
    hue=0.5,
    random_resized_crop=(0.5, 1.0),
    night_brightness=0.2,
    night_probability=0.5,
)


def _batch(n: int = 12) -> tuple[torch.Tensor, list[int]]:
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (n, 3, *SIZE), dtype=torch.uint8, generator=g)
    seeds = [int(s) for s in torch.randint(0, 2**62, (n,), generator=g)]
    return images, seeds


@pytest.mark.parametrize(
    "cfg",
    [
        FULL,
        AugmentConfig(brightness=0.5, saturation=0.3),  # jitter without hue or crop
        AugmentConfig(random_resized_crop=(0.3, 1.0)),  # crop only
    ],
)
def test_batch_equals_per_image_path(cfg: AugmentConfig) -> None:
    images, seeds = _batch()
    plain = TrainAugment(cfg, SIZE)
    expected = torch.stack([plain(im, s) for im, s in zip(images, seeds, strict=True)])
    out = BatchAugment(cfg, SIZE)(images, torch.tensor(seeds))
    assert out.shape == expected.shape and out.dtype == torch.float32
    # Exact but for the hue shift (kornia's HSV round trip vs torchvision's): ~1e-5 in normalised units.
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)


def test_without_seeds_only_normalises() -> None:
    images, _ = _batch(4)
    plain = TrainAugment(FULL, SIZE)
    expected = torch.stack([plain(im, None) for im in images])
    assert torch.equal(BatchAugment(FULL, SIZE)(images, None), expected)


def test_a_sample_depends_on_its_seed_only() -> None:
    images, seeds = _batch(6)
    aug = BatchAugment(FULL, SIZE)
    whole = aug(images, seeds)
    # Another batch position and other neighbours: the same pixels for the same (image, seed).
    alone = aug(images[[4, 1]], [seeds[4], seeds[1]])
    torch.testing.assert_close(alone, whole[[4, 1]], atol=1e-6, rtol=0)
    other = aug(images[:1], [seeds[0] + 1])
    assert not torch.allclose(other, whole[:1])
    assert aug.sample(seeds[0], *SIZE) == aug.sample(seeds[0], *SIZE)


def test_bad_input_is_refused() -> None:
    aug = BatchAugment(FULL, SIZE)
    with pytest.raises(ValueError, match="B, 3, H, W"):
        aug(torch.zeros(3, *SIZE, dtype=torch.uint8), [1])
    with pytest.raises(ValueError, match="2 seeds for a batch of 3"):
        aug(torch.zeros(3, 3, *SIZE, dtype=torch.uint8), [1, 2])


def test_collate_in_workers_gives_the_device_path_batch() -> None:
    images, seeds = _batch(5)
    aug = BatchAugment(FULL, SIZE)
    samples = [(im, label, s) for label, (im, s) in enumerate(zip(images, seeds, strict=True))]
    x, labels, got_seeds = AugmentingCollate(aug)(samples)
    assert labels.tolist() == [0, 1, 2, 3, 4] and got_seeds.tolist() == seeds
    assert torch.equal(x, aug(images, seeds))
