"""``vgloc serve`` from the command line (the service itself is tested in tests/service/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vgloc.cli import build_parser, main

pytest.importorskip("fastapi", reason="vgloc serve needs the 'serve' extra")

# The service tests' Lund index (12 photos, tiny random model), reused here.
from tests.service.conftest import lund_index  # noqa: F401


def test_missing_index_is_one_clear_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["serve", "--index", str(tmp_path / "nope.idx"), "--port", "0"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR ") and "nope.idx" in err and "Traceback" not in err


def test_bad_options_are_refused_before_loading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--index", str(tmp_path), "--port", "70000"]) == 1
    assert "--port" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["serve", "--index", str(tmp_path), "--max-batch", "0"])
    assert info.value.code == 2


def test_serve_runs_uvicorn_with_the_options(
    lund_index: Path,  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
    lund_dir: Path,
) -> None:
    import uvicorn
    from fastapi.testclient import TestClient

    seen: dict[str, Any] = {}

    def fake_run(app: Any, **kwargs: Any) -> None:
        seen.update(kwargs, app=app)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    argv = ["serve", "--index", str(lund_index), "--host", "127.0.0.2", "--port", "8123", "--top-k", "2"]
    argv += [
        "--max-upload-mb",
        "0.01",
        "--formats",
        "png",
        "--queue-size",
        "3",
        "--tiles",
        "http://t/{z}/{x}/{y}.png",
    ]
    assert main(argv) == 0
    assert (seen["host"], seen["port"]) == ("127.0.0.2", 8123)
    with TestClient(seen["app"]) as client:
        health = client.get("/health").json()
        assert health["queue"]["capacity"] == 3 and health["model"] == "tiny+gem"
        assert health["limits"]["formats"] == ["PNG"] and health["limits"]["max_bytes"] == 10485
        assert "http://t/{z}/{x}/{y}.png" in client.get("/").text
        jpeg = (lund_dir / "01.jpg").read_bytes()
        assert client.post("/locate", content=jpeg, headers={"content-type": "image/jpeg"}).status_code == 413
