"""Index tests run FAISS on one thread.

Spinning OpenMP threads slow down by an order of magnitude when other jobs share the
cores (CI runners, parallel test sessions), and one thread also makes HNSW graphs
deterministic, so recall bounds do not depend on thread scheduling.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vgloc.index import faiss_threads


@pytest.fixture(autouse=True)
def _one_faiss_thread() -> Iterator[None]:
    with faiss_threads(1):
        yield
