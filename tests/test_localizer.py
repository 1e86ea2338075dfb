"""The Localizer: loaded once, locates paths, PIL images, arrays and bytes alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vgloc
from vgloc.describers import ExtractionOptions

OPTIONS = ExtractionOptions(image_size=(96, 128), batch_size=8, progress=False)


@pytest.fixture(scope="module")
def city_index(tiny_city_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    from vgloc.data import load_split

    split = load_split(tiny_city_root, "test")
    out = tmp_path_factory.mktemp("loc") / "idx"
    vgloc.build_index(split.database, "tiny+gem", out, options=OPTIONS, validate=False)
    return out, list(split.queries["queries"].paths)


def test_every_input_kind_gets_the_prediction_of_its_file(city_index: tuple[Path, list[Path]]) -> None:
    index, queries = city_index
    q = queries[0]
    with vgloc.Localizer.load(index, method="kde", top_k=3) as localizer:
        preds = localizer.locate([q, Image.open(q), np.asarray(Image.open(q).convert("RGB")), q.read_bytes()])
    assert [p.query for p in preds] == [str(q), "<image #1>", "<array #2>", "<bytes #3>"]
    for p in preds[1:]:
        assert p.lat == pytest.approx(preds[0].lat, abs=1e-9) and p.lon == pytest.approx(
            preds[0].lon, abs=1e-9
        )
        assert [m.index for m in p.matches] == [m.index for m in preds[0].matches]
    assert len(preds[0].matches) == 3 and preds[0].method == "kde"


def test_one_localizer_loads_the_model_once_for_many_calls(
    city_index: tuple[Path, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from vgloc.describers.net import NetDescriber

    index, queries = city_index
    loads = []
    original = NetDescriber.load_from_index.__func__  # type: ignore[attr-defined]

    def counting(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
        loads.append(1)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(NetDescriber, "load_from_index", classmethod(counting))
    localizer = vgloc.Localizer.load(index)
    batch = localizer.locate(queries * 4)
    one_by_one = [localizer.locate_one(q) for q in queries * 4]
    assert len(loads) == 1
    assert [p.matches[0].index for p in batch] == [p.matches[0].index for p in one_by_one]


def test_locate_function_matches_the_localizer(city_index: tuple[Path, list[Path]]) -> None:
    index, queries = city_index
    via_function = vgloc.locate(queries[:3], index, top_k=2)
    via_object = vgloc.Localizer.load(index, top_k=2).locate(queries[:3])
    assert [p.to_dict() for p in via_function] == [p.to_dict() for p in via_object]


def test_bad_inputs_fail_before_anything_is_described(
    city_index: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    index, queries = city_index
    localizer = vgloc.Localizer.load(index)
    with pytest.raises(FileNotFoundError, match="not found"):
        localizer.locate([queries[0], tmp_path / "missing.jpg"])
    from vgloc.data import DataError

    with pytest.raises(DataError, match="cannot decode"):
        localizer.locate([b"not an image"])
    with pytest.raises(DataError, match="must be"):
        localizer.locate([np.zeros((4, 4, 7), np.uint8)])
    with pytest.raises(ValueError, match="top_k"):
        vgloc.Localizer.load(index, top_k=0)
    with pytest.raises(ValueError, match="prediction method"):
        vgloc.Localizer.load(index, method="median")
    assert localizer.locate([]) == []


def test_in_memory_photos_are_re_ranked_like_their_files(city_index: tuple[Path, list[Path]]) -> None:
    index, queries = city_index
    q = queries[1]
    with vgloc.Localizer.load(index, rerank="rootsift+mnn+ransac", rerank_k=5, top_k=5) as localizer:
        from_file, from_bytes = localizer.locate([q, q.read_bytes()])
    assert from_file.matches[0].inliers is not None
    assert [(m.index, m.inliers) for m in from_bytes.matches] == [
        (m.index, m.inliers) for m in from_file.matches
    ]
