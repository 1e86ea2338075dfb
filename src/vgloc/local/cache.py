"""An HDF5 cache of local features, keyed by image path and content (hloc-style).

Layout of the file::

    /                      attrs: format, version, extractor (JSON config), fingerprint
    /features/<sha1(path)> attrs: path, fingerprint, image_size, working_size, complete
        keypoints (N, 2) float32, descriptors (N, D), scores, scales, oris (N,) float32

- **Keys.** One group per image, named by the SHA-1 of its absolute path (HDF5
  names cannot hold every path; the path itself is an attribute).
- **Staleness.** Each entry records a fingerprint of the image file: its content
  hash (BLAKE2b, default) or ``size:mtime_ns`` (``fingerprint="stat"``, no read but
  blind to a same-size rewrite within the file system's timestamp granularity). An
  image whose fingerprint changed is recomputed.
- **Metadata.** The file records the extractor's name and parameters; opening it
  with a different extractor configuration raises :class:`CacheMismatchError`
  instead of mixing features.
- **Interruptions.** A new file is created with its metadata atomically; entries are
  flushed one by one and marked ``complete`` last, so a run killed mid-way leaves the
  finished entries usable and the unfinished one ignored (recomputed). A file HDF5
  cannot open raises :class:`CacheCorruptError` (or is moved aside and rebuilt with
  ``on_corrupt="rebuild"``).

One process writes a cache at a time (HDF5 locks the file).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from vgloc.io import atomic_path
from vgloc.local.features import LocalFeatureExtractor, LocalFeatures

__all__ = ["CacheCorruptError", "CacheMismatchError", "FeatureCache", "image_fingerprint"]

log = logging.getLogger(__name__)

FORMAT = "vgloc-local-features"
VERSION = 1
_FIELDS = ("keypoints", "descriptors", "scores", "scales", "oris")


class CacheMismatchError(ValueError):
    """The cache file was written with another extractor configuration (or is not a feature cache)."""


class CacheCorruptError(OSError):
    """The cache file cannot be read (e.g. a run was killed while the file was being created)."""


_MEMO: dict[tuple[str, str, int, int, int, int], str] = {}
_MEMO_MAX = 200_000


def image_fingerprint(path: str | os.PathLike[str], mode: str = "content") -> str:
    """A fingerprint of an image file that changes when the file changes.

    Args:
        path: the file.
        mode: ``"content"``: BLAKE2b-128 of the bytes (exact; memoised per process by
            inode, size and timestamps so each file is read once); ``"stat"``:
            ``size:mtime_ns`` (no read).

    Returns:
        The fingerprint string.

    Raises:
        FileNotFoundError: naming the file.
    """
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise FileNotFoundError(f"image {p} does not exist") from None
    if mode == "stat":
        return f"{st.st_size}:{st.st_mtime_ns}"
    if mode != "content":
        raise ValueError(f"fingerprint mode must be 'content' or 'stat', got {mode!r}")
    key = (p, mode, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _MEMO:
        if len(_MEMO) >= _MEMO_MAX:
            _MEMO.clear()  # bounded memory; a cleared entry only costs one more read
        h = hashlib.blake2b(digest_size=16)
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _MEMO[key] = "blake2b:" + h.hexdigest()
    return _MEMO[key]


def _canonical(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


class FeatureCache:
    """Local features of images, cached in one HDF5 file for one extractor configuration.

    Args:
        path: the ``.h5`` file (created when missing).
        extractor: the extractor whose features the file holds; its ``config()`` is the
            file's identity and it computes the missing entries.
        fingerprint: ``"content"`` (default) or ``"stat"``; see :func:`image_fingerprint`.
        on_corrupt: ``"raise"`` (default): an unreadable file raises
            :class:`CacheCorruptError`; ``"rebuild"``: it is renamed to
            ``<name>.corrupt-<time>`` and a new cache is started.

    Raises:
        CacheMismatchError: the file exists with another extractor configuration or
            fingerprint mode, or is not a vgloc feature cache.
        CacheCorruptError: the file cannot be opened by HDF5 (``on_corrupt="raise"``).
        BlockingIOError: another process holds the file's HDF5 lock.

    Example:
        >>> ext = RootSIFTExtractor()
        >>> with FeatureCache("features/rootsift.h5", ext) as cache:
        ...     cache.extract_all(database_paths)          # skips what is already there
        ...     feats = cache.get_or_extract(query_path)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        extractor: LocalFeatureExtractor,
        *,
        fingerprint: str = "content",
        on_corrupt: str = "raise",
    ) -> None:
        if fingerprint not in ("content", "stat"):
            raise ValueError(f"fingerprint must be 'content' or 'stat', got {fingerprint!r}")
        if on_corrupt not in ("raise", "rebuild"):
            raise ValueError(f"on_corrupt must be 'raise' or 'rebuild', got {on_corrupt!r}")
        self.path = Path(path)
        self.extractor = extractor
        self.fingerprint_mode = fingerprint
        self.on_corrupt = on_corrupt
        self.config = _canonical(extractor.config())
        self.hits = 0
        self.misses = 0
        self._file: Any = None
        self._open()

    # -- file handling --------------------------------------------------------------
    def _create(self) -> None:
        import h5py

        # Created under a temporary name and renamed: the final name never holds a
        # file without its metadata.
        with atomic_path(self.path, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["version"] = VERSION
            f.attrs["extractor"] = self.config
            f.attrs["fingerprint"] = self.fingerprint_mode
            f.create_group("features")

    def _open(self) -> None:
        import h5py

        if not self.path.exists():
            self._create()
        try:
            f = h5py.File(self.path, "a")
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES) or "unable to lock" in str(exc).lower():
                # Busy, not broken: never move a healthy file aside for this.
                raise BlockingIOError(
                    errno.EAGAIN,
                    f"feature cache {self.path} is locked by another process (HDF5 file lock: {exc}); "
                    "one process writes a cache at a time",
                ) from exc
            if self.on_corrupt == "rebuild":
                aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
                os.replace(self.path, aside)
                log.warning(
                    "feature cache %s is unreadable (%s); moved to %s and rebuilding", self.path, exc, aside
                )
                self._create()
                f = h5py.File(self.path, "a")
            else:
                raise CacheCorruptError(
                    f"feature cache {self.path} cannot be opened by HDF5 ({exc}); it is probably corrupt "
                    "(e.g. a killed run or a full disk). Delete it to rebuild, or pass on_corrupt='rebuild'."
                ) from exc
        try:
            self._check_metadata(f)
        except BaseException:
            f.close()
            raise
        self._file = f

    def _check_metadata(self, f: Any) -> None:
        fmt = f.attrs.get("format")
        if fmt != FORMAT:
            raise CacheMismatchError(
                f"{self.path} is not a vgloc local-feature cache (format attribute {fmt!r})"
            )
        version = int(f.attrs.get("version", -1))
        if version != VERSION:
            raise CacheMismatchError(
                f"{self.path} has cache format version {version}, this vgloc reads {VERSION}"
            )
        stored = str(f.attrs.get("extractor", ""))
        if stored != self.config:
            raise CacheMismatchError(
                f"feature cache {self.path} holds features of another extractor configuration:\n"
                f"  in the file: {stored}\n  requested:   {self.config}\n"
                "Use a different cache file for each extractor configuration (or delete this one)."
            )
        mode = str(f.attrs.get("fingerprint", ""))
        if mode != self.fingerprint_mode:
            raise CacheMismatchError(
                f"feature cache {self.path} uses fingerprint={mode!r}, requested {self.fingerprint_mode!r}"
            )

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        with contextlib.suppress(Exception):
            self.close()

    @property
    def file(self) -> Any:
        if self._file is None:
            self._open()
        return self._file

    # -- entries ----------------------------------------------------------------------
    @staticmethod
    def key(image_path: str | os.PathLike[str]) -> str:
        """The group name of an image: SHA-1 of its absolute path."""
        return hashlib.sha1(os.path.abspath(os.fspath(image_path)).encode("utf-8")).hexdigest()

    def __len__(self) -> int:
        return sum(1 for g in self.file["features"].values() if g.attrs.get("complete", 0) == 1)

    def paths(self) -> list[str]:
        """The image paths with a complete entry (whether or not still fresh)."""
        return sorted(
            str(g.attrs["path"]) for g in self.file["features"].values() if g.attrs.get("complete", 0) == 1
        )

    def get(self, image_path: str | os.PathLike[str]) -> LocalFeatures | None:
        """The cached features of an image, or None if absent, incomplete or stale.

        Args:
            image_path: the image file (must exist: its fingerprint is checked).

        Returns:
            The features, or None.
        """
        group = self.file["features"].get(self.key(image_path))
        if group is None or group.attrs.get("complete", 0) != 1:
            return None
        if group.attrs.get("fingerprint") != image_fingerprint(image_path, self.fingerprint_mode):
            return None
        try:
            arrays = {name: group[name][()] for name in _FIELDS}
            return LocalFeatures(
                **arrays,
                image_size=tuple(int(v) for v in group.attrs["image_size"]),  # type: ignore[arg-type]
                working_size=tuple(int(v) for v in group.attrs["working_size"]),  # type: ignore[arg-type]
            )
        except (OSError, KeyError, ValueError) as exc:
            log.warning("unreadable cache entry for %s in %s (%s); recomputing", image_path, self.path, exc)
            return None

    def put(self, image_path: str | os.PathLike[str], features: LocalFeatures) -> None:
        """Store (or replace) the features of an image and flush.

        Args:
            image_path: the image file (its fingerprint is recorded).
            features: the features to store.
        """
        fp = image_fingerprint(image_path, self.fingerprint_mode)
        root = self.file["features"]
        name = self.key(image_path)
        if name in root:
            del root[name]
        g = root.create_group(name)
        for field in _FIELDS:
            g.create_dataset(field, data=getattr(features, field))
        g.attrs["path"] = os.path.abspath(os.fspath(image_path))
        g.attrs["fingerprint"] = fp
        g.attrs["image_size"] = np.asarray(features.image_size, np.int64)
        g.attrs["working_size"] = np.asarray(features.working_size, np.int64)
        # Written last: an entry interrupted before this line is ignored on reading.
        g.attrs["complete"] = 1
        self._file.flush()

    def get_or_extract(self, image_path: str | os.PathLike[str]) -> LocalFeatures:
        """The cached features of an image, extracting and storing them on a miss.

        Args:
            image_path: the image file.

        Returns:
            The features.
        """
        feats = self.get(image_path)
        if feats is not None:
            self.hits += 1
            return feats
        self.misses += 1
        feats = self.extractor.extract_path(image_path)
        self.put(image_path, feats)
        return feats

    def extract_all(self, image_paths: Iterable[str | os.PathLike[str]], *, progress: bool = False) -> int:
        """Make sure every image has fresh features in the cache (work already done is skipped).

        Args:
            image_paths: the images.
            progress: show a progress bar.

        Returns:
            How many images were extracted (the rest were cached).
        """
        paths = list(image_paths)
        todo = [p for p in paths if self.get(p) is None]
        from tqdm import tqdm

        for p in tqdm(todo, desc=f"{self.extractor.name} features", disable=not progress or not todo):
            self.put(p, self.extractor.extract_path(p))
        self.misses += len(todo)
        self.hits += len(paths) - len(todo)
        return len(todo)

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.path)!r}, extractor={self.config})"
