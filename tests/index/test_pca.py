"""PCA-whitening inside the index: fitted on the database, applied to queries, refused when it cannot work."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from tests.index._synthetic import sphere_centers, sphere_mixture
from tests.index.test_store import _images
from vgloc.index import GeoIndex, exact_search
from vgloc.index.append import append_to_geoindex
from vgloc.index.pca import check_pca, reduce

SPEC = "resnet18+gem+fc64"
N, DIM = 400, 64


def _data(n: int = N, seed: int = 1) -> np.ndarray:
    # 8 clusters in 64-d: most of the variance in few directions, as for real descriptors.
    return sphere_mixture(n, sphere_centers(8, DIM, seed=0), spread=0.6, seed=seed)[0]


def test_pca_index_reduces_the_database_and_the_queries(tmp_path: Path) -> None:
    desc, q = _data(), _data(40, seed=9)
    gi = GeoIndex.build(desc, _images(N), model_spec=SPEC, image_size=None, pca=16)
    assert gi.dim == DIM and gi.index.d == DIM  # queries come in the model's dimension
    assert gi.pca_dim == 16 and gi.descriptors is not None and gi.descriptors.shape == (N, 16)
    assert gi.metadata.extra["pca"] == {"dim": 16, "input_dim": DIM, "whiten": True, "fitted_on": "database"}
    np.testing.assert_allclose(np.linalg.norm(gi.descriptors, axis=1), 1.0, atol=1e-5)
    # The index applies the stored PCA: searching it equals exact search of the reduced queries.
    sims, ids = gi.search(q, 5)
    ref_s, ref_i = exact_search(gi.descriptors, reduce(gi.index, q), 5)
    np.testing.assert_array_equal(ids, ref_i)
    np.testing.assert_allclose(sims, ref_s, atol=1e-5)
    # Whitened 16-d neighbours still find the same cluster as the full 64-d ones.
    _, full = exact_search(desc, q, 1)
    labels = sphere_mixture(N, sphere_centers(8, DIM, seed=0), spread=0.6, seed=1)[1]
    assert np.mean(labels[ids[:, 0]] == labels[full[:, 0]]) >= 0.9

    gi.save(tmp_path / "idx")
    back = GeoIndex.load(tmp_path / "idx", expect_model_spec=SPEC, expect_descriptor_dim=DIM)
    np.testing.assert_array_equal(back.search(q, 5)[1], ids)
    assert isinstance(faiss.downcast_index(back.index), faiss.IndexPreTransform)


# Toy data forced onto the approximate index trains its codebooks on a few hundred vectors;
# that warning is tested in test_faiss_index.py and is noise here.
@pytest.mark.filterwarnings("ignore:faiss factory.*below faiss's recommended:UserWarning")
def test_pca_with_auto_keeps_every_stage_in_the_reduced_space() -> None:
    desc, q = _data(), _data(40, seed=9)
    gi = GeoIndex.build(
        desc, _images(N), model_spec=SPEC, image_size=None, factory="auto", exact_max=100, pca=16
    )
    outer = faiss.downcast_index(gi.index)
    assert isinstance(outer, faiss.IndexPreTransform)
    inner = faiss.downcast_index(outer.index)
    assert isinstance(inner, faiss.IndexRefine) and inner.d == 16  # re-ranking codes on 16-d vectors
    assert gi.metadata.extra["index_choice"]["num_vectors"] == N
    sims, ids = gi.search(q, 3)  # re-scored exactly with the stored reduced descriptors
    exact = np.einsum("qd,qkd->qk", reduce(gi.index, q), gi.descriptors[ids])
    np.testing.assert_allclose(sims, exact, atol=1e-5)


def test_appending_to_a_pca_index_stores_reduced_descriptors() -> None:
    desc = _data()
    gi = GeoIndex.build(
        desc[:300], _images(N).subset(np.arange(300)), model_spec=SPEC, image_size=None, pca=16
    )
    more = append_to_geoindex(gi, desc[300:], _images(N).subset(np.arange(300, N)))
    assert more.descriptors is not None and more.descriptors.shape == (N, 16)
    _, ids = more.search(desc[300:], 1)
    assert ids[:, 0].tolist() == list(range(300, N))  # each new image finds itself


@pytest.mark.parametrize(
    ("pca", "dim", "n", "match"),
    [
        (64, 64, 400, "smaller than the model's descriptor dimension 64"),
        (100, 64, 400, "smaller than"),
        (16, 64, 10, "at least 16 database images"),
        (0, 64, 400, "positive integer"),
        (True, 64, 400, "positive integer"),
        (8.0, 64, 400, "positive integer"),
    ],
)
def test_bad_pca_is_refused_clearly(pca: object, dim: int, n: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_pca(pca, dim, n)


def test_build_refuses_bad_pca_before_building() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        GeoIndex.build(_data(20), _images(20), model_spec=SPEC, image_size=None, pca=32)


def test_pca_without_whitening_is_an_orthogonal_projection() -> None:
    desc = _data()
    plain = GeoIndex.build(desc, _images(N), model_spec=SPEC, image_size=None, pca=16, pca_whiten=False)
    white = GeoIndex.build(desc, _images(N), model_spec=SPEC, image_size=None, pca=16)
    assert plain.metadata.extra["pca"]["whiten"] is False and white.metadata.extra["pca"]["whiten"] is True
    matrix = faiss.downcast_VectorTransform(faiss.downcast_index(plain.index).chain.at(0))
    a = faiss.vector_to_array(matrix.A).reshape(16, DIM)
    np.testing.assert_allclose(a @ a.T, np.eye(16), atol=1e-4)  # rows orthonormal: no scaling
    assert plain.descriptors is not None and white.descriptors is not None
    assert not np.allclose(plain.descriptors, white.descriptors, atol=1e-3)
