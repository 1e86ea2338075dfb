"""A torch Dataset over image paths, for descriptor extraction.

Each item is ``(image tensor (3, H, W), index)``: the index lets the extraction
loop write descriptors into a preallocated array in the set's order regardless
of DataLoader batching.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from vgloc.data.images import ImageInput, image_size, is_path_input, load_image, open_image_input
from vgloc.data.records import GeoImageSet


class ImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """Images read from paths (or held in memory) and transformed, with their index.

    Args:
        paths: image files, in the order descriptors should follow; items may also be
            in-memory images (PIL, numpy arrays, encoded bytes: see
            :func:`vgloc.data.images.open_image_input`).
        transform: e.g. :func:`vgloc.data.transforms.build_transform`; maps a PIL RGB
            image to a (3, H, W) tensor.
        exif_transpose: see :func:`load_image`.

    Example:
        >>> ds = ImageDataset(image_set.paths, build_transform((480, 640)))
        >>> image, index = ds[0]  # image: (3, 480, 640) float32
    """

    def __init__(
        self,
        paths: Sequence[ImageInput],
        transform: Callable[[Image.Image], torch.Tensor],
        *,
        exif_transpose: bool = True,
    ) -> None:
        self.paths: list[Any] = [Path(p) if is_path_input(p) else p for p in paths]  # type: ignore[arg-type]
        self.transform = transform
        self.exif_transpose = exif_transpose

    @classmethod
    def from_set(
        cls, image_set: GeoImageSet, transform: Callable[[Image.Image], torch.Tensor]
    ) -> ImageDataset:
        """A dataset over the images of a :class:`GeoImageSet`, in its order."""
        return cls(image_set.paths, transform)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """Returns ``(tensor (3, H, W), index)``; raises DataError naming an unreadable file."""
        item = self.paths[index]
        if isinstance(item, Path):
            image = load_image(item, exif_transpose=self.exif_transpose)
        else:
            image = open_image_input(item, exif_transpose=self.exif_transpose, name=f"image #{index}")
        return self.transform(image), index


def check_batchable(resize: tuple[int, int] | int | None, batch_size: int) -> None:
    """Refuse batching images that are not resized to one size.

    With ``resize=None`` every image keeps its own resolution, so images cannot be
    stacked into one batch tensor; fail here with a clear message instead of deep
    inside the DataLoader's collate.

    Args:
        resize: the ``resize`` given to :func:`~vgloc.data.transforms.build_transform`.
        batch_size: the intended batch size.

    Raises:
        ValueError: when ``batch_size`` < 1, or > 1 with ``resize=None``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if resize is None and batch_size > 1:
        raise ValueError(
            f"batch_size={batch_size} needs images of one size, but resize=None keeps each image's "
            "own resolution; use batch_size=1 or give resize=(H, W)"
        )


def collate_images(batch: Sequence[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(image, index)`` items, with a clear error when image sizes differ.

    Useful with an int ``resize`` (shorter side), where images of different aspect
    ratios come out with different sizes.

    Args:
        batch: items of :class:`ImageDataset`.

    Returns:
        ``(images (B, 3, H, W), indices (B,) int64)``.

    Raises:
        ValueError: listing the differing shapes and their indices.
    """
    shapes = {tuple(img.shape) for img, _ in batch}
    if len(shapes) > 1:
        detail = ", ".join(f"index {i}: {tuple(img.shape)}" for img, i in batch[:8])
        raise ValueError(
            f"cannot batch images of different sizes ({detail}); resize to a fixed (H, W) or use batch_size=1"
        )
    images = torch.stack([img for img, _ in batch])
    return images, torch.tensor([i for _, i in batch], dtype=torch.int64)


class DecodedImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """The fast extraction dataset: ``(uint8 tensor (3, H, W), index)`` items.

    The same pixels as :class:`ImageDataset` with :func:`~vgloc.data.transforms.build_transform`
    (Pillow decode, EXIF orientation, Pillow's antialiased bilinear resize), stopping
    before the float conversion: normalisation (and brightness) is done per batch in
    the model step by :class:`~vgloc.data.transforms.NormalizeUint8`, so worker
    processes ship 4x less data. Decoding errors raise :class:`DataError` naming the file.

    Args:
        paths: image files or in-memory images, as for :class:`ImageDataset`.
        resize: ``(H, W)``, an int shorter side, or None (each image's own size).
        draft: let libjpeg decode JPEGs at a reduced scale, never below twice ``resize``
            (see :func:`load_image`), when the file is at least four times that size; the
            pixels stay within about one level of a full decode's (tested), not identical.
        exif_transpose: see :func:`load_image`.
    """

    def __init__(
        self,
        paths: Sequence[ImageInput],
        resize: tuple[int, int] | int | None,
        *,
        draft: bool = False,
        exif_transpose: bool = True,
    ) -> None:
        from vgloc.data.transforms import _check_resize

        self.paths: list[Any] = [Path(p) if is_path_input(p) else p for p in paths]  # type: ignore[arg-type]
        self.resize = _check_resize(resize)
        self.draft = draft
        self.exif_transpose = exif_transpose

    def __len__(self) -> int:
        return len(self.paths)

    def output_size(self, index: int) -> tuple[int, int]:
        """The (H, W) of item ``index``, from its header (no decoding) for files."""
        from vgloc.data.transforms import resized_size

        if isinstance(self.resize, tuple):
            return self.resize
        size = image_size(self.paths[index], exif_transpose=self.exif_transpose, name=f"image #{index}")
        return resized_size(self.resize, size)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from vgloc.data.transforms import resize_image

        item = self.paths[index]
        # Files and encoded bytes (e.g. an HTTP upload) can be decoded at a reduced scale.
        draft_size = None
        if self.draft and self.resize is not None and isinstance(item, (Path, bytes, bytearray)):
            draft_size = self.output_size(index)
        if isinstance(item, Path):
            image = load_image(item, exif_transpose=self.exif_transpose, draft_size=draft_size)
        else:
            image = open_image_input(
                item, exif_transpose=self.exif_transpose, name=f"image #{index}", draft_size=draft_size
            )
        image = resize_image(image, self.resize)
        array = np.asarray(image, dtype=np.uint8)
        return torch.from_numpy(array.copy()).permute(2, 0, 1), index


def batches_by_size(sizes: Sequence[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Group dataset indices into batches of images of one size.

    Images keep their dataset order within a size; sizes come in order of first
    appearance. With one size this is plain sequential batching.

    Args:
        sizes: the (H, W) of each item (e.g. :meth:`DecodedImageDataset.output_size`).
        batch_size: the most images per batch (>= 1).

    Returns:
        Lists of indices, each of one size and at most ``batch_size`` long.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    groups: dict[tuple[int, int], list[int]] = {}
    for i, size in enumerate(sizes):
        groups.setdefault(tuple(size), []).append(i)  # type: ignore[arg-type]
    return [idx[k : k + batch_size] for idx in groups.values() for k in range(0, len(idx), batch_size)]
