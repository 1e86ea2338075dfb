"""Multi-scale testing: describe each image at several sizes and fuse the descriptors.

:class:`MultiScaleDescriber` wraps any describer that resizes images to
``ExtractionOptions.image_size`` (every network): for each scale ``s`` it describes the
images at ``(round(H*s), round(W*s))`` of the resolved image size ``(H, W)`` (with
``image_size=None``, each image's own size times ``s``), rounded to the multiple the
network needs (14 for DINOv2), fuses the ``S`` descriptors of every image element-wise
(:class:`ScaleFusion`: ``avg``, ``sum``, ``max`` or ``min``, one scale at a time), then
L2-normalises the result again, as the :class:`~vgloc.describers.Describer` contract
requires.

The method and its four fusions follow the multi-scale test of the VG studies built on
CosPlace (``--multi_scale --select_resolutions 0.526 0.588 1 1.7 1.9
--multi_scale_method avg|sum|max|min``; read in CarachinoAlessio/VisualGeolocalization,
``parser.py`` and ``test.py``). That code fused the networks' already
L2-normalised outputs and searched the fused vectors *without* normalising them again,
for the database only, and fed the network an image resized to ``H/s x W/s`` and back
to ``H x W`` (a resampling, not a change of input resolution); vgloc's differences are
listed in ``docs/multiscale.md``. After renormalisation ``sum`` and ``avg`` give the
same descriptors (they differ by the factor ``S``); both are offered, as the study did.

An index records the scales and the fusion (:meth:`MultiScaleDescriber.index_state`),
so ``locate`` and ``eval --index`` describe queries the same way; :func:`apply_scales`
is the one place that turns ``ExtractionOptions.scales`` into a wrapper and refuses
scales that differ from an index's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vgloc.config.scales import DEFAULT_FUSION, FUSIONS, check_fusion, check_scales
from vgloc.describers.base import Describer, ExtractionOptions, ImageSize, IndexState

if TYPE_CHECKING:
    from vgloc.data.images import ImageInput
    from vgloc.index import GeoIndex

__all__ = [
    "DEFAULT_FUSION",
    "FUSIONS",
    "MIN_SCALED_SIDE",
    "MultiScaleDescriber",
    "ScaleFusion",
    "apply_scales",
    "check_fusion",
    "check_scales",
    "fuse_descriptors",
    "recorded_scales",
    "scale_settings",
    "scaled_size",
]

#: Sides below this many pixels are refused (the smallest ``--image-size`` too).
MIN_SCALED_SIDE = 16
SINGLE_SCALE: tuple[float, ...] = (1.0,)


class ScaleFusion:
    """Element-wise fusion of descriptors added one scale at a time (``O(N*D)`` memory).

    Args:
        fusion: ``avg`` (mean over scales), ``sum``, ``max`` or ``min``.

    Example:
        >>> fuser = ScaleFusion("max")
        >>> for d in per_scale: fuser.add(d)  # doctest: +SKIP
        >>> fused = fuser.result()  # doctest: +SKIP
    """

    def __init__(self, fusion: str) -> None:
        self.fusion = check_fusion(fusion)
        self.count = 0
        self._acc: np.ndarray | None = None

    def add(self, descriptors: np.ndarray) -> None:
        """Fold in one scale's ``(N, D)`` descriptors."""
        x = np.asarray(descriptors, dtype=np.float32)
        if self._acc is None:
            self._acc = x.copy()
        elif x.shape != self._acc.shape:
            raise ValueError(f"scale {self.count + 1} gave shape {x.shape}, the first gave {self._acc.shape}")
        elif self.fusion in ("avg", "sum"):
            self._acc += x
        elif self.fusion == "max":
            np.maximum(self._acc, x, out=self._acc)
        else:
            np.minimum(self._acc, x, out=self._acc)
        self.count += 1

    def result(self) -> np.ndarray:
        """``(N, D)`` float32, each row of unit L2 norm (a row that fuses to exactly zero
        stays zero rather than becoming NaN). One scale is returned as is: describers'
        rows are unit norm already, and normalising again would change the last bits, so
        a single scale 1 stays identical to the plain describer."""
        if self._acc is None:
            raise ValueError("no scale was added")
        if self.count == 1:
            return self._acc
        fused = self._acc / self.count if self.fusion == "avg" else self._acc
        norms = np.linalg.norm(fused, axis=1, keepdims=True)
        return np.asarray(fused / np.maximum(norms, np.finfo(np.float32).tiny), dtype=np.float32)


def fuse_descriptors(per_scale: np.ndarray, fusion: str) -> np.ndarray:
    """Fuse the descriptors of ``S`` scales element-wise and L2-normalise the result.

    Args:
        per_scale: ``(S, N, D)``: the descriptors of N images at each of S scales.
        fusion: ``avg`` (mean over scales), ``sum``, ``max`` or ``min``.

    Returns:
        ``(N, D)`` float32 with unit rows (see :meth:`ScaleFusion.result`).
    """
    stack = np.asarray(per_scale, dtype=np.float32)
    if stack.ndim != 3 or stack.shape[0] < 1:
        raise ValueError(f"expected (S, N, D) descriptors with S >= 1, got shape {stack.shape}")
    fuser = ScaleFusion(fusion)
    for descriptors in stack:
        fuser.add(descriptors)
    return fuser.result()


def scaled_size(size: tuple[int, int], scale: float, multiple: int = 1) -> tuple[int, int]:
    """``(round(H*s), round(W*s))``, each side rounded to the nearest multiple of ``multiple``.

    Raises:
        ValueError: a side below :data:`MIN_SCALED_SIDE` pixels.
    """
    k = max(1, int(multiple))
    h, w = (max(k, k * round(side * scale / k)) for side in size)
    if min(h, w) < MIN_SCALED_SIDE:
        raise ValueError(
            f"scale {scale:g} of {size[0]}x{size[1]} gives {h}x{w}, below {MIN_SCALED_SIDE} px: "
            "use a larger scale or image size"
        )
    return h, w


def _size_multiple(describer: Describer) -> int:
    """The multiple the describer's input sides must be (14 for DINOv2): its preprocessing's,
    or its backbone's for a network built from a spec (whose preprocessing says 1)."""
    from vgloc.training.adapt import size_multiple

    preprocessing = getattr(describer, "preprocessing", None)
    return max(1, int(getattr(preprocessing, "multiple_of", 1) or 1), size_multiple(describer.spec))


class MultiScaleDescriber(Describer):
    """Any size-following describer, applied at several scales and fused.

    Args:
        inner: the describer to apply at each scale (unchanged; its ``describe`` is
            called once per scale with ``image_size`` set to the scaled size).
        scales: the factors applied to the resolved image size, e.g. ``(0.5, 1, 1.5)``.
        fusion: ``avg``, ``sum``, ``max`` or ``min`` (:func:`fuse_descriptors`).

    The spec and the dimension are the inner describer's, so an index built at several
    scales still names its network; the scales travel in the index's describer state.

    Raises:
        ValueError: bad scales or fusion, or an inner describer that does not describe
            at ``ExtractionOptions.image_size`` (the classical RootSIFT-VLAD works at its
            own resolution, so scaling the requested size would change nothing).
    """

    kind = "multiscale"

    def __init__(self, inner: Describer, scales: Sequence[float], fusion: str = DEFAULT_FUSION) -> None:
        if isinstance(inner, MultiScaleDescriber):
            raise ValueError("this describer is already multi-scale; wrap its inner describer instead")
        if not getattr(inner, "follows_image_size", True):
            raise ValueError(
                f"multi-scale testing resizes the images a describer sees, but {inner.spec} "
                "describes every image at its own working resolution (it ignores --image-size); "
                "--scales applies to networks only"
            )
        self.inner = inner
        self.scales = check_scales(scales)
        self.fusion = check_fusion(fusion)

    # The size "auto" stands for is the inner describer's (an index sets it on the wrapper).
    @property
    def default_image_size(self) -> ImageSize:
        return self.inner.default_image_size

    @default_image_size.setter
    def default_image_size(self, size: ImageSize) -> None:
        self.inner.default_image_size = size

    @property
    def spec(self) -> str:
        return self.inner.spec

    @property
    def descriptor_dim(self) -> int:
        return self.inner.descriptor_dim

    def __repr__(self) -> str:
        scales = ",".join(f"{s:g}" for s in self.scales)
        return f"MultiScaleDescriber({self.inner!r}, scales={scales}, fusion={self.fusion})"

    # -- construction ---------------------------------------------------------------
    @classmethod
    def claims(cls, spec: str) -> bool:
        """No spec names a multi-scale describer: scales come from options or an index."""
        del spec
        return False

    @classmethod
    def from_spec(
        cls, spec: str, checkpoint: str | Path | None = None, *, pretrained: bool = False
    ) -> MultiScaleDescriber:
        """Not built from a spec (see :func:`apply_scales`)."""
        raise ValueError(f"{spec}: a multi-scale describer is built from a describer and scales")

    @classmethod
    def load_from_index(cls, index_dir: Path | None, state: dict[str, Any], spec: str) -> MultiScaleDescriber:
        """Rebuild the inner describer from its recorded state, then wrap it at the recorded scales."""
        from vgloc.registry import DESCRIBERS

        inner_kind = state.get("inner_kind")
        if not inner_kind:
            raise ValueError("the index's multi-scale describer does not record its inner kind; rebuild it")
        inner_state = {k: v for k, v in state.items() if k not in ("inner_kind", "scales", "scale_fusion")}
        inner_state["kind"] = inner_kind
        inner = DESCRIBERS.get(inner_kind).load_from_index(index_dir, inner_state, spec)
        return cls(inner, state["scales"], state.get("scale_fusion", DEFAULT_FUSION))

    # -- the contract -----------------------------------------------------------------
    def resolve_options(self, options: ExtractionOptions) -> ExtractionOptions:
        """The inner describer's resolution, with this describer's scales, every scaled size
        checked (sides >= 16 px) before any image is read."""
        self._check_options_scales(options)
        resolved = self.inner.resolve_options(dataclasses.replace(options, scales=None, scale_fusion=None))
        if isinstance(resolved.image_size, tuple):
            for s in self.scales:
                scaled_size(resolved.image_size, s, _size_multiple(self.inner))
        return dataclasses.replace(resolved, scales=self.scales, scale_fusion=self.fusion)

    def describe(
        self, images: Sequence[ImageInput], options: ExtractionOptions, *, queries: bool = False
    ) -> np.ndarray:
        """``(N, D)`` fused descriptors: the inner describer once per scale (and, at native
        size, once per distinct image size), fused and L2-normalised."""
        options = self.resolve_options(options)
        items = list(images)
        if not items:
            return np.zeros((0, self.descriptor_dim), dtype=np.float32)
        base = dataclasses.replace(options, scales=None, scale_fusion=None)
        multiple = _size_multiple(self.inner)
        if isinstance(options.image_size, tuple):
            groups = {options.image_size: list(range(len(items)))}
        else:
            groups = _group_by_size(items)
        # One scale at a time into a running fusion: memory stays 2 x (N, D) for any S.
        fuser = ScaleFusion(self.fusion)
        for scale in self.scales:
            at_scale = np.empty((len(items), self.descriptor_dim), dtype=np.float32)
            for size, rows in groups.items():
                step = dataclasses.replace(base, image_size=scaled_size(size, scale, multiple))
                at_scale[rows] = self.inner.describe([items[r] for r in rows], step, queries=queries)
            fuser.add(at_scale)
        return fuser.result()

    def prepare(self, database: Sequence[Path], options: ExtractionOptions, seed: int = 0) -> bool:
        """The inner describer's data-dependent fitting (at the base image size)."""
        return self.inner.prepare(
            database, dataclasses.replace(options, scales=None, scale_fusion=None), seed
        )

    def index_state(self) -> IndexState:
        # Flat: the inner describer's keys stay where readers of its state (add_to_index's
        # checkpoint check, older tools) look for them; the kind says how to rebuild it.
        inner = self.inner.index_state()
        metadata = {
            **inner.metadata,
            "kind": self.kind,
            "inner_kind": self.inner.kind,
            "scales": list(self.scales),
            "scale_fusion": self.fusion,
        }
        return IndexState(metadata, inner.files)

    def close(self) -> None:
        self.inner.close()

    def _check_options_scales(self, options: ExtractionOptions) -> None:
        if options.scales is None and options.scale_fusion is None:
            return
        given = _normalised(options.scales or SINGLE_SCALE, options.scale_fusion or DEFAULT_FUSION)
        if given != _normalised(self.scales, self.fusion):
            raise ValueError(
                f"options ask for {_scales_text(*given)}, but this describer uses "
                f"{_scales_text(self.scales, self.fusion)}"
            )


def _group_by_size(items: list[Any]) -> dict[tuple[int, int], list[int]]:
    """Row indices of ``items`` grouped by each image's own (H, W) (file headers, no decoding)."""
    from vgloc.data.images import describe_input, image_size

    groups: dict[tuple[int, int], list[int]] = {}
    for row, item in enumerate(items):
        groups.setdefault(image_size(item, name=describe_input(item, row)), []).append(row)
    return groups


def _normalised(scales: Sequence[float], fusion: str | None) -> tuple[tuple[float, ...], str]:
    """Scales and fusion compared as equal when they describe the same way (one scale: any fusion)."""
    values = check_scales(scales)
    return values, DEFAULT_FUSION if len(values) == 1 else check_fusion(fusion or DEFAULT_FUSION)


def _scales_text(scales: Sequence[float], fusion: str) -> str:
    text = ",".join(f"{s:g}" for s in scales)
    return f"scale {text}" if len(scales) == 1 else f"scales {text} fused by {fusion}"


def recorded_scales(extra: dict[str, Any]) -> tuple[tuple[float, ...], str]:
    """The scales and fusion an index's metadata ``extra`` records ((1,), avg: single scale)."""
    state = extra.get("describer")
    if isinstance(state, dict) and state.get("kind") == MultiScaleDescriber.kind:
        return check_scales(state["scales"]), check_fusion(state.get("scale_fusion", DEFAULT_FUSION))
    return SINGLE_SCALE, DEFAULT_FUSION


def apply_scales(
    describer: Describer, options: ExtractionOptions, index: GeoIndex | None = None
) -> Describer:
    """The describer that describes at the scales ``options`` (or ``index``) asks for.

    Args:
        describer: a resolved describer (a plain one, or already a
            :class:`MultiScaleDescriber`).
        options: ``options.scales`` / ``options.scale_fusion``: None = as recorded (the
            index's scales, else the describer's own, else single scale).
        index: the index queries are searched in: its recorded scales win, and scales
            given explicitly that differ from them are refused (a database described at
            other scales would be compared with queries described differently).

    Returns:
        ``describer`` itself when it already describes that way, else a wrapper (a
        multi-scale describer's inner one when a single scale 1 is asked for).

    Raises:
        ValueError: bad scales or fusion; a fusion without scales; scales that differ
            from the index's; an inner describer that ignores the image size.
    """
    if options.scales is None and options.scale_fusion is not None and index is None:
        raise ValueError("a scale fusion was given without scales: give scales too (e.g. --scales 0.5,1,1.5)")
    single = _normalised(SINGLE_SCALE, None)
    inner = describer.inner if isinstance(describer, MultiScaleDescriber) else describer
    own = (
        _normalised(describer.scales, describer.fusion)
        if isinstance(describer, MultiScaleDescriber)
        else None
    )
    recorded = None if index is None else _normalised(*recorded_scales(index.metadata.extra))
    given = None
    if options.scales is not None or options.scale_fusion is not None:
        scales = options.scales if options.scales is not None else (recorded or single)[0]
        given = _normalised(scales, options.scale_fusion)
    # What the describer must do: the index's scales, else those asked for, else its own.
    want = recorded or given or own or single
    for asked, whose in ((given, "were asked for"), (own, "are the describer's")):
        if asked is not None and asked != want:
            if recorded is not None:
                raise ValueError(
                    f"the index was described at {_scales_text(*want)}, but {_scales_text(*asked)} "
                    f"{whose}: leave the scales out to use the index's, or rebuild the index with them"
                )
            raise ValueError(f"the options ask for {_scales_text(*want)}, but {_scales_text(*asked)} {whose}")
    if want == (own or single):
        return describer
    if want == single and isinstance(describer, MultiScaleDescriber):
        return inner
    return MultiScaleDescriber(inner, *want)


def scale_settings(describer: Describer) -> dict[str, Any]:
    """``{"scales": [...], "scale_fusion": ...}`` for a run's recorded settings (None: single scale)."""
    if isinstance(describer, MultiScaleDescriber):
        return {"scales": list(describer.scales), "scale_fusion": describer.fusion}
    return {"scales": list(SINGLE_SCALE), "scale_fusion": None}
