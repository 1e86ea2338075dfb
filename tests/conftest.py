"""Test-wide fixtures: no test may reach the network, and shared data is located once."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# CI clones the repo with the workplace's shared/ folder beside it; VGLOC_SHARED overrides.
SHARED = Path(os.environ.get("VGLOC_SHARED", REPO_ROOT.parent / "shared"))
LUND_DIR = SHARED / "data" / "lund-exif-gps"
CHECKPOINT_FIXTURES = SHARED / "fixtures" / "checkpoints"


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Point vgloc's cache (ONNX exports, generated cities) at a folder of this test session."""
    old = os.environ.get("VGLOC_CACHE")
    os.environ["VGLOC_CACHE"] = str(tmp_path_factory.mktemp("vgloc-cache"))
    yield
    if old is None:
        os.environ.pop("VGLOC_CACHE", None)
    else:
        os.environ["VGLOC_CACHE"] = old


class NetworkAccessError(RuntimeError):
    """Raised when a test tries to open a network connection (e.g. a weight download)."""


@pytest.fixture(autouse=True)
def _block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that attempts a non-local connection (downloads included).

    Connections to loopback stay allowed for the HTTP-service tests, and AF_UNIX
    sockets stay allowed for torch.distributed / multiprocessing.
    """
    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: object) -> object:
        if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            host = str(address[0])
            if host not in ("127.0.0.1", "::1", "localhost") and not host.startswith("127."):
                raise NetworkAccessError(f"test tried to reach the network: {address!r}")
        return real_connect(self, address)  # type: ignore[arg-type]

    def guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if host not in (None, "localhost", "127.0.0.1", "::1") and not str(host).startswith("127."):
            raise NetworkAccessError(f"test tried to resolve a network host: {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)


@pytest.fixture(scope="session")
def lund_dir() -> Path:
    """The real Lund photos with EXIF GPS; skips the test when the shared folder is absent."""
    if not LUND_DIR.is_dir():
        pytest.skip(f"shared data not found at {LUND_DIR} (set VGLOC_SHARED)")
    return LUND_DIR


@pytest.fixture(scope="session")
def checkpoint_fixtures() -> Path:
    """The published-checkpoint fixtures; skips the test when the shared folder is absent."""
    if not CHECKPOINT_FIXTURES.is_dir():
        pytest.skip(f"checkpoint fixtures not found at {CHECKPOINT_FIXTURES} (set VGLOC_SHARED)")
    return CHECKPOINT_FIXTURES


@pytest.fixture(scope="session")
def tiny_city_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic city (seconds to generate), shared by the end-to-end tests."""
    from vgloc.data.synthetic import generate_city

    return generate_city(tmp_path_factory.mktemp("city") / "tiny", "tiny", 0, progress=False, workers=1)
