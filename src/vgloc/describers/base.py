"""The Describer contract: images -> L2-normalised global descriptors ``[N, D]``.

Everything that turns images into descriptors (a CNN from a spec and weights, the
classical RootSIFT-VLAD, and next the multi-scale wrapper, ensembles, model soups and
the branches of a cross-view model) implements :class:`Describer`. Index building,
locating, evaluation and training validation only ever talk to this interface; the
one place that knows the concrete kinds is :mod:`vgloc.describers.resolver`.

An index stores what it needs to rebuild its describer: :meth:`Describer.index_state`
returns JSON metadata plus files to write beside the index, and the registered
``load_from_index`` of the same kind reads them back.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from vgloc.config.scales import check_fusion, check_scales

if TYPE_CHECKING:
    from vgloc.data.images import ImageInput

__all__ = [
    "AUTO_IMAGE_SIZE",
    "DEFAULT_IMAGE_SIZE",
    "Describer",
    "ExtractionOptions",
    "ImageSize",
    "ImageSizeOption",
    "IndexState",
]

log = logging.getLogger(__name__)

# The VG benchmark's test resolution (H, W) (PROTOCOLS.md 1.1: resize [480, 640]).
DEFAULT_IMAGE_SIZE: tuple[int, int] = (480, 640)

ImageSize = tuple[int, int] | None

#: ``ExtractionOptions.image_size`` when the user chose none: the describer's own size (a
#: published model's evaluation size, an index's recorded size), else :data:`DEFAULT_IMAGE_SIZE`.
AUTO_IMAGE_SIZE: Literal["auto"] = "auto"

ImageSizeOption = ImageSize | Literal["auto"]


#: Precision names (as :data:`vgloc.models.extract.PRECISIONS`; repeated so that options
#: are checked without importing torch).
PRECISIONS = ("fp32", "bf16", "fp16", "int8", "auto")

#: Engine names (as :data:`vgloc.models.engines.ENGINES`).
ENGINE_NAMES = ("auto", "torch", "onnxruntime")


@dataclass
class ExtractionOptions:
    """How descriptors are computed (shared by index building, locating and evaluation).

    Attributes:
        image_size: (H, W) every image is resized to; None keeps each image's own size
            (then batches hold one image unless all images share a size); ``"auto"``
            (default) lets the describer choose (:meth:`Describer.resolve_options`): a
            published model's evaluation size, an index's recorded size, else 480x640.
        batch_size: images per forward pass.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        precision: ``"fp32"``, ``"bf16"`` (fast on CPUs with AVX-512 BF16 / AMX),
            ``"fp16"`` (CUDA), ``"int8"`` (CPU, ONNX Runtime: a quantised graph, ~2.9x
            fp32 on VNNI CPUs, descriptors within cosine 0.999 of fp32's, checked at run
            time; :mod:`vgloc.models.quantize`), or ``"auto"``, the hardware's fast path: fp16 autocast on
            CUDA; on CPU channels_last with bf16 where bf16 is native (AVX-512 BF16 / AMX),
            plain fp32 elsewhere (emulated bf16 is ~4x slower than fp32 on AVX2 CPUs).
        channels_last: NHWC memory format; None (default) = as the fast path says
            (``"auto"`` precision on CPU always runs channels_last; an explicit
            precision such as ``"fp32"`` is the plain reference path).
        num_workers: DataLoader worker processes for image decoding; None (default) =
            ``min(4, CPUs)``, none for two batches of images or fewer.
        engine: ``"auto"`` (with ``precision="auto"``: ONNX Runtime for fp32 on CPU where
            installed, else torch; an explicit precision such as ``"fp32"`` runs torch),
            ``"torch"`` or ``"onnxruntime"`` (see :func:`vgloc.models.engines.select_engine`).
        jpeg_draft: decode JPEGs at 1/2, 1/4 or 1/8 scale (libjpeg DCT scaling), never
            below twice ``image_size``, when the file is at least four times that size
            (default): 12 MP photos to 480x640 decode 2.8x faster, descriptors within
            cosine 0.9999 of a full decode's (``benchmarks/bench_draft_recall.py``). It
            never applies to the field's 480x640 benchmark images at 480x640. False
            decodes every file in full, the reference scripts' exact pixels.
        brightness: scale query pixel values by this factor (the night-simulation trick);
            applied to queries only.
        contrast: query contrast factor (torchvision ``adjust_contrast``: 1 unchanged,
            0 uniform grey), after brightness; queries only.
        saturation: query saturation factor (torchvision ``adjust_saturation``: 1
            unchanged, 0 greyscale), after contrast; queries only.
        scales: multi-scale testing: describe every image at ``(round(H*s), round(W*s))``
            of the resolved size for each ``s`` and fuse (see
            :mod:`vgloc.describers.multiscale`); None (default) = as recorded (an index's
            scales, else one scale, 1). Applied where vgloc resolves the describer
            (index building, evaluation, :class:`~vgloc.localizer.Localizer`).
        scale_fusion: ``"avg"``, ``"sum"``, ``"max"`` or ``"min"``; None = the index's, else avg.
        decode: ``"cpu"`` (default: Pillow in worker processes) or ``"device"``: JPEG files
            decoded by nvJPEG on the extraction device, oriented and resized there
            (:mod:`vgloc.data.device_decode`; needs ``vgloc[nvjpeg]``; pixels within a few
            levels of Pillow's, so descriptors within cosine 0.999, not identical).
        progress: show progress bars.
    """

    image_size: ImageSizeOption = AUTO_IMAGE_SIZE
    batch_size: int = 16
    device: str = "cpu"
    precision: str = "auto"
    channels_last: bool | None = None
    num_workers: int | None = None
    engine: str = "auto"
    jpeg_draft: bool = True
    brightness: float | None = None
    contrast: float | None = None
    saturation: float | None = None
    scales: tuple[float, ...] | None = None
    scale_fusion: str | None = None
    decode: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.decode != "cpu":  # (the default needs no check, nor torch imported for one)
            from vgloc.data.device_decode import check_decode

            check_decode(self.decode)
        # Bad precisions and engines fail where the options are made, before any model is loaded.
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.engine not in ENGINE_NAMES:
            raise ValueError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINE_NAMES)}")
        if self.precision == "int8":
            if not str(self.device).startswith("cpu"):
                raise ValueError(
                    f"precision 'int8' runs on the CPU only (ONNX Runtime), not on {self.device}"
                )
            if self.engine == "torch":
                raise ValueError(
                    "precision 'int8' runs under ONNX Runtime: use engine 'auto' or 'onnxruntime'"
                )
        # Bad scales fail where the options are made, before any model is loaded.
        if self.scales is not None:
            self.scales = check_scales(self.scales)
        if self.scale_fusion is not None:
            self.scale_fusion = check_fusion(self.scale_fusion)


@dataclass
class IndexState:
    """What an index stores to rebuild its describer.

    Attributes:
        metadata: JSON-ready facts (``{"kind": "net", ...}``), kept in the index metadata.
        files: file name -> writer ``f(path)``, written into the index directory.
    """

    metadata: dict[str, Any]
    files: dict[str, Callable[[Path], object]]


class Describer(abc.ABC):
    """Images -> L2-normalised global descriptors.

    Attributes:
        kind: the registry name of the implementation (``"net"``, ``"classical"``, ...).
        spec: the canonical spec string (``"resnet18+gem+fc512"``, ``"rootsift+vlad64"``).
        descriptor_dim: ``D``.
    """

    kind: str = ""
    #: The size ``image_size="auto"`` stands for with this describer (instances may override).
    default_image_size: ImageSize = DEFAULT_IMAGE_SIZE
    #: Whether :meth:`describe` resizes images to ``options.image_size`` (what multi-scale needs).
    follows_image_size: bool = True

    def resolve_options(self, options: ExtractionOptions) -> ExtractionOptions:
        """``options`` with a concrete ``image_size``: ``"auto"`` -> :attr:`default_image_size`.

        Callers that record the size (an index, an evaluation's settings) resolve first;
        :meth:`describe` implementations resolve too, so ``"auto"`` never reaches a transform.
        An explicit size that differs from the describer's own is kept, with an info log.
        """
        if options.image_size == AUTO_IMAGE_SIZE:
            return dataclasses.replace(options, image_size=self.default_image_size)
        if options.image_size != self.default_image_size and self.default_image_size != DEFAULT_IMAGE_SIZE:
            log.info(
                "image size %s given explicitly: used instead of %s's own %s",
                _size_text(options.image_size),
                self.spec,
                _size_text(self.default_image_size),
            )
        return options

    @property
    @abc.abstractmethod
    def spec(self) -> str:
        """The canonical spec string."""

    @property
    @abc.abstractmethod
    def descriptor_dim(self) -> int:
        """``D``, the length of every descriptor."""

    @abc.abstractmethod
    def describe(
        self, images: Sequence[ImageInput], options: ExtractionOptions, *, queries: bool = False
    ) -> np.ndarray:
        """Descriptors of ``images``, in their order.

        Args:
            images: N image files or in-memory images (see :mod:`vgloc.data.images`).
            options: extraction options; query-only transforms (``options.brightness``)
                apply only when ``queries`` is true.
            queries: whether these are query images.

        Returns:
            ``(N, D)`` float32, each row L2-normalised.
        """

    def prepare(self, database: Sequence[Path], options: ExtractionOptions, seed: int = 0) -> bool:
        """Fit data-dependent state on the database (NetVLAD clusters, a VLAD vocabulary).

        Called before the database is described; a describer whose state is complete
        returns False without doing anything (the default).

        Returns:
            True when something was fitted (the index then records it).
        """
        del database, options, seed
        return False

    @abc.abstractmethod
    def index_state(self) -> IndexState:
        """The metadata and files an index needs to rebuild this describer."""

    def close(self) -> None:  # noqa: B027  (optional hook: most describers hold nothing to release)
        """Release resources (default: nothing to release)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, dim={self.descriptor_dim})"


def _size_text(size: ImageSizeOption) -> str:
    return "native" if size is None else size if isinstance(size, str) else f"{size[0]}x{size[1]}"
