"""``vgloc locate`` from the command line (the API itself is tested in tests/test_api.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vgloc.cli import main


def test_missing_input_is_one_clear_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Photo and index are both missing: whichever the API checks first must be named
    # in a single error line, with exit status 1 and no traceback on the console.
    code = main(["locate", str(tmp_path / "nope.jpg"), "--index", str(tmp_path / "idx")])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR ") and err.count("\n") == 1, err
    assert "nope.jpg" in err or str(tmp_path / "idx") in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("flag", "drafted"), [([], None), (["--no-jpeg-draft"], False)])
def test_no_jpeg_draft_reaches_the_query_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: list[str], drafted: bool | None
) -> None:
    import types

    import vgloc.api
    from vgloc.index import GeoIndex

    seen: list[object] = []
    monkeypatch.setattr(vgloc.api, "locate", lambda *a, options=None, **k: seen.append(options) or [])
    monkeypatch.setattr(
        GeoIndex, "read_metadata", staticmethod(lambda path: types.SimpleNamespace(image_size=(48, 64)))
    )
    assert main(["locate", str(tmp_path / "photo.jpg"), "--index", str(tmp_path / "idx"), *flag]) == 0
    # Without the flag the index's own options apply (drafting, the default); with it the
    # queries are decoded in full at the index's image size.
    if drafted is None:
        assert seen == [None]
    else:
        assert seen[0].jpeg_draft is drafted and seen[0].image_size == (48, 64)  # type: ignore[attr-defined]
