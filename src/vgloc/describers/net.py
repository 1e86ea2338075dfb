"""A neural network (backbone -> aggregator -> head) as a :class:`Describer`."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vgloc.describers.base import DEFAULT_IMAGE_SIZE, Describer, ExtractionOptions, IndexState

if TYPE_CHECKING:
    from torch import nn

    from vgloc.data.images import ImageInput
    from vgloc.models.published import Preprocessing, PublishedModel

__all__ = ["MODEL_FILE_IN_INDEX", "DeferredModel", "NetDescriber", "sha256_file"]

log = logging.getLogger(__name__)

MODEL_FILE_IN_INDEX = "model.pt"


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks.

    Remembered per process for the same file, size and modification time: loading a
    checkpoint hashes it to verify it, to find its cached export and to record it in an
    index, and a ResNet-50 file is ~100 MB.
    """
    stat = os.stat(path)
    return _sha256_of(os.path.realpath(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class DeferredModel:
    """A network not built yet, and what is known of it without building it.

    Recorded by :func:`vgloc.models.engines.remember_checkpoint_export` for a checkpoint
    file whose checked ONNX export is cached.

    Attributes:
        build: loads the file and returns the network.
        key: the file's export key (:func:`vgloc.models.engines.checkpoint_key`).
        spec: the network's spec.
        descriptor_dim: ``D``.
        export: the cached fp32 ONNX export.
        needs_data_init: whether its aggregator still needs clusters from the data (NetVLAD).
    """

    build: Callable[[], nn.Module]
    key: str
    spec: str
    descriptor_dim: int
    export: Path
    needs_data_init: bool


class NetDescriber(Describer):
    """A torch network that maps ``(B, 3, H, W)`` images to ``(B, D)`` descriptors.

    Args:
        model: the network (a :class:`~vgloc.models.GeoLocalizationModel` or any module
            with ``spec`` and ``descriptor_dim`` attributes); put in eval mode.
        checkpoint: the weights file it was loaded from, if any: the index then records
            the file and its hash instead of copying the weights.
        pretrained: whether the backbone carries ImageNet weights from the network.
        published: the published model whose weights these are (its name becomes the
            describer's spec, so an index records ``"megaloc"``); default: the
            network's ``published`` attribute (set by ``create_model(NAME)``).
        preprocessing: evaluation preprocessing (size for ``image_size="auto"``,
            normalisation mean/std); default: the published model's, else 480x640 and
            ImageNet mean/std.
    """

    kind = "net"

    def __init__(
        self,
        model: nn.Module | None,
        *,
        checkpoint: str | Path | None = None,
        pretrained: bool = False,
        published: PublishedModel | None = None,
        preprocessing: Preprocessing | None = None,
        deferred: DeferredModel | None = None,
    ):
        from vgloc.models.published import Preprocessing

        if model is None and deferred is None:
            raise ValueError("a NetDescriber needs a model, or a deferred one")
        self._model = None if model is None else model.eval()
        #: How to build the model when it is first needed (see :class:`DeferredModel`).
        self._deferred = deferred
        #: The checkpoint file's export key (:func:`vgloc.models.engines.checkpoint_key`),
        #: recorded after an extraction so that later processes can skip the model.
        self.checkpoint_key: str | None = None if deferred is None else deferred.key
        self._export_engine: Any = None  # the engine over the deferred model's export, once opened
        self._export_recorded = False  # (recorded once: not a file write per locate call)
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.pretrained = pretrained
        self.data_initialized = False
        self.published = published if published is not None else getattr(model, "published", None)
        if preprocessing is None:
            preprocessing = (
                self.published.preprocessing
                if self.published is not None
                else Preprocessing(image_size=DEFAULT_IMAGE_SIZE)
            )
        self.preprocessing = preprocessing
        self.default_image_size = preprocessing.image_size

    @property
    def model(self) -> nn.Module:
        """The torch network, built on first use when it was deferred."""
        if self._model is None:
            assert self._deferred is not None
            log.debug("building %s (its cached export could not serve this request)", self._deferred.spec)
            self._model = self._deferred.build().eval()
        return self._model

    @model.setter
    def model(self, model: nn.Module) -> None:
        self._model = model.eval()

    @property
    def spec(self) -> str:
        if self.published is not None:
            return self.published.name
        if self._model is None and self._deferred is not None:
            return self._deferred.spec
        return str(getattr(self.model, "spec", type(self.model).__name__))

    @property
    def descriptor_dim(self) -> int:
        if self._model is None and self._deferred is not None:
            return self._deferred.descriptor_dim
        return int(getattr(self.model, "descriptor_dim"))  # noqa: B009  (a clear AttributeError otherwise)

    # -- construction ---------------------------------------------------------------
    @classmethod
    def claims(cls, spec: str) -> bool:
        """Any spec no other describer kind claims is a network spec (the resolver's fallback)."""
        return bool(spec)

    @classmethod
    def from_spec(
        cls, spec: str, checkpoint: str | Path | None = None, *, pretrained: bool = False
    ) -> NetDescriber:
        """Build the network a spec names, with weights from ``checkpoint`` if given.

        ``checkpoint`` may be a vgloc model file (its stored spec must agree with
        ``spec``; an empty ``spec`` takes the file's) or an authors' state dict
        (CosPlace, VG benchmark) for the architecture ``spec`` names. ``spec`` may also
        be a published model's name (``"megaloc"``): ``checkpoint`` is then a local copy
        of its published file (default: fetched into the torch hub cache), and the
        describer uses its evaluation preprocessing.
        """
        from vgloc.models import create_model
        from vgloc.models.hub import find_published, published_for_weights

        entry = find_published(spec)
        if entry is not None:
            return cls._from_published(entry, checkpoint)
        if checkpoint is not None and spec and not Path(checkpoint).exists():
            # --checkpoint cosplace / cosplace:<spec> / megaloc: published weights by name.
            named = published_for_weights(spec, str(checkpoint))
            if named is not None:
                return cls._from_published(named, None)
        if checkpoint is None:
            return cls(create_model(spec, pretrained=pretrained), pretrained=pretrained)
        ckpt = Path(checkpoint)
        if not ckpt.is_file():
            raise FileNotFoundError(f"checkpoint not found: {ckpt}")
        return cls._from_file(
            ckpt, f"spec {spec!r}", lambda: cls._load_checkpoint(spec, ckpt), checkpoint=ckpt
        )

    @classmethod
    def _from_file(
        cls, path: Path, how: str, load: Callable[[], NetDescriber], *, checkpoint: Path | None
    ) -> NetDescriber:
        """A describer whose weights come from the file ``path``, loaded by ``load``.

        When an earlier process recorded a checked ONNX export for this file (the same
        bytes, loaded the same way ``how`` names, the same code and versions), the torch
        model is not built (nor torchvision imported) until something needs it: the
        fp32 CPU path runs the export directly. Otherwise the model is loaded now and the
        export recorded after its first extraction.
        """
        from vgloc.models.checkpoint_exports import checkpoint_key, export_for_checkpoint
        from vgloc.models.engines import onnxruntime_available

        key = checkpoint_key(sha256_file(path), how) if onnxruntime_available() else None
        facts = export_for_checkpoint(key) if key is not None else None
        if key is None or facts is None:
            describer = load()
            describer.checkpoint_key = key
            return describer
        deferred = DeferredModel(
            build=lambda: load().model,
            key=key,
            spec=facts["spec"],
            descriptor_dim=facts["descriptor_dim"],
            export=facts["export"],
            needs_data_init=facts["needs_data_init"],
        )
        return cls(None, checkpoint=checkpoint, deferred=deferred)

    @classmethod
    def _load_checkpoint(cls, spec: str, ckpt: Path) -> NetDescriber:
        """Load ``ckpt``: a vgloc model file, or an authors' state dict for the architecture ``spec``."""
        from vgloc.models import ModelSpec, create_model, load_model, load_state_dict_compat

        try:
            loaded = load_model(ckpt)
        except ValueError:
            # Not a vgloc checkpoint: an authors' state dict for the named architecture.
            if not spec:
                raise ValueError(
                    f"{ckpt} is not a vgloc model file: name its architecture with a model spec"
                ) from None
            net = create_model(spec, pretrained=False)
            load_state_dict_compat(net, ckpt)
            return cls(net, checkpoint=ckpt)
        if spec and str(ModelSpec.parse(spec)) != loaded.spec:
            raise ValueError(f"{ckpt} holds a {loaded.spec} model, but --model {spec} was asked for")
        return cls(loaded, checkpoint=ckpt)

    @classmethod
    def _from_published(cls, entry: PublishedModel, checkpoint: str | Path | None) -> NetDescriber:
        """A published model from its file: the local copy, or the one fetched into the hub cache.

        A vgloc model file of the same architecture (e.g. fine-tuned from it) loads too, and
        keeps the entry's preprocessing. The index records the file and its hash either way.
        """
        from vgloc.models import create_model
        from vgloc.models.hub import published_file

        path = published_file(entry, checkpoint)
        return cls(create_model(entry.name, weights=path), checkpoint=path, published=entry)

    @classmethod
    def load_from_index(cls, index_dir: Path | None, state: dict[str, Any], spec: str) -> NetDescriber:
        """Rebuild the describer an index recorded (see :meth:`index_state`)."""
        from vgloc.models import load_model

        if state.get("model_file"):
            if index_dir is None:
                raise ValueError("this in-memory index has no directory holding its model file")
            path = Path(index_dir) / state["model_file"]
            return cls._from_file(
                path, "vgloc model file", lambda: cls(load_model(path)), checkpoint=None
            )._with_recorded_preprocessing(state)
        if state.get("checkpoint"):
            ckpt = Path(state["checkpoint"])
            if not ckpt.is_file():
                raise FileNotFoundError(
                    f"the index was built with checkpoint {ckpt}, which no longer exists; pass --checkpoint"
                )
            if sha256_file(ckpt) != state.get("checkpoint_sha256"):
                raise ValueError(f"checkpoint {ckpt} changed since the index was built (sha256 differs)")
            describer = cls.from_spec(spec, ckpt)
        else:
            describer = cls.from_spec(spec, pretrained=bool(state.get("pretrained")))
        return describer._with_recorded_preprocessing(state)

    def _with_recorded_preprocessing(self, state: dict[str, Any]) -> NetDescriber:
        """Use the normalisation an index recorded (indexes from before it was recorded: ImageNet)."""
        from vgloc.models.published import Preprocessing

        pre = state.get("preprocessing")
        if isinstance(pre, dict):
            size = pre.get("image_size")
            self.preprocessing = Preprocessing(
                image_size=None if size is None else (int(size[0]), int(size[1])),
                mean=tuple(float(v) for v in pre["mean"]),  # type: ignore[arg-type]
                std=tuple(float(v) for v in pre["std"]),  # type: ignore[arg-type]
                multiple_of=int(pre.get("multiple_of", 1)),
            )
            self.default_image_size = self.preprocessing.image_size
        return self

    def resolve_options(self, options: ExtractionOptions) -> ExtractionOptions:
        """As :meth:`Describer.resolve_options`, refusing a size the network cannot take
        (DINOv2 models need sides that are multiples of 14), before any image is read."""
        options = super().resolve_options(options)
        size, k = options.image_size, self.preprocessing.multiple_of
        if isinstance(size, tuple) and k > 1 and (size[0] % k or size[1] % k):
            raise ValueError(
                f"{self.spec} needs an image size whose sides are multiples of {k}, got "
                f"{size[0]}x{size[1]} (its evaluation size: {self.preprocessing.image_size})"
            )
        return options

    # -- the contract -----------------------------------------------------------------
    def describe(
        self, images: Sequence[ImageInput], options: ExtractionOptions, *, queries: bool = False
    ) -> np.ndarray:
        from vgloc.data.datasets import DecodedImageDataset, batches_by_size
        from vgloc.data.transforms import NormalizeUint8
        from vgloc.models import extract_descriptors
        from vgloc.models.extract import last_extraction

        options = self.resolve_options(options)
        assert options.image_size != "auto"  # (resolved above; narrows the type)
        # Workers decode (and resize) to uint8; normalisation runs per batch on the device.
        # With decode="device" workers ship JPEG bytes, decoded by nvJPEG on the device.
        dataset: Any
        device_decoding: dict[str, Any] = {}
        if options.decode == "device":
            from vgloc.data.device_decode import device_decoding as make_device_decoding

            dataset, device_decoding = make_device_decoding(list(images), options.image_size, options.device)
        else:
            dataset = DecodedImageDataset(list(images), options.image_size, draft=options.jpeg_draft)
        batches = None
        if options.image_size is None and options.batch_size > 1:
            # Native size: batch the images that share a size (read from file headers).
            batches = batches_by_size(
                [dataset.output_size(i) for i in range(len(dataset))], options.batch_size
            )
        runner = self._export_runner(options)
        out = extract_descriptors(
            self.model if runner is None else None,
            dataset,
            batch_size=options.batch_size,
            device=options.device,
            precision=options.precision,
            channels_last=options.channels_last,
            num_workers=options.num_workers,
            progress=options.progress,
            batches=batches,
            preprocess=NormalizeUint8(
                options.brightness if queries else None,
                mean=self.preprocessing.mean,
                std=self.preprocessing.std,
                contrast=options.contrast if queries else None,
                saturation=options.saturation if queries else None,
            ),
            engine=options.engine,
            runner=runner,
            **device_decoding,
        )
        if runner is None:
            self._remember_export()
        # Bulk extraction (eval, index build) reports its speed; single photos (locate) do not.
        level = logging.INFO if len(dataset) >= max(2, options.batch_size) else logging.DEBUG
        log.log(level, "described %s: %s", "queries" if queries else "images", last_extraction())
        return out

    def _export_runner(self, options: ExtractionOptions) -> Any:
        """The engine over the deferred model's cached export, when it serves ``options``.

        That is the CPU path of ONNX Runtime: fp32 (``precision="auto"`` on a CPU without
        native bf16, or ``"fp32"`` with ``engine="onnxruntime"``) and int8 (quantised from
        that export by :func:`vgloc.models.extract_descriptors`); anything else (torch, bf16,
        a GPU) builds the model. None when the model is built or cannot be skipped.
        """
        if self._model is not None or self._deferred is None:
            return None
        from vgloc.models.extract import cpu_has_fast_bf16

        on_cpu = str(options.device) == "cpu"
        fp32_engine = (options.precision == "auto" and options.engine in ("auto", "onnxruntime")) or (
            options.precision == "fp32" and options.engine == "onnxruntime"
        )
        int8_engine = options.precision == "int8" and options.engine in ("auto", "onnxruntime")
        if not (on_cpu and ((fp32_engine and not cpu_has_fast_bf16()) or int8_engine)):
            return None
        if self._export_engine is None:
            from vgloc.models.engines import OnnxRuntimeEngine

            try:
                self._export_engine = OnnxRuntimeEngine.from_graph(self._deferred.export, "fp32", None)
            except Exception as exc:  # (evicted or damaged since it was found: build the model)
                log.warning(
                    "cached export %s unusable, building the model: %s", self._deferred.export.name, exc
                )
                return None
        return self._export_engine

    def _remember_export(self) -> None:
        """After an extraction with the built model: record its export for the checkpoint file."""
        if self.checkpoint_key is None or self._model is None or self.published is not None:
            return  # (published models keep their own preprocessing: always built)
        if self.data_initialized or self._export_recorded:
            return  # (its weights are no longer the file's; or done already)
        from vgloc.models.checkpoint_exports import remember_checkpoint_export

        aggregator = getattr(self._model, "aggregator", None)
        needs_init = bool(getattr(aggregator, "requires_data_init", False)) and not bool(
            getattr(aggregator, "initialized", True)
        )
        self._export_recorded = remember_checkpoint_export(
            self.checkpoint_key, self._model, spec=self.spec, needs_data_init=needs_init
        )

    def prepare(self, database: Sequence[Path], options: ExtractionOptions, seed: int = 0) -> bool:
        """Initialise NetVLAD clusters from the database when no checkpoint supplied them.

        An untrained NetVLAD has no meaningful clusters; the VG benchmark initialises
        them by k-means on local features of training images (PROTOCOLS.md 1.3).
        """
        if self._model is None and self._deferred is not None and not self._deferred.needs_data_init:
            return False  # (known without building the model)
        aggregator = getattr(self.model, "aggregator", None)
        if not (
            getattr(aggregator, "requires_data_init", False) and not getattr(aggregator, "initialized", True)
        ):
            return False
        from vgloc.data import ImageDataset, build_transform
        from vgloc.models import initialize_netvlad

        options = self.resolve_options(options)
        assert options.image_size != "auto"  # (resolved above; narrows the type)
        log.info("initialising %s clusters from %d images", self.spec, len(database))
        dataset = ImageDataset(list(database), build_transform(options.image_size))
        initialize_netvlad(
            self.model,  # type: ignore[arg-type]
            dataset,
            batch_size=options.batch_size if options.image_size is not None else 1,
            device=options.device,
            seed=seed,
        )
        self.data_initialized = True
        return True

    def _preprocessing_state(self) -> dict[str, Any]:
        pre = self.preprocessing
        return {
            "image_size": None if pre.image_size is None else list(pre.image_size),
            "mean": list(pre.mean),
            "std": list(pre.std),
            "multiple_of": pre.multiple_of,
        }

    def index_state(self) -> IndexState:
        # The normalisation (and the published model's own size) travel with the index, so
        # locate and eval with --index describe queries exactly as the database was.
        common: dict[str, Any] = {"preprocessing": self._preprocessing_state()}
        if self.published is not None:
            common["published"] = self.published.name
        if self.checkpoint is not None and not self.data_initialized:
            return IndexState(
                {
                    "kind": self.kind,
                    "checkpoint": str(self.checkpoint.resolve()),
                    "checkpoint_sha256": sha256_file(self.checkpoint),
                    "pretrained": self.pretrained,
                    **common,
                },
                {},
            )
        # Random or data-initialised weights cannot be rebuilt from the spec alone:
        # keep them with the index so that locate describes queries with the same network.
        from vgloc.models import save_model

        model = self.model
        return IndexState(
            {"kind": self.kind, "model_file": MODEL_FILE_IN_INDEX, "pretrained": self.pretrained, **common},
            {MODEL_FILE_IN_INDEX: lambda path: save_model(model, path)},  # type: ignore[arg-type]
        )
