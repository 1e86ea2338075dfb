"""The torch exact search (the GPU path) against FAISS's exact search, run on CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vgloc.index.faiss_search import exact_search
from vgloc.index.torch_search import torch_exact_search


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("chunk_rows", [7, 64, 10_000])
def test_same_neighbours_as_faiss_exact_search_at_any_chunking(chunk_rows: int) -> None:
    rng = np.random.default_rng(0)
    db, q = _unit(rng, 300, 32), _unit(rng, 25, 32)
    ref_s, ref_i = exact_search(db, q, 10)
    s, i = torch_exact_search(db, q, 10, device="cpu", chunk_rows=chunk_rows, query_rows=8)
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_allclose(s, ref_s, atol=1e-5)


def test_ties_go_to_the_smaller_id_and_k_is_clipped() -> None:
    db = np.repeat(np.eye(4, dtype=np.float32), 3, axis=0)  # rows 0-2 equal, 3-5 equal, ...
    q = np.eye(4, dtype=np.float32)[[1]]
    s, i = torch_exact_search(db, q, 50, device="cpu", chunk_rows=2)
    assert i.shape == (1, 12)
    assert i[0, :3].tolist() == [3, 4, 5]
    assert s[0, 0] == pytest.approx(1.0) and s[0, -1] == pytest.approx(0.0)


def test_float16_databases_and_tensors_on_the_device() -> None:
    rng = np.random.default_rng(1)
    db, q = _unit(rng, 100, 16), _unit(rng, 5, 16)
    ref_s, ref_i = exact_search(db.astype(np.float16), q, 5)
    s, i = torch_exact_search(torch.from_numpy(db.astype(np.float16)), q, 5, device="cpu")
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_allclose(s, ref_s, atol=1e-5)


def test_bad_arguments_are_refused() -> None:
    db = np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match="k must be"):
        torch_exact_search(db, db, 0, device="cpu")
    with pytest.raises(ValueError, match="dimension"):
        torch_exact_search(db, np.ones((2, 5), np.float32), 1, device="cpu")
    with pytest.raises(ValueError, match="2-D"):
        torch_exact_search(db[0], db, 1, device="cpu")


def test_an_exact_index_searches_on_the_describers_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """GeoIndex.search(device=cuda) takes the torch path for Flat indexes (CPU stands in for the GPU)."""
    from vgloc.data.records import GeoImageSet
    from vgloc.index import GeoIndex, torch_search

    rng = np.random.default_rng(2)
    db, q = _unit(rng, 40, 8), _unit(rng, 3, 8)
    paths = [Path(f"{i}.jpg") for i in range(40)]
    images = GeoImageSet.from_latlon(paths, np.full(40, 55.7), np.linspace(13.1, 13.2, 40))
    gi = GeoIndex.build(db, images, model_spec="tiny+gem", image_size=None, factory="Flat")
    ref = gi.search(q, 5)
    calls: list[str] = []

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(str(kwargs["device"]))
        return torch_exact_search(*args, **{**kwargs, "device": "cpu"})

    monkeypatch.setattr(torch_search, "torch_exact_search", spy)
    got = gi.search(q, 5, device="cuda")
    assert calls == ["cuda"]
    np.testing.assert_array_equal(got[1], ref[1])
    np.testing.assert_allclose(got[0], ref[0], atol=1e-5)
    gi.search(q, 5, device="cpu")  # FAISS on the CPU
    assert calls == ["cuda"]
    assert torch_search.searches_on_gpu("cuda:1") and not torch_search.searches_on_gpu(None)
