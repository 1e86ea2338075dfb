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
