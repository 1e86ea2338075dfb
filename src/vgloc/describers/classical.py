"""The weight-free RootSIFT-VLAD descriptor as a :class:`Describer`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vgloc.describers.base import Describer, ExtractionOptions, IndexState

if TYPE_CHECKING:
    from vgloc.data.images import ImageInput
    from vgloc.models.classical import ClassicalDescriber as ClassicalVLADModel

__all__ = ["CLASSICAL_FILE_IN_INDEX", "ClassicalDescriber"]

log = logging.getLogger(__name__)

CLASSICAL_FILE_IN_INDEX = "model.npz"


class ClassicalDescriber(Describer):
    """Dense RootSIFT aggregated with VLAD (``rootsift+vlad<K>[+pca<D>]``).

    Its vocabulary (and PCA) is fitted on the database in :meth:`prepare` and stored
    inside the index, like the weights of a randomly initialised CNN.

    Args:
        model: the fitted or unfitted :class:`vgloc.models.classical.ClassicalDescriber`.
    """

    kind = "classical"
    # It works at its own resolution (longer side <= 640), whatever options.image_size says.
    follows_image_size = False

    def __init__(self, model: ClassicalVLADModel) -> None:
        self.model = model

    @classmethod
    def claims(cls, spec: str) -> bool:
        """Whether ``spec`` names a classical descriptor (``rootsift+...``)."""
        from vgloc.models.classical import is_classical_spec

        return is_classical_spec(spec)

    @classmethod
    def from_spec(
        cls, spec: str, checkpoint: str | Path | None = None, *, pretrained: bool = False
    ) -> ClassicalDescriber:
        """An unfitted describer for ``spec``, or the fitted one saved in ``checkpoint`` (npz)."""
        from vgloc.models.classical import ClassicalDescriber as Model

        if pretrained:
            raise ValueError(f"{spec} is a weight-free classical descriptor: --pretrained does not apply")
        if checkpoint is None:
            return cls(Model(spec))
        loaded = Model.load(checkpoint)
        if loaded.spec != Model(spec).spec:
            raise ValueError(f"{checkpoint} holds {loaded.spec}, but {spec} was asked for")
        return cls(loaded)

    @classmethod
    def load_from_index(cls, index_dir: Path | None, state: dict[str, Any], spec: str) -> ClassicalDescriber:
        """Read the vocabulary the index stored (see :meth:`index_state`)."""
        from vgloc.models.classical import ClassicalDescriber as Model

        if index_dir is None or not state.get("model_file"):
            raise ValueError(f"the index records no fitted vocabulary for {spec}; rebuild the index")
        return cls(Model.load(Path(index_dir) / state["model_file"]))

    @property
    def spec(self) -> str:
        return self.model.spec

    @property
    def descriptor_dim(self) -> int:
        return self.model.descriptor_dim

    def describe(
        self, images: Sequence[ImageInput], options: ExtractionOptions, *, queries: bool = False
    ) -> np.ndarray:
        from vgloc.data.images import describe_input, is_path_input, open_image_input

        if queries and (options.brightness, options.contrast, options.saturation) != (None, None, None):
            raise ValueError(
                "--test-brightness/--test-contrast/--test-saturation are not supported with classical descriptors"
            )
        items = list(images)
        if all(is_path_input(i) for i in items):
            return self.model.describe([Path(i) for i in items], progress=options.progress).astype(np.float32)  # type: ignore[arg-type]
        out = np.empty((len(items), self.descriptor_dim), dtype=np.float32)
        for row, item in enumerate(items):
            rgb = np.asarray(open_image_input(item, name=describe_input(item, row)), dtype=np.uint8)
            out[row] = self.model.vlad.describe_image(rgb)
        return out

    def prepare(self, database: Sequence[Path], options: ExtractionOptions, seed: int = 0) -> bool:
        if not self.model.requires_fit:
            return False
        log.info("fitting the %s vocabulary on %d images", self.spec, len(database))
        self.model.fit(list(database), progress=options.progress)
        return True

    def index_state(self) -> IndexState:
        model = self.model
        return IndexState(
            {"kind": self.kind, "model_file": CLASSICAL_FILE_IN_INDEX},
            {CLASSICAL_FILE_IN_INDEX: model.save},
        )
