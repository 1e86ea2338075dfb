"""A torch Dataset over image paths, for descriptor extraction.

Each item is ``(image tensor (3, H, W), index)``: the index lets the extraction
loop write descriptors into a preallocated array in the set's order regardless
of DataLoader batching.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from vgloc.data.images import ImageInput, is_path_input, open_image_input
from vgloc.data.records import GeoImageSet
from vgloc.data.validation import DataError


def load_image(path: str | os.PathLike[str], *, exif_transpose: bool = True) -> Image.Image:
    """Open an image as RGB, fully decoded.

    Args:
        path: the image file.
        exif_transpose: apply the EXIF orientation tag, so a phone photo taken upright
            is seen upright (a no-op for images without the tag, such as benchmark images).

    Returns:
        The RGB PIL image.

    Raises:
        DataError: naming the file when it cannot be opened or decoded.
    """
    try:
        with Image.open(path) as im:
            im.load()
            out = ImageOps.exif_transpose(im) if exif_transpose else im
            return out.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{os.fspath(path)}: cannot read image ({type(exc).__name__}: {exc})") from exc


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
