"""The public Python API: build an index, locate photos, evaluate on a benchmark.

The CLI (``vgloc.cli``) is a thin layer over these functions; everything a
command does can be done from Python with the same names and defaults.

Example:
    >>> import vgloc
    >>> index = vgloc.build_index("photos/", "resnet18+gem+fc512", out="city.idx")
    >>> [pred] = vgloc.locate(["query.jpg"], "city.idx")
    >>> pred.lat, pred.lon, pred.confidence
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vgloc.data.records import GeoImageSet
from vgloc.evaluation.recall import (
    DEFAULT_RECALL_VALUES,
    DEFAULT_THRESHOLD_M,
    count_without_positives,
    recall_at_n,
)
from vgloc.geo import positives_within
from vgloc.index.faiss_index import DEFAULT_SEARCH_PARAMS
from vgloc.io import write_json_atomic
from vgloc.predict import DEFAULT_KDE, KDEParams, Match, Prediction, predict_positions

if TYPE_CHECKING:
    from typing import TypeAlias

    from vgloc.index import GeoIndex
    from vgloc.models import GeoLocalizationModel
    from vgloc.models.classical import ClassicalDescriber
    from vgloc.rerank.cache import FeatureCache
    from vgloc.rerank.pipeline import SweepPoint

    # What turns images into descriptors: a torch network or a classical (weight-free) describer.
    Describer: TypeAlias = GeoLocalizationModel | ClassicalDescriber

log = logging.getLogger(__name__)

# The VG benchmark's test resolution (H, W) (PROTOCOLS.md 1.1: resize [480, 640]).
DEFAULT_IMAGE_SIZE: tuple[int, int] = (480, 640)
MODEL_FILE_IN_INDEX = "model.pt"
CLASSICAL_FILE_IN_INDEX = "model.npz"

ImageSize = tuple[int, int] | None


@dataclass
class ExtractionOptions:
    """How descriptors are computed (shared by index building, locating and evaluation).

    Attributes:
        image_size: (H, W) every image is resized to; None keeps each image's own size
            (then batches hold one image unless all images share a size).
        batch_size: images per forward pass.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        precision: ``"fp32"``, ``"bf16"`` (fast on CPUs with AVX-512 BF16 / AMX),
            ``"fp16"`` (CUDA), or ``"auto"`` (fp16 autocast on CUDA, fp32 on CPU).
        channels_last: NHWC memory format (faster convolutions with bf16 on CPU).
        num_workers: DataLoader worker processes for image decoding.
        brightness: scale query pixel values by this factor (the night-simulation trick);
            applied to queries only.
        progress: show progress bars.
    """

    image_size: ImageSize = DEFAULT_IMAGE_SIZE
    batch_size: int = 16
    device: str = "cpu"
    precision: str = "auto"
    channels_last: bool = False
    num_workers: int = 0
    brightness: float | None = None
    progress: bool = True


def _default_search_params(factory: str, search_params: str | None) -> str:
    """The search parameters stored with an index: the user's, else FAISS defaults that apply."""
    if search_params is not None:
        return search_params
    # An exact index has no search parameters; don't store ones that would only be ignored.
    return "" if factory.strip().lower() == "flat" else DEFAULT_SEARCH_PARAMS


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_model(
    model: str | Describer,
    checkpoint: str | Path | None = None,
    pretrained: bool = False,
) -> Describer:
    """Turn a spec string (plus optional checkpoint) into a model in eval mode.

    Args:
        model: a spec string such as ``"resnet18+gem+fc512"`` or a model object.
        checkpoint: a vgloc checkpoint (its stored spec must agree with ``model``) or an
            authors' state dict (CosPlace, VG benchmark) for the architecture ``model`` names.
        pretrained: load ImageNet weights for the backbone (needs network or a cached file).

    Returns:
        The model, in eval mode.
    """
    from vgloc.models import ModelSpec, create_model, load_model, load_state_dict_compat
    from vgloc.models.classical import ClassicalDescriber, is_classical_spec

    if isinstance(model, str) and is_classical_spec(model):
        if pretrained:
            raise ValueError(f"{model} is a weight-free classical descriptor: --pretrained does not apply")
        if checkpoint is not None:
            loaded_classical = ClassicalDescriber.load(checkpoint)
            if loaded_classical.spec != ClassicalDescriber(model).spec:
                raise ValueError(f"{checkpoint} holds {loaded_classical.spec}, but {model} was asked for")
            return loaded_classical
        return ClassicalDescriber(model)
    if isinstance(model, ClassicalDescriber):
        return model
    if not isinstance(model, str):
        if checkpoint is not None:
            load_state_dict_compat(model, checkpoint)
        return model.eval()
    if checkpoint is not None:
        ckpt = Path(checkpoint)
        if not ckpt.is_file():
            raise FileNotFoundError(f"checkpoint not found: {ckpt}")
        try:
            loaded = load_model(ckpt)
        except ValueError:
            # Not a vgloc checkpoint: an authors' state dict for the named architecture.
            net = create_model(model, pretrained=False)
            load_state_dict_compat(net, ckpt)
            return net.eval()
        if model and str(ModelSpec.parse(model)) != loaded.spec:
            raise ValueError(f"{ckpt} holds a {loaded.spec} model, but --model {model} was asked for")
        return loaded.eval()
    return create_model(model, pretrained=pretrained).eval()


def _as_image_set(images: str | Path | GeoImageSet, validate: bool) -> GeoImageSet:
    if isinstance(images, GeoImageSet):
        return images
    from vgloc.data import load_image_set

    return load_image_set(images, validate=validate)


def _needs_data_init(model: Any) -> bool:
    return bool(getattr(model.aggregator, "requires_data_init", False)) and not bool(
        getattr(model.aggregator, "initialized", True)
    )


def compute_descriptors(
    model: Describer,
    paths: Sequence[Path],
    options: ExtractionOptions,
    *,
    queries: bool = False,
    out_dtype: Any = np.float32,
) -> np.ndarray:
    """Descriptors of images on disk, in the order of ``paths``.

    Args:
        model: the descriptor network.
        paths: N image files.
        options: extraction options; ``options.brightness`` is applied only when ``queries``.
        queries: whether these are query images (for query-only transforms).
        out_dtype: numpy dtype of the result (float32 or float16).

    Returns:
        (N, D) L2-normalised descriptors.
    """
    from vgloc.data import ImageDataset, build_transform
    from vgloc.models import extract_descriptors
    from vgloc.models.classical import ClassicalDescriber

    if isinstance(model, ClassicalDescriber):
        if queries and options.brightness is not None:
            raise ValueError("--test-brightness is not supported with classical descriptors")
        return model.describe(paths, progress=options.progress).astype(out_dtype)
    transform = build_transform(options.image_size, brightness=options.brightness if queries else None)
    dataset = ImageDataset(list(paths), transform)
    batch_size = options.batch_size if options.image_size is not None else 1
    return extract_descriptors(
        model,
        dataset,
        batch_size=batch_size,
        device=options.device,
        precision=options.precision,
        channels_last=options.channels_last,
        num_workers=options.num_workers,
        progress=options.progress,
        out_dtype=out_dtype,
    )


def initialize_aggregator_if_needed(
    model: Describer, images: GeoImageSet, options: ExtractionOptions, seed: int = 0
) -> bool:
    """Initialise a data-dependent aggregator (NetVLAD clusters) from ``images``.

    An untrained NetVLAD has no meaningful clusters; the VG benchmark initialises
    them by k-means on local features of training images (PROTOCOLS.md 1.3). When
    no checkpoint supplied them, the database images serve that purpose.

    Classical descriptors (``rootsift+vlad64``) fit their vocabulary here the same way.

    Returns:
        True when an initialisation ran.
    """
    from vgloc.models.classical import ClassicalDescriber

    if isinstance(model, ClassicalDescriber):
        if not model.requires_fit:
            return False
        log.info("fitting the %s vocabulary on %d images", model.spec, len(images))
        model.fit(images.paths, progress=options.progress)
        return True
    if not _needs_data_init(model):
        return False
    from vgloc.data import ImageDataset, build_transform
    from vgloc.models import initialize_netvlad

    log.info("initialising %s clusters from %d images", model.spec, len(images))
    dataset = ImageDataset(list(images.paths), build_transform(options.image_size))
    initialize_netvlad(
        model,
        dataset,
        batch_size=options.batch_size if options.image_size is not None else 1,
        device=options.device,
        seed=seed,
    )
    return True


def build_index(
    images: str | Path | GeoImageSet,
    model: str | Describer,
    out: str | Path | None = None,
    *,
    checkpoint: str | Path | None = None,
    pretrained: bool = False,
    factory: str = "Flat",
    search_params: str | None = None,
    options: ExtractionOptions | None = None,
    descriptor_dtype: str = "float32",
    validate: bool = True,
    seed: int = 0,
) -> GeoIndex:
    """Describe every image of a geotagged collection and index the descriptors.

    Args:
        images: a folder (``@UTM@`` file names or EXIF GPS photos), a CSV/Parquet
            manifest, or a :class:`GeoImageSet`.
        model: a model spec string or model.
        out: the index directory to write (atomically); None keeps it in memory only.
        checkpoint: weights for the model (vgloc or authors' format).
        pretrained: ImageNet backbone weights (network or cache).
        factory: FAISS factory string (``"Flat"``, ``"IVF4096,PQ32"``, ``"HNSW32"``).
        search_params: default FAISS search parameters stored with the index (``"nprobe=16"``).
        options: extraction options.
        descriptor_dtype: ``"float32"`` or ``"float16"`` for the stored descriptors.
        validate: open every image up front and report all unreadable ones at once.
        seed: seeds random initialisation (weights, k-means), so a run can be repeated.

    Returns:
        The :class:`vgloc.index.GeoIndex`.
    """
    import torch

    from vgloc.index import GeoIndex
    from vgloc.models import save_model

    options = options or ExtractionOptions()
    if descriptor_dtype not in ("float32", "float16"):
        raise ValueError(f"descriptor dtype must be float32 or float16, got {descriptor_dtype!r}")
    image_set = _as_image_set(images, validate)
    if len(image_set) == 0:
        raise ValueError("no database images to index")
    torch.manual_seed(seed)
    net = resolve_model(model, checkpoint, pretrained)
    initialized = initialize_aggregator_if_needed(net, image_set, options, seed)
    t0 = time.perf_counter()
    descriptors = compute_descriptors(net, image_set.paths, options)
    elapsed = time.perf_counter() - t0
    log.info(
        "described %d images in %.1f s (%.1f img/s)",
        len(image_set),
        elapsed,
        len(image_set) / elapsed,
    )
    extra: dict[str, Any] = {
        "precision": options.precision,
        "pretrained": pretrained,
        "seed": seed,
        "aggregator_initialized_from_database": initialized,
    }
    model_files: dict[str, Callable[[Path], object]] = {}
    if checkpoint is not None:
        extra["checkpoint"] = str(Path(checkpoint).resolve())
        extra["checkpoint_sha256"] = _sha256(Path(checkpoint))
    else:
        # Random or data-initialised weights cannot be rebuilt from the spec alone:
        # keep them with the index so that `locate` describes queries with the same network.
        from vgloc.models.classical import ClassicalDescriber

        name = CLASSICAL_FILE_IN_INDEX if isinstance(net, ClassicalDescriber) else MODEL_FILE_IN_INDEX
        extra["model_file"] = name
        model_files[name] = net.save if isinstance(net, ClassicalDescriber) else lambda p: save_model(net, p)
    index = GeoIndex.build(
        descriptors.astype(np.float32),
        image_set,
        model_spec=net.spec,
        image_size=options.image_size,
        factory=factory,
        search_params=_default_search_params(factory, search_params),
        descriptor_dtype=descriptor_dtype,
        extra=extra,
    )
    index.model = net
    if out is not None:
        index.save(out, extra_files=model_files)
        log.info("wrote index of %d images to %s", len(image_set), out)
    return index


def load_index_and_model(
    index: str | Path | GeoIndex,
    model: str | Describer | None = None,
    checkpoint: str | Path | None = None,
) -> tuple[GeoIndex, Describer]:
    """Open an index and the model that describes queries for it, refusing mismatches.

    Without ``model``/``checkpoint`` the network recorded by the index is used: the
    model file stored inside the index, or the checkpoint it names (checked by hash).
    """
    from vgloc.index import GeoIndex
    from vgloc.models import load_model

    idx = index if isinstance(index, GeoIndex) else GeoIndex.load(index)
    extra = idx.metadata.extra
    if model is None and checkpoint is None:
        if idx.model is not None:
            net = idx.model.eval()
        elif extra.get("model_file") and idx.path is not None:
            model_path = Path(idx.path) / extra["model_file"]
            if model_path.suffix == ".npz":
                from vgloc.models.classical import ClassicalDescriber

                net = ClassicalDescriber.load(model_path)
            else:
                net = load_model(model_path).eval()
        elif extra.get("checkpoint"):
            ckpt = Path(extra["checkpoint"])
            if not ckpt.is_file():
                raise FileNotFoundError(
                    f"the index was built with checkpoint {ckpt}, which no longer exists; pass --checkpoint"
                )
            if _sha256(ckpt) != extra.get("checkpoint_sha256"):
                raise ValueError(f"checkpoint {ckpt} changed since the index was built (sha256 differs)")
            net = resolve_model(idx.metadata.model_spec, ckpt)
        else:
            net = resolve_model(idx.metadata.model_spec, pretrained=bool(extra.get("pretrained")))
    else:
        net = resolve_model(model if model is not None else idx.metadata.model_spec, checkpoint)
    idx.check_model(net.spec, net.descriptor_dim)
    return idx, net


def locate(
    photos: Sequence[str | Path],
    index: str | Path | GeoIndex,
    *,
    model: str | Describer | None = None,
    checkpoint: str | Path | None = None,
    top_k: int = 5,
    method: str = "nearest",
    kde: KDEParams = DEFAULT_KDE,
    search_params: str | None = None,
    options: ExtractionOptions | None = None,
    rerank: str | None = None,
    rerank_k: int = 100,
    rerank_cache: str | Path | FeatureCache | None = None,
    rerank_fusion: str | None = None,
) -> list[Prediction]:
    """Predict the GPS position of each photo by retrieval against an index.

    Args:
        photos: query image files.
        index: an index directory (from :func:`build_index`) or a loaded index.
        model, checkpoint: override the network recorded in the index (must match its spec).
        top_k: matches to report per photo.
        method: ``"nearest"`` (default) or ``"kde"`` (kNN kernel density).
        kde: kernel parameters (k neighbours, exponent m, sigma in metres).
        search_params: FAISS search parameters, e.g. ``"nprobe=32"``.
        options: extraction options; by default the index's image size is used.
        rerank: a local re-ranker spec (``rootsift+mnn+ransac``, ...): each photo's top
            ``rerank_k`` candidates are re-ordered by geometric verification before the
            position is predicted; each re-ranked :class:`Match` carries its ``inliers``.
        rerank_k: how many candidates to re-rank (default 100; clipped to the database).
        rerank_cache: an HDF5 local-feature cache (path or ``FeatureCache``) so database
            features are extracted once, not per call.
        rerank_fusion: None (inliers alone), ``"zscore"`` or ``"linear"`` fusion with the
            global similarity.

    Returns:
        One :class:`Prediction` per photo, in order.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    _check_rerank_args(rerank, rerank_k, rerank_cache, rerank_fusion, None)
    paths = [Path(p) for p in photos]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"photo(s) not found: {', '.join(missing)}")
    from vgloc.data.validation import validate_images

    validate_images(paths, progress=False)
    idx, net = load_index_and_model(index, model, checkpoint)
    options = options or ExtractionOptions(image_size=idx.metadata.image_size, progress=False)
    query_desc = compute_descriptors(net, paths, options, queries=True)
    k = max(top_k, kde.k)
    if rerank is not None:
        k = max(k, rerank_k)
    sims, ids = idx.search(query_desc, k, search_params)
    db = idx.images
    inliers = None
    if rerank is not None:
        from vgloc.rerank.pipeline import score_candidates

        reordered = score_candidates(
            paths, db.paths, ids, sims, rerank, k=rerank_k, cache=rerank_cache, fusion=rerank_fusion
        ).rerank()
        assert reordered.similarities is not None  # similarities were passed in
        ids, sims, inliers = reordered.predictions, reordered.similarities, reordered.inliers
    xy, confidence = predict_positions(sims, ids, db.utm, method, kde)
    lat, lon = (
        db.frame.to_latlon(np.nan_to_num(xy)) if db.frame is not None else (np.full(len(xy), np.nan),) * 2
    )
    predictions = []
    for q, path in enumerate(paths):
        matches = [
            Match(
                rank=r + 1,
                index=int(i),
                path=str(db.paths[i]),
                lat=float(db.latlon[i, 0]),
                lon=float(db.latlon[i, 1]),
                utm_east=float(db.utm[i, 0]),
                utm_north=float(db.utm[i, 1]),
                similarity=float(sims[q, r]),
                inliers=None if inliers is None or inliers[q, r] < 0 else int(inliers[q, r]),
            )
            for r, i in enumerate(ids[q][:top_k])
            if i >= 0
        ]
        ok = bool(np.all(np.isfinite(xy[q])))
        predictions.append(
            Prediction(
                query=str(path),
                lat=float(lat[q]) if ok else float("nan"),
                lon=float(lon[q]) if ok else float("nan"),
                utm_east=float(xy[q, 0]),
                utm_north=float(xy[q, 1]),
                confidence=float(confidence[q]),
                method=method,
                matches=matches,
            )
        )
    return predictions


@dataclass
class RerankedDomain:
    """One query domain after re-ranking its top-``k`` retrieved candidates with local features.

    Attributes:
        spec: the re-ranker spec (``rootsift+mnn+ransac``, ...).
        k: how many leading candidates were re-ranked (clipped to the database size).
        fusion: None (inlier counts alone) or the fusion with the global similarity.
        recalls: ``{N: Recall@N}`` after re-ranking.
        predictions: (Q, W) database indices after re-ranking (beyond ``k``: retrieval order).
        similarities: (Q, W) global similarities aligned with ``predictions``.
        scores: (Q, W) ranking scores aligned with ``predictions`` (NaN beyond ``k``).
        inliers: (Q, W) inlier counts aligned with ``predictions`` (-1 beyond ``k``).
        ms_per_query: mean re-ranking time per query (query features + ``k`` verifications).
        database_ms_per_image: mean time to prepare one database image's local
            features before the timed part (extraction, or reading the HDF5 cache).
        sweep: Recall@N and ms/query for each K of a sweep (empty without one).
    """

    spec: str
    k: int
    fusion: str | None
    recalls: dict[int, float]
    predictions: np.ndarray = field(repr=False)
    similarities: np.ndarray = field(repr=False)
    scores: np.ndarray = field(repr=False)
    inliers: np.ndarray = field(repr=False)
    ms_per_query: float
    database_ms_per_image: float = float("nan")
    sweep: list[SweepPoint] = field(default_factory=list)

    @property
    def label(self) -> str:
        """How the re-ranking is named in tables, e.g. ``+ rootsift+mnn+ransac@100``."""
        return f"+ {self.spec}@{self.k}" + (f" ({self.fusion})" if self.fusion else "")


@dataclass
class DomainResult:
    """Recall of one query folder (domain) against the split's database.

    ``rerank`` holds the same domain after local re-ranking when ``evaluate`` was asked
    for it (``recalls``/``predictions`` here are always retrieval alone).
    """

    domain: str
    num_queries: int
    recalls: dict[int, float]
    queries_without_positives: int
    predictions: np.ndarray  # (Q, K) database indices
    similarities: np.ndarray  # (Q, K)
    positives: list[np.ndarray] = field(repr=False, default_factory=list)
    rerank: RerankedDomain | None = None


@dataclass
class EvalResult:
    """Recall@N of every evaluated query domain, with the settings that produced it."""

    split: str
    model_spec: str
    threshold_m: float
    recall_values: tuple[int, ...]
    num_database: int
    domains: dict[str, DomainResult]
    settings: dict[str, Any]
    seconds: float

    def table(self) -> str:
        """A Markdown table: one row per query domain, one column per R@N.

        With re-ranking, each domain gets a second row (``<domain> + <spec>@<K>``) with
        the re-ranked recalls, and a column with the re-ranking time per query.
        """
        reranked = any(d.rerank is not None for d in self.domains.values())
        head = "| domain | queries | " + " | ".join(f"R@{n}" for n in self.recall_values) + " | no positive |"
        rule = "|---|---:|" + "---:|" * len(self.recall_values) + "---:|"
        if reranked:
            head += " re-rank ms/query |"
            rule += "---:|"
        rows = []
        for d in self.domains.values():
            row = (
                f"| {d.domain} | {d.num_queries} | "
                + " | ".join(f"{d.recalls[n]:.1f}" for n in self.recall_values)
                + f" | {d.queries_without_positives} |"
            )
            rows.append(row + (" |" if reranked else ""))
            if d.rerank is not None:
                r = d.rerank
                rows.append(
                    f"| {d.domain} {r.label} | {d.num_queries} | "
                    + " | ".join(f"{r.recalls[n]:.1f}" for n in self.recall_values)
                    + f" | {d.queries_without_positives} | {r.ms_per_query:.1f} |"
                )
        return "\n".join([head, rule, *rows])

    def to_dict(
        self, database: GeoImageSet | None = None, queries: dict[str, GeoImageSet] | None = None
    ) -> dict:
        """JSON-ready results, including each query's top-K predictions."""
        out: dict[str, Any] = {
            "split": self.split,
            "model_spec": self.model_spec,
            "threshold_m": self.threshold_m,
            "recall_values": list(self.recall_values),
            "num_database": self.num_database,
            "seconds": round(self.seconds, 2),
            "settings": self.settings,
            "domains": {},
        }
        for name, d in self.domains.items():
            per_query = []
            for q in range(d.num_queries):
                row: dict[str, Any] = {
                    "predictions": d.predictions[q].tolist(),
                    "similarities": [round(float(s), 5) for s in d.similarities[q]],
                    "positives": d.positives[q].tolist() if d.positives else None,
                }
                if queries is not None:
                    row["query"] = str(queries[name].paths[q])
                if database is not None:
                    row["prediction_paths"] = [str(database.paths[i]) for i in d.predictions[q] if i >= 0]
                if d.rerank is not None:
                    # The re-ranked top-K, with each candidate's inliers and ranking score.
                    rk = d.rerank.k
                    row["rerank"] = {
                        "predictions": d.rerank.predictions[q, :rk].tolist(),
                        "inliers": d.rerank.inliers[q, :rk].tolist(),
                        "scores": [None if s != s else round(float(s), 5) for s in d.rerank.scores[q, :rk]],
                    }
                per_query.append(row)
            domain: dict[str, Any] = {
                "num_queries": d.num_queries,
                "recalls": {str(n): v for n, v in d.recalls.items()},
                "queries_without_positives": d.queries_without_positives,
            }
            if d.rerank is not None:
                r = d.rerank
                domain["rerank"] = {
                    "spec": r.spec,
                    "k": r.k,
                    "fusion": r.fusion,
                    "recalls": {str(n): v for n, v in r.recalls.items()},
                    "ms_per_query": round(r.ms_per_query, 3),
                    "database_ms_per_image": None
                    if r.database_ms_per_image != r.database_ms_per_image
                    else round(r.database_ms_per_image, 3),
                    "sweep": [p.to_dict() for p in r.sweep],
                }
            domain["queries"] = per_query
            out["domains"][name] = domain
        return out


def evaluate(
    dataset: str | Path,
    split: str = "test",
    model: str | Describer | None = "resnet18+gem+fc512",
    *,
    checkpoint: str | Path | None = None,
    pretrained: bool = False,
    recall_values: Sequence[int] = DEFAULT_RECALL_VALUES,
    threshold_m: float = DEFAULT_THRESHOLD_M,
    domains: Sequence[str] | None = None,
    factory: str = "Flat",
    search_params: str | None = None,
    options: ExtractionOptions | None = None,
    out_dir: str | Path | None = None,
    seed: int = 0,
    index: str | Path | GeoIndex | None = None,
    rerank: str | None = None,
    rerank_k: int = 100,
    rerank_cache: str | Path | FeatureCache | None = None,
    rerank_fusion: str | None = None,
    rerank_fusion_weight: float = 0.5,
    rerank_sweep: Sequence[int] | None = None,
) -> EvalResult:
    """Recall@N on a dataset in the field's layout, with the field's protocol.

    Positives are database images within ``threshold_m`` UTM metres of the query;
    a query is correct at N when any of its top N is a positive; the denominator
    is all queries (see :mod:`vgloc.evaluation.recall`).

    Args:
        dataset: the root holding ``images/<split>/database`` and ``queries*`` folders.
        split: ``train``, ``val`` or ``test``.
        model, checkpoint, pretrained: the network (see :func:`resolve_model`).
        recall_values: the N of R@N.
        threshold_m: the positive radius in metres.
        domains: query folders to evaluate (default: every ``queries*`` folder).
        factory, search_params: FAISS index to search with (``Flat`` = exact).
        options: extraction options (image size, batch size, device, precision...).
        out_dir: when given, ``results.json`` (recalls and each query's top-K) is written there.
        seed: seeds random initialisation.
        index: a prebuilt index of this split's database (path or object); its model is
            used unless ``model``/``checkpoint`` are passed explicitly, and it must hold
            exactly the split's database images.
        rerank: a local re-ranker spec (``rootsift+mnn+ransac``, ``sift+ratio+fundamental``,
            ...): after retrieval, each domain's top ``rerank_k`` are re-ordered by
            geometric verification and reported in ``DomainResult.rerank`` beside the
            retrieval-only recalls (To-Match-or-Not-to-Match's protocol, PROTOCOLS 6.2).
        rerank_k: how many candidates to re-rank (default 100; clipped to the database
            size). Retrieval fetches ``max(rerank_k, max(recall_values))``.
        rerank_cache: an HDF5 local-feature cache (path or :class:`~vgloc.rerank.FeatureCache`)
            so database features are extracted once across runs.
        rerank_fusion: None (inliers alone), ``"zscore"`` or ``"linear"`` fusion with the
            global similarity; ``rerank_fusion_weight`` weighs the global term.
        rerank_sweep: K values (e.g. ``[1, 5, 10, 20, 50, 100]``): the top-max(K) are
            verified once and re-ordered for each K (Recall@N and ms/query per K, in
            ``DomainResult.rerank.sweep``); with ``out_dir``, ``rerank_sweep.csv``, ``.md``
            and ``.png`` are written there.

    Returns:
        An :class:`EvalResult`.
    """
    import torch

    from vgloc.data import load_split
    from vgloc.index import GeoIndex

    options = options or ExtractionOptions()
    recall_values = tuple(sorted({int(n) for n in recall_values}))
    t_start = time.perf_counter()
    # Bad re-ranking settings fail here, before minutes of description and search.
    _check_rerank_args(rerank, rerank_k, rerank_cache, rerank_fusion, rerank_sweep, rerank_fusion_weight)
    bench = load_split(dataset, split, progress=options.progress)
    wanted = list(bench.queries) if domains is None else list(domains)
    unknown = [d for d in wanted if d not in bench.queries]
    if unknown:
        raise ValueError(
            f"query folder(s) {unknown} not in {dataset}/images/{split}; found: {sorted(bench.queries)}"
        )
    torch.manual_seed(seed)
    if index is not None:
        index, net = load_index_and_model(index, None if model is None else model, checkpoint)
        if [str(p) for p in index.images.paths] != [str(p) for p in bench.database.paths]:
            raise ValueError(
                f"the index holds {len(index.images)} images that are not this split's "
                f"{len(bench.database)} database images ({dataset}, {split})"
            )
    else:
        if model is None:
            raise ValueError("evaluate needs a model spec, a model, or a prebuilt index")
        net = resolve_model(model, checkpoint, pretrained)
        initialize_aggregator_if_needed(net, bench.database, options, seed)
        db_desc = compute_descriptors(net, bench.database.paths, options)
        index = GeoIndex.build(
            db_desc,
            bench.database,
            model_spec=net.spec,
            image_size=options.image_size,
            factory=factory,
            search_params=_default_search_params(factory, search_params),
        )
    k = max(recall_values)
    num_db = len(bench.database)
    rerank_k_used = min(int(rerank_k), num_db)
    sweep_ks = None if rerank_sweep is None else _sweep_ks(rerank_sweep, num_db)
    # Verify once at the largest K needed; smaller Ks re-use those scores.
    score_k = max(rerank_k_used, *(sweep_ks or [0]))
    if rerank is not None:
        k = max(k, score_k)
    results: dict[str, DomainResult] = {}
    reranker = None
    if rerank is not None:
        from vgloc.rerank import Reranker

        reranker = Reranker(rerank, cache=rerank_cache)
    try:
        for name in wanted:
            queries = bench.queries[name]
            q_desc = compute_descriptors(net, queries.paths, options, queries=True)
            sims, ids = index.search(q_desc, k, search_params)
            positives = positives_within(bench.database.utm, queries.utm, threshold_m)
            results[name] = DomainResult(
                domain=name,
                num_queries=len(queries),
                recalls=recall_at_n(ids, positives, recall_values),
                queries_without_positives=count_without_positives(positives),
                predictions=ids,
                similarities=sims,
                positives=positives,
            )
            log.info(
                "%s/%s: %s", split, name, {f"R@{n}": round(v, 1) for n, v in results[name].recalls.items()}
            )
            if reranker is not None:
                reranked = _rerank_domain(
                    reranker,
                    queries.paths,
                    bench.database.paths,
                    results[name],
                    score_k=score_k,
                    k=rerank_k_used,
                    sweep_ks=sweep_ks,
                    recall_values=recall_values,
                    fusion=rerank_fusion,
                    fusion_weight=rerank_fusion_weight,
                    progress=options.progress,
                )
                results[name].rerank = reranked
                log.info(
                    "%s/%s %s: %s",
                    split,
                    name,
                    reranked.label,
                    {f"R@{n}": round(v, 1) for n, v in reranked.recalls.items()},
                )
    finally:
        if reranker is not None:
            reranker.close()
    result = EvalResult(
        split=split,
        model_spec=net.spec,
        threshold_m=threshold_m,
        recall_values=recall_values,
        num_database=len(bench.database),
        domains=results,
        settings={
            "dataset": str(dataset),
            "checkpoint": None if checkpoint is None else str(checkpoint),
            "pretrained": pretrained,
            "image_size": options.image_size,
            "precision": options.precision,
            "factory": factory,
            "search_params": search_params,
            "test_brightness": options.brightness,
            "seed": seed,
        },
        seconds=time.perf_counter() - t_start,
    )
    if rerank is not None:
        result.settings["rerank"] = {
            "spec": str(reranker.spec) if reranker is not None else rerank,
            "k": rerank_k_used,
            "retrieved": min(k, num_db),
            "fusion": rerank_fusion,
            "fusion_weight": rerank_fusion_weight if rerank_fusion else None,
            "cache": None if rerank_cache is None else str(getattr(rerank_cache, "path", rerank_cache)),
            "sweep": sweep_ks,
        }
    if out_dir is not None:
        write_json_atomic(
            Path(out_dir) / "results.json",
            result.to_dict(bench.database, {n: bench.queries[n] for n in wanted}),
        )
        if sweep_ks:
            from vgloc.rerank.pipeline import write_sweep

            curves = {n: d.rerank.sweep for n, d in results.items() if d.rerank is not None}
            write_sweep(
                curves,
                out_dir,
                title=f"{net.spec} + {reranker.spec if reranker is not None else rerank} ({split})",
                baseline={n: d.recalls for n, d in results.items()},
            )
    return result


def _check_rerank_args(
    rerank: str | None,
    rerank_k: int,
    rerank_cache: object,
    rerank_fusion: str | None,
    rerank_sweep: Sequence[int] | None,
    rerank_fusion_weight: float = 0.5,
) -> None:
    """Validate the re-ranking arguments of :func:`evaluate` / :func:`locate` up front."""
    if rerank is None:
        extras = {"rerank_cache": rerank_cache, "rerank_fusion": rerank_fusion, "rerank_sweep": rerank_sweep}
        given = [name for name, value in extras.items() if value is not None]
        if given:
            raise ValueError(
                f"{', '.join(given)} given without a re-ranker: pass rerank='rootsift+mnn+ransac' (or another spec)"
            )
        return
    from vgloc.rerank import parse_spec

    parse_spec(rerank)  # raises with the valid extractors/matchers/verifiers listed
    if isinstance(rerank_k, bool) or not isinstance(rerank_k, (int, np.integer)) or rerank_k < 1:
        raise ValueError(f"rerank_k must be a positive integer, got {rerank_k!r}")
    if rerank_fusion not in (None, "zscore", "linear"):
        raise ValueError(f"rerank_fusion must be None, 'zscore' or 'linear', got {rerank_fusion!r}")
    if rerank_fusion == "zscore" and not 0.0 <= rerank_fusion_weight <= 1.0:
        raise ValueError(f"zscore fusion weight must be in [0, 1], got {rerank_fusion_weight}")
    if rerank_sweep is not None:
        _sweep_ks(rerank_sweep, None)


def _sweep_ks(ks: Sequence[int], limit: int | None) -> list[int]:
    from vgloc.rerank.pipeline import check_sweep_ks

    return check_sweep_ks(ks, limit)


def _rerank_domain(
    reranker: Any,
    query_paths: Sequence[Path],
    database_paths: Sequence[Path],
    retrieved: DomainResult,
    *,
    score_k: int,
    k: int,
    sweep_ks: Sequence[int] | None,
    recall_values: Sequence[int],
    fusion: str | None,
    fusion_weight: float,
    progress: bool,
) -> RerankedDomain:
    """Verify one domain's top-``score_k`` once; re-order its top ``k`` (and each sweep K)."""
    from vgloc.rerank.pipeline import rerank_sweep, score_candidates

    scored = score_candidates(
        query_paths,
        database_paths,
        retrieved.predictions,
        retrieved.similarities,
        reranker,
        k=score_k,
        fusion=fusion,
        fusion_weight=fusion_weight,
        # The next domain searches the same database: keep its local features in memory.
        keep_features=True,
        progress=progress,
    )
    rr = scored.rerank(min(k, scored.k))
    assert rr.similarities is not None  # similarities were passed in
    return RerankedDomain(
        spec=scored.spec,
        k=rr.k,
        fusion=fusion,
        recalls=recall_at_n(rr.predictions, retrieved.positives, recall_values),
        predictions=rr.predictions,
        similarities=rr.similarities,
        scores=rr.scores,
        inliers=rr.inliers,
        ms_per_query=rr.ms_per_query,
        database_ms_per_image=scored.database_ms_per_image,
        sweep=rerank_sweep(scored, sweep_ks, retrieved.positives, recall_values) if sweep_ks else [],
    )
