"""The HDF5 feature cache: reuse, staleness, metadata refusal, corruption and interrupted runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.local._helpers import textured_image, write_rgb
from vgloc.local import (
    CacheCorruptError,
    CacheMismatchError,
    FeatureCache,
    LocalFeatureExtractor,
    RootSIFTExtractor,
    SIFTExtractor,
)


class Counting:
    """Wraps an extractor's ``extract_path`` and counts calls."""

    def __init__(self, extractor: LocalFeatureExtractor, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        real = extractor.extract_path

        def counted(path: object) -> object:
            self.calls.append(str(path))
            return real(path)  # type: ignore[arg-type]

        monkeypatch.setattr(extractor, "extract_path", counted)


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    return [write_rgb(tmp_path / f"img{i}.png", textured_image(160, 120, seed=i)) for i in range(3)]


def test_second_run_reuses_the_cache(
    tmp_path: Path, images: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    h5 = tmp_path / "feats.h5"
    ext = RootSIFTExtractor(max_keypoints=200)
    counter = Counting(ext, monkeypatch)
    with FeatureCache(h5, ext) as cache:
        assert cache.extract_all(images) == 3
        first = cache.get_or_extract(images[1])
    assert len(counter.calls) == 3

    ext2 = RootSIFTExtractor(max_keypoints=200)
    counter2 = Counting(ext2, monkeypatch)
    with FeatureCache(h5, ext2) as cache:
        assert len(cache) == 3 and cache.paths() == sorted(str(p) for p in images)
        assert cache.extract_all(images) == 0
        again = cache.get_or_extract(images[1])
        assert cache.hits == 4 and cache.misses == 0
    assert counter2.calls == []
    np.testing.assert_array_equal(again.keypoints, first.keypoints)
    np.testing.assert_array_equal(again.descriptors, first.descriptors)
    assert again.image_size == first.image_size and again.working_size == first.working_size


def test_changed_image_is_recomputed(
    tmp_path: Path, images: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    h5 = tmp_path / "feats.h5"
    ext = SIFTExtractor(max_keypoints=100)
    counter = Counting(ext, monkeypatch)
    with FeatureCache(h5, ext) as cache:
        before = cache.get_or_extract(images[0])
        write_rgb(images[0], textured_image(160, 120, seed=99))  # same size and name, new content
        after = cache.get_or_extract(images[0])
        assert cache.get_or_extract(images[0]) is not None
    assert counter.calls == [str(images[0])] * 2  # the third call was a hit
    assert not np.array_equal(before.descriptors, after.descriptors)


def test_other_extractor_configuration_is_refused(tmp_path: Path, images: list[Path]) -> None:
    h5 = tmp_path / "feats.h5"
    with FeatureCache(h5, RootSIFTExtractor(max_keypoints=100)) as cache:
        cache.extract_all(images[:1])
    with pytest.raises(CacheMismatchError, match="another extractor configuration") as err:
        FeatureCache(h5, RootSIFTExtractor(max_keypoints=500))
    assert "feats.h5" in str(err.value) and '"max_keypoints":500' in str(err.value)
    with pytest.raises(CacheMismatchError):
        FeatureCache(h5, SIFTExtractor(max_keypoints=100))
    with pytest.raises(CacheMismatchError, match="fingerprint"):
        FeatureCache(h5, RootSIFTExtractor(max_keypoints=100), fingerprint="stat")


def test_corrupt_file_is_detected_or_rebuilt(tmp_path: Path, images: list[Path]) -> None:
    h5 = tmp_path / "feats.h5"
    h5.write_bytes(b"\x89HDF\r\n garbage from an interrupted write")
    with pytest.raises(CacheCorruptError, match=r"feats\.h5.*Delete it"):
        FeatureCache(h5, SIFTExtractor())
    with FeatureCache(h5, SIFTExtractor(), on_corrupt="rebuild") as cache:
        assert len(cache) == 0
        cache.extract_all(images[:1])
    assert len(list(tmp_path.glob("feats.h5.corrupt-*"))) == 1


def test_truncated_file_is_corrupt(tmp_path: Path, images: list[Path]) -> None:
    h5 = tmp_path / "feats.h5"
    with FeatureCache(h5, SIFTExtractor()) as cache:
        cache.extract_all(images)
    data = h5.read_bytes()
    h5.write_bytes(data[: len(data) // 2])
    with pytest.raises(CacheCorruptError, match="truncated"):
        FeatureCache(h5, SIFTExtractor())


def test_locked_file_is_busy_not_corrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import h5py

    h5 = tmp_path / "feats.h5"
    FeatureCache(h5, SIFTExtractor()).close()
    before = h5.read_bytes()

    def locked(*args: object, **kwargs: object) -> None:
        raise OSError(11, "Unable to synchronously open file (unable to lock file, errno = 11)")

    monkeypatch.setattr(h5py, "File", locked)
    with pytest.raises(BlockingIOError, match="locked by another process"):
        FeatureCache(h5, SIFTExtractor(), on_corrupt="rebuild")
    assert h5.read_bytes() == before and not list(tmp_path.glob("*.corrupt-*"))


def test_foreign_hdf5_file_is_refused(tmp_path: Path) -> None:
    import h5py

    h5 = tmp_path / "other.h5"
    with h5py.File(h5, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(CacheMismatchError, match="not a vgloc local-feature cache"):
        FeatureCache(h5, SIFTExtractor())


def test_incomplete_entry_is_ignored_and_recomputed(
    tmp_path: Path, images: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    h5 = tmp_path / "feats.h5"
    ext = SIFTExtractor(max_keypoints=50)
    with FeatureCache(h5, ext) as cache:
        cache.extract_all(images[:1])
        # Simulate a write interrupted before the completion mark.
        del cache.file["features"][FeatureCache.key(images[0])].attrs["complete"]
    counter = Counting(ext, monkeypatch)
    with FeatureCache(h5, ext) as cache:
        assert len(cache) == 0 and cache.get(images[0]) is None
        cache.get_or_extract(images[0])
        assert len(cache) == 1
    assert len(counter.calls) == 1


def test_killed_run_keeps_finished_entries(tmp_path: Path, images: list[Path]) -> None:
    """A process killed (os._exit, no close) after two entries leaves a readable file with both."""
    h5 = tmp_path / "feats.h5"
    script = textwrap.dedent(
        f"""
        import os
        from vgloc.local import FeatureCache, LocalFeatures, SIFTExtractor
        import numpy as np
        cache = FeatureCache({str(h5)!r}, SIFTExtractor(max_keypoints=50))
        for i, path in enumerate({[str(p) for p in images[:2]]!r}):
            n = 5 + i
            z = np.zeros(n, np.float32)
            feats = LocalFeatures(np.zeros((n, 2), np.float32), np.ones((n, 128), np.float32), z, z, z,
                                  (160, 120), (160, 120))
            cache.put(path, feats)
        os._exit(3)  # no close(), no atexit: as if killed
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    with FeatureCache(h5, SIFTExtractor(max_keypoints=50)) as cache:
        assert len(cache) == 2
        got = cache.get(images[1])
        assert got is not None and len(got) == 6
        assert cache.get(images[2]) is None
