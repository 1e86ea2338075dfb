"""A weight-free global descriptor: RootSIFT aggregated with VLAD.

The classical pipeline before learned descriptors (Jégou et al. 2010; Arandjelović
& Zisserman 2012/2013), useful as a baseline that needs no download:

1. Local descriptors: RootSIFT on a dense grid (``dense=True``: every ``step`` px,
   upright, ``bin_size`` px per spatial bin so one descriptor covers 4 x ``bin_size``
   px, as VLFeat's dense SIFT) or at SIFT keypoints.
2. A vocabulary of ``num_clusters`` centroids by k-means (``faiss.Kmeans``) on
   descriptors sampled from the fitting images (the database).
3. VLAD: per cluster, the sum of residuals (descriptor − centroid) of the
   descriptors assigned to it (hard assignment), giving ``num_clusters × 128`` values.
4. Normalisation: intra-normalisation (L2 per cluster, Arandjelović 2013), power
   normalisation (signed square root, Jégou 2012), then a final L2.
5. Optional PCA whitening to ``pca_dim`` (fitted on the fitting images' VLADs with
   scikit-learn), then L2 again.

Descriptors are L2-normalised float32, so the similarity is the inner product, as
everywhere in vgloc.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vgloc.io import atomic_path
from vgloc.local.features import RootSIFTExtractor, root_sift
from vgloc.local.image import Resize, check_resize, load_rgb, resize_image

__all__ = ["ClassicalVLAD", "vlad"]

_FORMAT = "vgloc-classical-vlad"
_VERSION = 1
_EPS = 1e-12


def _l2(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=axis, keepdims=True) + _EPS)


def vlad(descriptors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """VLAD of one image: residual sums per cluster, intra-normalised, power-normalised, L2.

    Args:
        descriptors: Shape (N, D) local descriptors.
        centroids: Shape (K, D) vocabulary.

    Returns:
        Shape (K * D,) float32 unit vector (zeros when N = 0).
    """
    x = np.asarray(descriptors, np.float32)
    c = np.asarray(centroids, np.float32)
    k, d = c.shape
    if len(x) == 0:
        return np.zeros(k * d, np.float32)
    # Nearest centroid by ||x||² − 2 x·c + ||c||² (||x||² is constant per row).
    assign = np.argmin((c * c).sum(1)[None, :] - 2.0 * (x @ c.T), axis=1)
    v = np.zeros((k, d), np.float64)
    np.add.at(v, assign, x - c[assign])
    v = _l2(v, axis=1)  # intra-normalisation: no cluster dominates by burstiness
    v = np.sign(v) * np.sqrt(np.abs(v))  # power normalisation
    return _l2(v.reshape(-1)).astype(np.float32)


class ClassicalVLAD:
    """RootSIFT + VLAD global descriptor, fitted on a set of images (no learned weights).

    Args:
        num_clusters: vocabulary size K (descriptor dimension K × 128 before PCA).
        dense: RootSIFT on a dense grid (True) or at SIFT keypoints (False).
        step: grid step in working-frame pixels (dense).
        bin_size: pixels per SIFT spatial bin (dense); a descriptor spans 4 bins.
        resize: working resolution rule (default: longer side at most 640).
        max_keypoints: keypoint budget when ``dense=False``.
        pca_dim: whiten with PCA to this dimension (at most the number of fitting
            images); None keeps the full VLAD.
        descriptors_per_image: local descriptors sampled per image for k-means.
        kmeans_iters: k-means iterations.
        seed: seed of the descriptor sampling and of k-means.

    Example:
        >>> model = ClassicalVLAD(num_clusters=64).fit(database_paths)
        >>> db = model.describe(database_paths); q = model.describe(query_paths)
        >>> ranking = np.argsort(-(q @ db.T), axis=1)
    """

    def __init__(
        self,
        num_clusters: int = 64,
        dense: bool = True,
        step: int = 8,
        bin_size: int = 8,
        resize: Resize = 640,
        max_keypoints: int = 2048,
        pca_dim: int | None = None,
        descriptors_per_image: int = 2000,
        kmeans_iters: int = 25,
        seed: int = 0,
    ) -> None:
        for name, value in (
            ("num_clusters", num_clusters),
            ("step", step),
            ("bin_size", bin_size),
            ("max_keypoints", max_keypoints),
            ("descriptors_per_image", descriptors_per_image),
            ("kmeans_iters", kmeans_iters),
        ):
            if isinstance(value, bool) or int(value) < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if pca_dim is not None and int(pca_dim) < 1:
            raise ValueError(f"pca_dim must be a positive int or None, got {pca_dim!r}")
        self.num_clusters = int(num_clusters)
        self.dense = bool(dense)
        self.step = int(step)
        self.bin_size = int(bin_size)
        self.resize = check_resize(resize)
        self.max_keypoints = int(max_keypoints)
        self.pca_dim = None if pca_dim is None else int(pca_dim)
        self.descriptors_per_image = int(descriptors_per_image)
        self.kmeans_iters = int(kmeans_iters)
        self.seed = int(seed)
        self.centroids: np.ndarray | None = None
        self.pca_mean: np.ndarray | None = None
        self.pca_projection: np.ndarray | None = None  # (pca_dim, K*128), whitening folded in

    # -- configuration ----------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-serialisable)."""
        return {
            "num_clusters": self.num_clusters,
            "dense": self.dense,
            "step": self.step,
            "bin_size": self.bin_size,
            "resize": list(self.resize) if isinstance(self.resize, tuple) else self.resize,
            "max_keypoints": self.max_keypoints,
            "pca_dim": self.pca_dim,
            "descriptors_per_image": self.descriptors_per_image,
            "kmeans_iters": self.kmeans_iters,
            "seed": self.seed,
        }

    @property
    def dim(self) -> int:
        """Output descriptor dimension."""
        return self.pca_dim if self.pca_dim is not None else self.num_clusters * 128

    @property
    def is_fitted(self) -> bool:
        return self.centroids is not None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"ClassicalVLAD({args})"

    # -- local descriptors ------------------------------------------------------------
    def local_descriptors(self, image: np.ndarray) -> np.ndarray:
        """RootSIFT descriptors of an RGB image (dense grid or keypoints).

        Args:
            image: (H, W, 3) uint8 RGB.

        Returns:
            Shape (N, 128) float32.
        """
        if not self.dense:
            return RootSIFTExtractor(max_keypoints=self.max_keypoints, resize=self.resize)(image).descriptors
        import cv2

        work, _ = resize_image(image, self.resize)
        grey = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY)
        h, w = grey.shape
        # The descriptor window is 4 bins wide; centres keep it inside the image.
        half = 2.0 * self.bin_size
        xs = np.arange(half, w - half + 1e-6, self.step)
        ys = np.arange(half, h - half + 1e-6, self.step)
        if len(xs) == 0 or len(ys) == 0:
            return np.zeros((0, 128), np.float32)
        # OpenCV's calcSIFTDescriptor makes a bin 3 x (size / 2) = 1.5 x size pixels wide,
        # so size = bin_size / 1.5 gives bins of bin_size pixels.
        size = self.bin_size / 1.5
        # angle=0: upright descriptors (street photos are upright; rotation invariance
        # would only discard information). OpenCV reads angle -1 as ~1 degree.
        kps = [cv2.KeyPoint(float(x), float(y), size, 0.0) for y in ys for x in xs]
        _, desc = cv2.SIFT.create().compute(grey, kps)
        if desc is None:
            return np.zeros((0, 128), np.float32)
        return root_sift(desc)

    def _path_descriptors(self, path: str | os.PathLike[str]) -> np.ndarray:
        return self.local_descriptors(load_rgb(path))

    # -- fitting -------------------------------------------------------------------------
    def fit(self, paths: Sequence[str | os.PathLike[str]], *, progress: bool = False) -> ClassicalVLAD:
        """Learn the vocabulary (and the PCA whitening) from images, e.g. the database.

        Args:
            paths: the fitting images.
            progress: show progress bars.

        Returns:
            ``self``.

        Raises:
            ValueError: too few images or descriptors for the vocabulary or the PCA.
        """
        import faiss
        from tqdm import tqdm

        paths = list(paths)
        if not paths:
            raise ValueError("ClassicalVLAD.fit needs at least one image")
        if self.pca_dim is not None and self.pca_dim > len(paths):
            raise ValueError(
                f"pca_dim={self.pca_dim} needs at least {self.pca_dim} fitting images, got {len(paths)}"
            )
        rng = np.random.default_rng(self.seed)
        samples, per_image = [], []
        for p in tqdm(paths, desc="VLAD local descriptors", disable=not progress):
            d = self._path_descriptors(p)
            per_image.append(d)
            if len(d) > self.descriptors_per_image:
                d = d[rng.choice(len(d), self.descriptors_per_image, replace=False)]
            samples.append(d)
        train = np.ascontiguousarray(np.concatenate(samples).astype(np.float32))
        if len(train) < self.num_clusters:
            raise ValueError(
                f"{len(train)} local descriptors from {len(paths)} images are too few for {self.num_clusters} clusters"
            )
        km = faiss.Kmeans(
            train.shape[1], self.num_clusters, niter=self.kmeans_iters, seed=self.seed, verbose=False
        )
        # faiss subsamples to 256 points per centroid by default; the sample is already bounded.
        km.cp.max_points_per_centroid = max(256, len(train) // self.num_clusters + 1)
        km.train(train)
        self.centroids = np.asarray(km.centroids, np.float32).reshape(self.num_clusters, -1)
        self.pca_mean = self.pca_projection = None
        if self.pca_dim is not None:
            from sklearn.decomposition import PCA

            raw = np.stack([vlad(d, self.centroids) for d in per_image])
            pca = PCA(n_components=self.pca_dim, whiten=True, random_state=self.seed).fit(raw)
            # Whitening folded into the projection so describe() and load() need no sklearn:
            # y = (x - mean) @ components.T / sqrt(explained_variance).
            scale = 1.0 / np.sqrt(np.maximum(pca.explained_variance_, _EPS))
            self.pca_mean = pca.mean_.astype(np.float32)
            self.pca_projection = (pca.components_ * scale[:, None]).astype(np.float32)
        return self

    # -- describing ----------------------------------------------------------------------
    def _finish(self, v: np.ndarray) -> np.ndarray:
        if self.pca_projection is None:
            return v
        assert self.pca_mean is not None
        return _l2((v - self.pca_mean) @ self.pca_projection.T).astype(np.float32)

    def describe_image(self, image: np.ndarray) -> np.ndarray:
        """The descriptor of an in-memory RGB image.

        Returns:
            Shape (dim,) float32, unit L2 norm (zeros for an image without descriptors).
        """
        self._check_fitted()
        assert self.centroids is not None
        return self._finish(vlad(self.local_descriptors(image), self.centroids)[None])[0]

    def describe(self, paths: Sequence[str | os.PathLike[str]], *, progress: bool = False) -> np.ndarray:
        """Descriptors of image files.

        Args:
            paths: N images.
            progress: show a progress bar.

        Returns:
            Shape (N, dim) float32, rows of unit L2 norm.
        """
        from tqdm import tqdm

        self._check_fitted()
        assert self.centroids is not None
        paths = list(paths)
        out = np.zeros((len(paths), self.dim), np.float32)
        if not paths:
            return out
        raw = np.stack(
            [
                vlad(self._path_descriptors(p), self.centroids)
                for p in tqdm(paths, desc="VLAD", disable=not progress)
            ]
        )
        return self._finish(raw)

    def _check_fitted(self) -> None:
        if self.centroids is None:
            raise RuntimeError(
                "ClassicalVLAD is not fitted: call fit(database_paths) or ClassicalVLAD.load(path)"
            )

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted model to an ``.npz`` file atomically (arrays + JSON config; no pickle).

        Returns:
            The path written.
        """
        self._check_fitted()
        meta = {"format": _FORMAT, "version": _VERSION, "config": self.config()}
        arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(meta)), "centroids": self.centroids}  # type: ignore[dict-item]
        if self.pca_projection is not None:
            arrays["pca_mean"] = self.pca_mean  # type: ignore[assignment]
            arrays["pca_projection"] = self.pca_projection
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
            # A file object: given a path, numpy would append ".npz" to the temporary name.
            np.savez(fh, **arrays)  # type: ignore[arg-type]  # (mypy maps **arrays onto allow_pickle)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ClassicalVLAD:
        """Read a model written by :meth:`save`.

        Raises:
            FileNotFoundError: the file does not exist.
            ValueError: the file is not a vgloc classical VLAD model, or is inconsistent.
        """
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"classical VLAD model {p} does not exist")
        try:
            with np.load(p, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {k: np.asarray(data[k]) for k in data.files if k != "meta"}
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(
                f"{p} is not a readable classical VLAD model ({type(exc).__name__}: {exc})"
            ) from exc
        if meta.get("format") != _FORMAT or meta.get("version") != _VERSION:
            raise ValueError(
                f"{p} is not a vgloc classical VLAD model v{_VERSION} (found {meta.get('format')!r})"
            )
        cfg = dict(meta["config"])
        if isinstance(cfg.get("resize"), list):
            cfg["resize"] = tuple(cfg["resize"])
        model = cls(**cfg)
        centroids = arrays["centroids"].astype(np.float32)
        if centroids.shape != (model.num_clusters, 128):
            raise ValueError(
                f"{p}: centroids have shape {centroids.shape}, expected ({model.num_clusters}, 128)"
            )
        model.centroids = centroids
        if model.pca_dim is not None:
            if "pca_projection" not in arrays:
                raise ValueError(f"{p}: pca_dim={model.pca_dim} but no PCA arrays are stored")
            model.pca_mean = arrays["pca_mean"].astype(np.float32)
            model.pca_projection = arrays["pca_projection"].astype(np.float32)
        return model
