"""Weight-free classical global descriptors, usable wherever a model spec is.

``rootsift+vlad64`` is dense RootSIFT aggregated with VLAD over a 64-word
vocabulary (see :mod:`vgloc.local.vlad`); ``rootsift+vlad64+pca256`` adds
PCA whitening to 256 dimensions. The vocabulary (and PCA) is fitted on the
database the first time an index is built, and stored inside the index, exactly
like the random or data-initialised weights of a CNN.

This is the option for machines with no pretrained weights: on real photos it
beats a randomly initialised CNN by a wide margin (BENCHMARKS.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CLASSICAL_FEATURES = ("rootsift",)
_SPEC = re.compile(r"^(?P<feat>rootsift)\+vlad(?P<k>\d+)(?:\+pca(?P<pca>\d+))?$")
MODEL_FILE_SUFFIX = ".npz"


def is_classical_spec(spec: str) -> bool:
    """Whether ``spec`` names a classical (weight-free) descriptor, e.g. ``rootsift+vlad64``."""
    return spec.strip().lower().split("+", 1)[0] in CLASSICAL_FEATURES


@dataclass(frozen=True)
class ClassicalSpec:
    """The parsed form of ``rootsift+vlad<K>[+pca<D>]``."""

    num_clusters: int = 64
    pca_dim: int | None = None

    @classmethod
    def parse(cls, spec: str) -> ClassicalSpec:
        m = _SPEC.match(spec.strip().lower())
        if m is None:
            raise ValueError(
                f"bad classical descriptor spec {spec!r}: expected rootsift+vlad<K>[+pca<D>], "
                "e.g. rootsift+vlad64 or rootsift+vlad64+pca256"
            )
        k = int(m["k"])
        pca = int(m["pca"]) if m["pca"] else None
        if k < 2 or (pca is not None and pca < 1):
            raise ValueError(f"bad classical descriptor spec {spec!r}: K must be >= 2 and PCA dim >= 1")
        return cls(num_clusters=k, pca_dim=pca)

    def __str__(self) -> str:
        return f"rootsift+vlad{self.num_clusters}" + (f"+pca{self.pca_dim}" if self.pca_dim else "")


class ClassicalDescriber:
    """A classical descriptor behind the interface the API expects of a model.

    Attributes:
        spec: canonical spec string.
        descriptor_dim: output dimension (K x 128, or the PCA dimension).
        requires_fit: True until :meth:`fit` or :meth:`load` provided a vocabulary.
    """

    def __init__(self, spec: str | ClassicalSpec, seed: int = 0) -> None:
        from vgloc.local.vlad import ClassicalVLAD

        self._spec = spec if isinstance(spec, ClassicalSpec) else ClassicalSpec.parse(spec)
        self.vlad = ClassicalVLAD(num_clusters=self._spec.num_clusters, pca_dim=self._spec.pca_dim, seed=seed)

    @property
    def spec(self) -> str:
        return str(self._spec)

    @property
    def descriptor_dim(self) -> int:
        return self._spec.pca_dim or self._spec.num_clusters * 128

    @property
    def requires_fit(self) -> bool:
        return not self.vlad.is_fitted

    def eval(self) -> ClassicalDescriber:
        """No-op, so the API can treat this like a torch model."""
        return self

    def fit(self, paths: Sequence[str | Path], progress: bool = False) -> ClassicalDescriber:
        """Learn the vocabulary (and PCA) from ``paths`` (normally the database)."""
        self.vlad.fit(list(paths), progress=progress)
        return self

    def describe(self, paths: Sequence[str | Path], progress: bool = False) -> np.ndarray:
        """(N, D) float32 L2-normalised descriptors of the images at ``paths``."""
        return self.vlad.describe(list(paths), progress=progress)

    def save(self, path: str | Path) -> Path:
        """Write the fitted vocabulary atomically (npz, no pickle)."""
        return self.vlad.save(path)

    @classmethod
    def load(cls, path: str | Path) -> ClassicalDescriber:
        """Read a describer written by :meth:`save`."""
        from vgloc.local.vlad import ClassicalVLAD

        vlad = ClassicalVLAD.load(path)
        out = cls(ClassicalSpec(num_clusters=vlad.num_clusters, pca_dim=vlad.pca_dim), seed=vlad.seed)
        out.vlad = vlad
        return out

    def __repr__(self) -> str:
        return f"ClassicalDescriber({self.spec!r}, fitted={not self.requires_fit})"


def classical_rows() -> list[dict[str, Any]]:
    """Rows for ``vgloc models`` describing the classical descriptors."""
    return [
        {
            "kind": "classical",
            "name": "rootsift+vlad<K>[+pca<D>]",
            "dim": "K*128 (or D)",
            "description": "dense RootSIFT + VLAD, vocabulary fitted on the database; no weights needed",
        }
    ]
