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

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from vgloc.data.images import ImageInput, is_path_input, open_image_input
from vgloc.data.records import GeoImageSet
from vgloc.data.validation import DataError


def load_image(
    path: str | os.PathLike[str],
    *,
    exif_transpose: bool = True,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Open an image as RGB, fully decoded.

    Args:
        path: the image file.
        exif_transpose: apply the EXIF orientation tag, so a phone photo taken upright
            is seen upright (a no-op for images without the tag, such as benchmark images).
        draft_size: the (H, W) the image will be resized to (as seen after the EXIF
            orientation), if any: a JPEG at least twice as large is then decoded at
            1/2, 1/4 or 1/8 scale by libjpeg (Pillow's ``draft``), never below this size.
            None decodes at full size.

    Returns:
        The RGB PIL image.

    Raises:
        DataError: naming the file when it cannot be opened or decoded.
    """
    try:
        with Image.open(path) as im:
            if draft_size is not None and im.format == "JPEG":
                _draft(im, draft_size, exif_transpose)
            im.load()
            out = ImageOps.exif_transpose(im) if exif_transpose else im
            return out.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{os.fspath(path)}: cannot read image ({type(exc).__name__}: {exc})") from exc


# EXIF orientations that swap width and height (transpose, rotate 90/270, transverse).
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
    except (ValueError, TypeError, OSError, SyntaxError):
        return 1


def _draft(im: Image.Image, size: tuple[int, int], exif_transpose: bool) -> None:
    """Ask libjpeg for the smallest DCT scale that keeps the image at least ``size`` (H, W)."""
    h, w = size
    if exif_transpose and _orientation(im) in _SWAPPING_ORIENTATIONS:
        h, w = w, h
    if im.width >= 2 * w and im.height >= 2 * h:
        im.draft("RGB", (w, h))


def image_size(item: Any, *, exif_transpose: bool = True, name: str = "image") -> tuple[int, int]:
    """The (H, W) an image input decodes to, from the file header when it is a path.

    Raises:
        DataError: naming the file when its header cannot be read.
    """
    if isinstance(item, Path) or is_path_input(item):
        try:
            with Image.open(item) as im:
                w, h = im.size
                if exif_transpose and _orientation(im) in _SWAPPING_ORIENTATIONS:
                    w, h = h, w
                return h, w
        except (OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"{os.fspath(item)}: cannot read image ({type(exc).__name__}: {exc})") from exc
    if isinstance(item, np.ndarray):
        return int(item.shape[0]), int(item.shape[1])
    if isinstance(item, Image.Image):
        return item.height, item.width
    image = open_image_input(item, exif_transpose=exif_transpose, name=name)
    return image.height, image.width


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
        draft: let libjpeg decode JPEGs at a reduced scale when ``resize`` is at most
            half the file's size (see :func:`load_image`); the descriptors stay within
            cosine 0.999 of a full decode (tested) but are not bit-identical (off by default).
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
        if isinstance(item, Path):
            draft_size = None
            if self.draft and self.resize is not None:
                draft_size = self.output_size(index)
            image = load_image(item, exif_transpose=self.exif_transpose, draft_size=draft_size)
        else:
            image = open_image_input(item, exif_transpose=self.exif_transpose, name=f"image #{index}")
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
