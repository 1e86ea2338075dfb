"""The on-disk geo-index: exact round trips, refusals, atomic saves."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from tests.data.helpers import write_image
from tests.index._synthetic import sphere_centers, sphere_mixture
from vgloc.data import load_image_set
from vgloc.data.records import GeoImageSet
from vgloc.geo import MetricFrame, positives
from vgloc.index import (
    FORMAT_VERSION,
    GeoIndex,
    IndexCorruptError,
    IndexMismatchError,
    build_faiss_index,
)

N, DIM = 300, 32
SPEC = "resnet18+gem+fc32"


def _images(n: int = N) -> GeoImageSet:
    """Images around Lund with some headings unknown and per-image extras."""
    rng = np.random.default_rng(0)
    lat = 55.70 + rng.uniform(0, 0.01, n)
    lon = 13.19 + rng.uniform(0, 0.01, n)
    heading = rng.uniform(0, 360, n)
    heading[::3] = np.nan
    images = GeoImageSet.from_latlon(
        [Path(f"/data/lund/db/img_{i:04d}.jpg") for i in range(n)], lat, lon, heading, name="lund/db"
    )
    images.extra = {
        "pano_id": np.array([f"pano{i % 17}" for i in range(n)]),
        "tile": np.arange(n, dtype=np.int32),
        "gravity": rng.standard_normal((n, 3)).astype(np.float32),
    }
    return images


def _descriptors(n: int = N, dim: int = DIM, seed: int = 1) -> np.ndarray:
    return sphere_mixture(n, sphere_centers(16, dim, seed=0), spread=0.5, seed=seed)[0]


def _queries(dim: int = DIM) -> np.ndarray:
    return sphere_mixture(20, sphere_centers(16, dim, seed=0), spread=0.5, seed=7)[0]


def _assert_same_images(a: GeoImageSet, b: GeoImageSet) -> None:
    assert a.paths == b.paths
    np.testing.assert_array_equal(a.utm, b.utm)
    np.testing.assert_array_equal(a.latlon, b.latlon)  # NaN == NaN for assert_array_equal
    np.testing.assert_array_equal(a.heading, b.heading)
    assert a.frame == b.frame and a.name == b.name
    assert a.extra.keys() == b.extra.keys()
    for key in a.extra:
        assert a.extra[key].dtype == b.extra[key].dtype, key
        np.testing.assert_array_equal(a.extra[key], b.extra[key])


def _build(**kw: object) -> GeoIndex:
    args: dict[str, object] = {"model_spec": SPEC, "image_size": (480, 640)}
    args.update(kw)
    return GeoIndex.build(_descriptors(), _images(), **args)


@pytest.mark.parametrize("factory", ["Flat", "IVF4,Flat", "HNSW16"])
def test_round_trip_restores_images_and_search_results(tmp_path: Path, factory: str) -> None:
    built = _build(factory=factory, extra={"checkpoint_sha256": "ab" * 32, "precision": "fp32"})
    path = built.save(tmp_path / "city.vgindex")
    loaded = GeoIndex.load(path, expect_model_spec=SPEC, expect_descriptor_dim=DIM)

    _assert_same_images(built.images, loaded.images)
    assert np.isnan(loaded.images.heading[::3]).all()
    q = _queries()
    for params in (None, "nprobe=2,efSearch=16"):
        s1, i1 = built.search(q, 10, params)
        s2, i2 = loaded.search(q, 10, params)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(s1, s2)
    assert loaded.descriptors is not None
    np.testing.assert_array_equal(loaded.descriptors, _descriptors())

    meta = loaded.metadata
    assert meta.to_dict() == built.metadata.to_dict()
    assert (meta.model_spec, meta.image_size, meta.faiss_factory) == (SPEC, (480, 640), factory)
    assert meta.num_images == N and meta.descriptor_dim == DIM and meta.descriptor_dtype == "float32"
    assert meta.metric_frame == MetricFrame(33, True)
    assert meta.extra == {"checkpoint_sha256": "ab" * 32, "precision": "fp32"}
    on_disk = json.loads((path / "metadata.json").read_text())
    assert on_disk["format"] == "vgloc-index" and on_disk["format_version"] == FORMAT_VERSION
    assert sorted(p.name for p in path.iterdir()) == [
        "descriptors.npy",
        "images.parquet",
        "index.faiss",
        "metadata.json",
    ]


def test_round_trip_without_frame_or_latlon(tmp_path: Path) -> None:
    images = GeoImageSet(
        paths=[Path(f"q{i}.jpg") for i in range(N)],
        utm=np.random.default_rng(0).uniform(0, 1000, (N, 2)),
        latlon=np.full((N, 2), np.nan),
        heading=np.full(N, np.nan),
        frame=None,
    )
    built = GeoIndex.build(_descriptors(), images, model_spec=SPEC, image_size=None)
    loaded = GeoIndex.load(built.save(tmp_path / "ix"))
    _assert_same_images(images, loaded.images)
    assert loaded.metadata.image_size is None and loaded.metadata.metric_frame is None


def test_world_wide_manifest_round_trips(tmp_path: Path) -> None:
    # A CSV manifest with photos on several continents: no UTM frame, NaN utm, lat/lon kept.
    rng = np.random.default_rng(2)
    cities = np.array([[48.8566, 2.3522], [-33.8688, 151.2093], [40.7128, -74.0060], [-17.0, 180.0]])
    rows = []
    for i in range(N):
        lat, lon = cities[i % 4] + rng.uniform(-0.001, 0.001, 2)
        lon = (lon + 180) % 360 - 180
        write_image(tmp_path / "photos" / f"{i:03d}.jpg")
        rows.append(f"photos/{i:03d}.jpg,{float(lat)!r},{float(lon)!r}\n")
    (tmp_path / "world.csv").write_text("path,lat,lon\n" + "".join(rows))
    images = load_image_set(tmp_path / "world.csv", validate=False, progress=False)
    assert images.is_world and images.frame is None
    built = GeoIndex.build(_descriptors(), images, model_spec=SPEC, image_size=None)
    loaded = GeoIndex.load(built.save(tmp_path / "ix"))
    _assert_same_images(images, loaded.images)
    assert loaded.metadata.metric_frame is None and loaded.images.is_world
    want = positives(images, images, 100.0)
    for a, b in zip(positives(loaded.images, loaded.images, 100.0), want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_float16_descriptors_round_trip(tmp_path: Path) -> None:
    built = _build(descriptor_dtype="float16")
    path = built.save(tmp_path / "ix")
    loaded = GeoIndex.load(path)
    assert loaded.descriptors is not None and loaded.descriptors.dtype == np.float16
    np.testing.assert_array_equal(loaded.descriptors, _descriptors().astype(np.float16))
    assert loaded.metadata.descriptor_dtype == "float16"
    assert (path / "descriptors.npy").stat().st_size < N * DIM * 2 + 1024
    # the index itself was built from the full-precision descriptors
    np.testing.assert_array_equal(loaded.search(_queries(), 5)[1], _build().search(_queries(), 5)[1])


def test_descriptors_can_be_left_out(tmp_path: Path) -> None:
    path = _build(store_descriptors=False).save(tmp_path / "ix")
    assert not (path / "descriptors.npy").exists()
    loaded = GeoIndex.load(path)
    assert loaded.descriptors is None and not loaded.metadata.descriptors_stored
    assert GeoIndex.load(_build().save(tmp_path / "b"), load_descriptors=False).descriptors is None


# --------------------------------------------------------------------------- refusals


def test_load_refuses_other_model_or_dimension(tmp_path: Path) -> None:
    path = _build().save(tmp_path / "ix")
    with pytest.raises(IndexMismatchError, match=r"built with model 'resnet18\+gem\+fc32', expected 'dinov2"):
        GeoIndex.load(path, expect_model_spec="dinov2_vitb14+salad")
    with pytest.raises(IndexMismatchError, match="holds 32-d descriptors, expected 512-d"):
        GeoIndex.load(path, expect_descriptor_dim=512)


def _edit_metadata(path: Path, **changes: object) -> None:
    meta = json.loads((path / "metadata.json").read_text())
    meta.update(changes)
    (path / "metadata.json").write_text(json.dumps(meta))


def test_load_refuses_newer_or_foreign_format(tmp_path: Path) -> None:
    path = _build().save(tmp_path / "ix")
    _edit_metadata(path, format_version=FORMAT_VERSION + 1)
    with pytest.raises(IndexMismatchError, match=f"format version {FORMAT_VERSION + 1}.*newer vgloc"):
        GeoIndex.load(path)
    _edit_metadata(path, format="something-else", format_version=1)
    with pytest.raises(IndexCorruptError, match="not a vgloc index"):
        GeoIndex.load(path)
    (path / "metadata.json").write_text('{"format": "vgloc-in')
    with pytest.raises(IndexCorruptError, match=r"metadata\.json: corrupted metadata"):
        GeoIndex.load(path)
    (path / "metadata.json").unlink()
    with pytest.raises(IndexCorruptError, match=r"metadata\.json is missing"):
        GeoIndex.load(path)
    with pytest.raises(FileNotFoundError, match="no vgloc index directory"):
        GeoIndex.load(tmp_path / "nowhere")


def test_load_refuses_metadata_with_a_missing_or_bad_field(tmp_path: Path) -> None:
    path = _build().save(tmp_path / "ix")
    meta = json.loads((path / "metadata.json").read_text())
    del meta["model_spec"]
    (path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(IndexCorruptError, match="missing field 'model_spec'"):
        GeoIndex.load(path)
    _edit_metadata(path, model_spec=SPEC, image_size=[480, -1])
    with pytest.raises(IndexCorruptError, match="image_size must be"):
        GeoIndex.load(path)
    _edit_metadata(path, image_size=None, descriptor_dim="32")
    with pytest.raises(IndexCorruptError, match="field 'descriptor_dim' has invalid value '32'"):
        GeoIndex.load(path)


@pytest.mark.parametrize("name", ["index.faiss", "images.parquet", "descriptors.npy"])
def test_missing_truncated_or_corrupted_files_are_named(tmp_path: Path, name: str) -> None:
    path = _build().save(tmp_path / "ix")
    target = path / name
    data = target.read_bytes()

    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexCorruptError, match=rf"{name}: \d+ bytes.*truncated"):
        GeoIndex.load(path)

    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(flipped))
    with pytest.raises(IndexCorruptError, match=rf"{name}: SHA-256 does not match"):
        GeoIndex.load(path)

    target.unlink()
    with pytest.raises(IndexCorruptError, match=rf"{name} is missing"):
        GeoIndex.load(path)


def test_unreadable_faiss_file_is_named_even_without_checksums(tmp_path: Path) -> None:
    path = _build().save(tmp_path / "ix")
    target = path / "index.faiss"
    target.write_bytes(b"\0" * target.stat().st_size)  # right size, garbage
    with pytest.raises(IndexCorruptError, match=r"index\.faiss: cannot read the FAISS index"):
        GeoIndex.load(path, verify_checksums=False)


def _replace_file(path: Path, name: str, data: bytes) -> None:
    """Swap a file and record its new size/checksum, as a careless tool would."""
    (path / name).write_bytes(data)
    meta = json.loads((path / "metadata.json").read_text())
    meta["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (path / "metadata.json").write_text(json.dumps(meta))


def test_count_mismatch_between_faiss_and_images_is_refused(tmp_path: Path) -> None:
    path = _build().save(tmp_path / "ix")
    smaller = build_faiss_index(_descriptors()[: N - 1], "Flat")
    _replace_file(path, "index.faiss", faiss.serialize_index(smaller).tobytes())
    with pytest.raises(IndexCorruptError, match=f"holds {N - 1} vectors.*says {N} images"):
        GeoIndex.load(path)


def test_dimension_mismatch_inside_the_directory_is_refused(tmp_path: Path) -> None:
    path = _build().save(tmp_path / "ix")
    other = build_faiss_index(_descriptors(dim=16), "Flat")
    _replace_file(path, "index.faiss", faiss.serialize_index(other).tobytes())
    with pytest.raises(IndexCorruptError, match=r"dimension 16, metadata\.json says 32"):
        GeoIndex.load(path)


# --------------------------------------------------------------------------- atomic save


def test_failed_save_leaves_nothing_under_the_final_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = _build()

    def broken_write(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(faiss, "write_index", broken_write)
    with pytest.raises(RuntimeError, match="disk full"):
        index.save(tmp_path / "ix")
    assert list(tmp_path.iterdir()) == []  # neither the index nor a temporary left behind


def test_failed_save_keeps_the_older_index_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = _build(factory="Flat")
    path = old.save(tmp_path / "ix")
    before = {p.name: p.read_bytes() for p in path.iterdir()}

    new = GeoIndex.build(_descriptors(seed=5), _images(), model_spec="other+spec", image_size=None)
    real_write = faiss.write_index

    def write_then_fail(index: faiss.Index, name: str) -> None:
        real_write(index, name)  # the new index file is complete...
        raise OSError("killed")  # ...but the save dies before finishing the directory

    monkeypatch.setattr(faiss, "write_index", write_then_fail)
    with pytest.raises(OSError, match="killed"):
        new.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["ix"]
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    loaded = GeoIndex.load(path, expect_model_spec=SPEC)
    np.testing.assert_array_equal(loaded.search(_queries(), 5)[1], old.search(_queries(), 5)[1])


def test_save_replaces_an_index_but_never_another_directory(tmp_path: Path) -> None:
    path = _build().save(tmp_path / "ix")
    GeoIndex.build(_descriptors(), _images(), model_spec="v2", image_size=None).save(path)
    assert GeoIndex.load(path).metadata.model_spec == "v2"
    with pytest.raises(FileExistsError, match="overwrite=True"):
        _build().save(path, overwrite=False)

    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="not a vgloc index directory"):
        _build().save(precious)
    assert (precious / "thesis.tex").read_text() == "years of work"


# --------------------------------------------------------------------------- build checks


def test_build_validates_its_inputs() -> None:
    desc, images = _descriptors(), _images()
    with pytest.raises(ValueError, match="299 descriptors for 300 images"):
        GeoIndex.build(desc[:-1], images, model_spec=SPEC, image_size=None)
    with pytest.raises(ValueError, match="descriptor_dtype"):
        GeoIndex.build(desc, images, model_spec=SPEC, image_size=None, descriptor_dtype="int8")
    with pytest.raises(ValueError, match="image_size"):
        GeoIndex.build(desc, images, model_spec=SPEC, image_size=(480, 0))
    with pytest.raises(ValueError, match="model_spec"):
        GeoIndex.build(desc, images, model_spec="", image_size=None)
    with pytest.raises(ValueError, match="JSON-serialisable"):
        GeoIndex.build(desc, images, model_spec=SPEC, image_size=None, extra={"a": object()})
    with pytest.raises(ValueError, match="did you mean 'nprobe'"):
        GeoIndex.build(desc, images, model_spec=SPEC, image_size=None, search_params="nprob=4")


def test_search_uses_the_stored_default_params() -> None:
    index = _build(factory="IVF4,Flat", search_params="nprobe=4")
    _, ids = index.search(_queries(), 5)
    assert faiss.extract_index_ivf(index.index).nprobe == 4
    exact = _build(factory="Flat").search(_queries(), 5)[1]
    np.testing.assert_array_equal(ids, exact)  # nprobe = nlist is exact
    index.search(_queries(), 5, "nprobe=1")
    assert faiss.extract_index_ivf(index.index).nprobe == 1
