"""Checks that run before any image is described, so bad settings fail in seconds.

Re-ranking settings are checked by :func:`vgloc.rerank.check_rerank_options`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["check_factory", "check_out_dir", "clip_recall_values"]

log = logging.getLogger(__name__)


def check_factory(dim: int, factory: str) -> None:
    """Refuse a FAISS factory string that cannot index ``dim``-dimensional descriptors."""
    from vgloc.index.faiss_index import make_index

    make_index(dim, factory)


def check_out_dir(out_dir: str | Path | None) -> None:
    """Create ``out_dir`` and make sure a file can be written there."""
    if out_dir is None:
        return
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PermissionError(f"cannot write results to {out}: {exc.strerror or exc}") from exc


def clip_recall_values(recall_values: Sequence[int], num_database: int) -> tuple[int, ...]:
    """Sorted, unique N of R@N, each at most the database size (with a warning).

    A top-N list cannot be longer than the database; the reference code then counts
    the whole database, which is what clipping N to the database size reports.
    """
    values = sorted({int(n) for n in recall_values})
    if not values or values[0] < 1:
        raise ValueError(f"recall values must be positive integers, got {list(recall_values)}")
    if values[-1] > num_database:
        clipped = sorted({min(n, num_database) for n in values})
        log.warning(
            "Recall@N for N > %d (the database size) is Recall@%d: reporting R@%s instead of R@%s",
            num_database,
            num_database,
            ",".join(map(str, clipped)),
            ",".join(map(str, values)),
        )
        values = clipped
    return tuple(values)
