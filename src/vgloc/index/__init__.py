"""Descriptor indexes: FAISS factory strings, the exact oracle, and the on-disk geo-index.

Example:
    >>> from vgloc.index import GeoIndex, build_faiss_index, search
    >>> index = build_faiss_index(descriptors, "IVF1024,PQ64", train_sample=100_000)
    >>> sims, ids = search(index, queries, k=10, params="nprobe=32")
"""

from vgloc.index.auto import AUTO_EXACT_MAX, AUTO_FACTORY, IndexChoice, choose_index
from vgloc.index.faiss_index import (
    DEFAULT_SEARCH_PARAMS,
    TrainingDataError,
    TrainingNeed,
    add_vectors,
    apply_search_params,
    build_faiss_index,
    check_normalized,
    describe_index,
    exact_search,
    faiss_threads,
    knn_overlap_at_k,
    knn_recall_at_1,
    make_index,
    parse_search_params,
    search,
    train_index,
    training_needs,
)
from vgloc.index.store import (
    FORMAT_NAME,
    FORMAT_VERSION,
    GeoIndex,
    IndexCorruptError,
    IndexMetadata,
    IndexMismatchError,
    IndexStoreError,
)

__all__ = [
    "AUTO_EXACT_MAX",
    "AUTO_FACTORY",
    "DEFAULT_SEARCH_PARAMS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "GeoIndex",
    "IndexChoice",
    "IndexCorruptError",
    "IndexMetadata",
    "IndexMismatchError",
    "IndexStoreError",
    "TrainingDataError",
    "TrainingNeed",
    "add_vectors",
    "apply_search_params",
    "build_faiss_index",
    "check_normalized",
    "choose_index",
    "describe_index",
    "exact_search",
    "faiss_threads",
    "knn_overlap_at_k",
    "knn_recall_at_1",
    "make_index",
    "parse_search_params",
    "search",
    "train_index",
    "training_needs",
]
