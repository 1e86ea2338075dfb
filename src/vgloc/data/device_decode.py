"""JPEG decoding on the GPU (nvJPEG): ``ExtractionOptions(decode="device")``.

Opt-in, not automatic: on the one GPU machine measured (an H200 with 16 cores), Pillow in
16 worker processes decoded 4,033 480x640 JPEGs/s and nvJPEG, batched, 2,626 img/s, so
CPU workers stay the default there. nvJPEG pays off where a fast GPU has few CPU cores
to decode for it.

The decoder is TorchCodec's ``torchcodec.decoders.decode_jpeg`` (``pip install
vgloc[nvjpeg]``; it applies the EXIF orientation on the CPU and on CUDA alike), else
torchvision's ``torchvision.io.decode_jpeg`` (deprecated since torchvision 0.29 in favour
of TorchCodec, but the only one on older stacks; it orients on the CPU only, so on CUDA a
photo whose EXIF orientation is not 1 is decoded by Pillow instead).

Workers only read each file's bytes (and, for torchvision on CUDA, its EXIF orientation
from the header); the main process decodes a whole batch in one call on the device and
resizes there (antialiased bilinear, torch's resampling: pixels within a few levels of
Pillow's, descriptors within cosine 0.999 of the Pillow path, tested). Files that are not
JPEG (PNG, WebP...) and in-memory images are decoded by Pillow in the worker, as on the
default path, and travel decoded. On a CPU device the same code decodes in the main
process (useful for tests; slower than the default workers).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from vgloc.data.datasets import DecodedImageDataset
from vgloc.data.images import ImageInput
from vgloc.data.validation import DataError

__all__ = [
    "DECODE_MODES",
    "DeviceDecoder",
    "EncodedBatch",
    "EncodedImageDataset",
    "check_decode",
    "collate_encoded",
    "device_decoding",
    "jpeg_backend",
]

#: Where images are decoded: ``"cpu"`` (Pillow in worker processes, the default) or
#: ``"device"`` (nvJPEG on the extraction device for JPEG files).
DECODE_MODES = ("cpu", "device")

_JPEG_MAGIC = b"\xff\xd8\xff"


@functools.lru_cache(maxsize=1)
def jpeg_backend() -> str | None:
    """The JPEG decoder for device decoding: ``"torchcodec"``, ``"torchvision"`` or None."""
    if importlib.util.find_spec("torchcodec") is not None:
        try:  # (a TorchCodec built for another torch fails here: fall back)
            import torchcodec.decoders

            if hasattr(torchcodec.decoders, "decode_jpeg"):  # (image decoders: TorchCodec >= 0.16)
                return "torchcodec"
        except Exception:
            pass
    try:
        import torchvision.io
    except ImportError:
        return None
    return "torchvision" if hasattr(torchvision.io, "decode_jpeg") else None


def check_decode(decode: str) -> str:
    """``decode`` if it is one of :data:`DECODE_MODES` and can run here."""
    if decode not in DECODE_MODES:
        raise ValueError(f"unknown decode mode {decode!r}; choose one of {', '.join(DECODE_MODES)}")
    if decode == "device" and jpeg_backend() is None:
        raise ImportError("decode='device' (nvJPEG) needs TorchCodec: pip install vgloc[nvjpeg]")
    return decode


@dataclass
class EncodedBatch:
    """A batch as workers ship it: encoded JPEG bytes, or images Pillow already decoded.

    Attributes:
        payloads: per item, the file's bytes (1-D uint8) when ``encoded``, else the
            decoded, resized image (uint8 ``(3, H, W)``).
        indices: dataset indices ``(B,)``.
        encoded: per item, whether the payload still needs decoding.
        names: per item, the file (for error messages).
    """

    payloads: list[torch.Tensor]
    indices: torch.Tensor
    encoded: list[bool]
    names: list[str]


class EncodedImageDataset(Dataset[tuple[torch.Tensor, int, bool, str]]):
    """Items ``(payload, index, encoded, name)`` for :class:`DeviceDecoder`.

    Args:
        paths: image files or in-memory images (as for :class:`DecodedImageDataset`).
        resize: ``(H, W)``, an int shorter side, or None (each image's own size).
        exif_transpose: apply the EXIF orientation (as the Pillow path does; the device
            decoders always apply it, so False sends every image through Pillow).
        orients: whether the device decoder applies EXIF orientations itself; if not,
            oriented photos go through Pillow (see the module docstring).
    """

    def __init__(
        self,
        paths: Sequence[ImageInput],
        resize: tuple[int, int] | int | None,
        *,
        exif_transpose: bool = True,
        orients: bool = True,
    ) -> None:
        # The Pillow path decodes what nvJPEG cannot take and answers size questions.
        self.pillow = DecodedImageDataset(paths, resize, exif_transpose=exif_transpose)
        self.resize = self.pillow.resize
        self.exif_transpose = exif_transpose
        self.orients = orients

    def __len__(self) -> int:
        return len(self.pillow)

    def output_size(self, index: int) -> tuple[int, int]:
        """The (H, W) of item ``index`` after orientation and resizing (from its header)."""
        return self.pillow.output_size(index)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, bool, str]:
        item = self.pillow.paths[index]
        if isinstance(item, Path) and self.exif_transpose:
            # Only a JPEG is read whole here; anything else goes to Pillow unread (read once).
            try:
                with item.open("rb") as fh:
                    data = fh.read(len(_JPEG_MAGIC))
                    if data == _JPEG_MAGIC:
                        data += fh.read()
            except OSError as exc:
                raise DataError(f"{item}: cannot read image ({type(exc).__name__}: {exc})") from exc
            if data.startswith(_JPEG_MAGIC) and (self.orients or _orientation_of(data) == 1):
                payload = torch.frombuffer(bytearray(data), dtype=torch.uint8)
                return payload, index, True, str(item)
        image, _ = self.pillow[index]
        return image, index, False, str(item) if isinstance(item, Path) else f"image #{index}"


def _orientation_of(data: bytes) -> int:
    """A JPEG's EXIF orientation (1 when it has none), from the bytes already read (header only)."""
    import io

    from PIL import Image

    from vgloc.data.images import _orientation

    try:
        with Image.open(io.BytesIO(data)) as im:
            return _orientation(im)
    except OSError:
        return 1  # (an unreadable header: the decoder reports the file properly)


def collate_encoded(items: Sequence[tuple[torch.Tensor, int, bool, str]]) -> EncodedBatch:
    """The DataLoader ``collate_fn`` of :class:`EncodedImageDataset` (payload lengths differ)."""
    return EncodedBatch(
        payloads=[item[0] for item in items],
        indices=torch.tensor([item[1] for item in items], dtype=torch.int64),
        encoded=[item[2] for item in items],
        names=[item[3] for item in items],
    )


class DeviceDecoder:
    """Turns an :class:`EncodedBatch` into ``(uint8 (B, 3, H, W) on device, indices)``.

    Args:
        resize: the dataset's ``resize``.
        device: where to decode (nvJPEG on CUDA; TorchCodec's CPU decoder on ``"cpu"``).
    """

    def __init__(self, resize: tuple[int, int] | int | None, device: str | torch.device) -> None:
        from vgloc.data.transforms import _check_resize

        check_decode("device")
        self.resize = _check_resize(resize)
        self.device = torch.device(device)
        self.backend = jpeg_backend()
        #: Whether the decoder applies EXIF orientations on this device (else the dataset
        #: must send oriented photos through Pillow: :class:`EncodedImageDataset` ``orients``).
        self.orients = self.backend == "torchcodec" or self.device.type == "cpu"

    def __call__(self, batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        images: list[torch.Tensor | None] = [None] * len(batch.payloads)
        todo = [i for i, encoded in enumerate(batch.encoded) if encoded]
        if todo:
            decoded = self._decode([batch.payloads[i] for i in todo], [batch.names[i] for i in todo])
            for i, image in zip(todo, decoded, strict=True):
                images[i] = self._resize(image)
        for i, encoded in enumerate(batch.encoded):
            if not encoded:
                images[i] = batch.payloads[i].to(self.device, non_blocking=True)
        sizes = {tuple(im.shape) for im in images if im is not None}
        if len(sizes) != 1:
            raise ValueError(f"a batch must hold images of one size, got {sorted(sizes)}")
        return torch.stack([im for im in images if im is not None]), batch.indices

    def _decode(self, payloads: list[torch.Tensor], names: list[str]) -> list[torch.Tensor]:
        """One decoding call for the batch; on failure, one per image to name the bad file."""
        decode = self._decoder()
        try:
            out = decode(payloads)
            return list(out) if isinstance(out, (list, tuple)) else [out]
        except Exception:
            results = []
            for payload, name in zip(payloads, names, strict=True):
                try:
                    results.append(decode(payload))
                except Exception as exc:
                    raise DataError(f"{name}: cannot decode JPEG ({type(exc).__name__}: {exc})") from exc
            return results

    def _decoder(self) -> Any:
        """``payloads -> images`` with the chosen backend, in RGB, oriented where it can."""
        if self.backend == "torchcodec":
            from torchcodec.decoders import decode_jpeg

            return lambda payload: decode_jpeg(payload, mode="RGB", device=self.device)
        import warnings

        from torchvision.io import ImageReadMode
        from torchvision.io import decode_jpeg as tv_decode_jpeg

        def decode(payload: Any) -> Any:
            with warnings.catch_warnings():  # (its deprecation notice, once per batch otherwise)
                warnings.simplefilter("ignore")
                return tv_decode_jpeg(
                    payload,
                    mode=ImageReadMode.RGB,
                    device=self.device,
                    apply_exif_orientation=self.device.type == "cpu",
                )

        return decode

    def _resize(self, image: torch.Tensor) -> torch.Tensor:
        """Resize ``(3, h, w)`` uint8 as the Pillow path would size it (antialiased bilinear)."""
        from vgloc.data.transforms import resized_size

        if self.resize is None:
            return image
        size = resized_size(self.resize, (int(image.shape[-2]), int(image.shape[-1])))
        if size == (int(image.shape[-2]), int(image.shape[-1])):
            return image
        resized = torch.nn.functional.interpolate(
            image[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False
        )
        return resized[0].round_().clamp_(0, 255).to(torch.uint8)


def device_decoding(
    images: Sequence[ImageInput], resize: tuple[int, int] | int | None, device: str | torch.device
) -> tuple[EncodedImageDataset, dict[str, Any]]:
    """The dataset and the :func:`~vgloc.models.extract_descriptors` arguments that decode on ``device``."""
    decoder = DeviceDecoder(resize, device)
    dataset = EncodedImageDataset(images, resize, orients=decoder.orients)
    return dataset, {"collate_fn": collate_encoded, "decode_batch": decoder}
