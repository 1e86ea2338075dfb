"""Describers: anything that turns images into L2-normalised global descriptors.

The contract is :class:`Describer`; :func:`resolve_describer` goes from a spec (+
weights) to one, and :func:`describer_for_index` rebuilds the one an index recorded.
Each kind registers itself in :data:`vgloc.registry.DESCRIBERS`.
"""

from __future__ import annotations

from vgloc.describers.base import DEFAULT_IMAGE_SIZE, Describer, ExtractionOptions, ImageSize, IndexState
from vgloc.describers.classical import ClassicalDescriber
from vgloc.describers.multiscale import MultiScaleDescriber
from vgloc.describers.net import NetDescriber
from vgloc.describers.resolver import describer_for_index, describer_kind_for_spec, resolve_describer
from vgloc.registry import DESCRIBERS

DESCRIBERS.register(
    "classical",
    ClassicalDescriber,
    description="dense RootSIFT + VLAD (rootsift+vlad<K>[+pca<D>]), weight-free",
)
DESCRIBERS.register(
    "net",
    NetDescriber,
    fallback=True,
    description="a network from a spec string: backbone[.cut]+aggregator[+head]",
)

DESCRIBERS.register(
    "multiscale",
    MultiScaleDescriber,
    description="any network described at several image scales, fused by avg/sum/max/min (--scales)",
)

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "ClassicalDescriber",
    "Describer",
    "ExtractionOptions",
    "ImageSize",
    "IndexState",
    "MultiScaleDescriber",
    "NetDescriber",
    "describer_for_index",
    "describer_kind_for_spec",
    "resolve_describer",
]
