"""Fixtures of the service tests: a Lund index built with a tiny random model, and app factories."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

pytest.importorskip(
    "fastapi", reason="the service needs the 'serve' extra (fastapi, uvicorn, python-multipart)"
)

from fastapi.testclient import TestClient

import vgloc
from vgloc.describers import ExtractionOptions
from vgloc.service.app import ServiceConfig, create_app

# Small images keep the tiny random network fast (it still ranks a photo first against itself);
# torch skips the one-off ONNX export that the automatic engine would make for 12 images.
OPTIONS = ExtractionOptions(image_size=(96, 128), progress=False, engine="torch")
LUND_IMAGES = 12


@pytest.fixture(scope="session")
def lund_index(lund_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 12 Lund photos (01.jpg ... 12.jpg) indexed with ``tiny+gem`` (random weights, seed 0)."""
    from vgloc.data import load_image_set

    images = load_image_set(lund_dir, progress=False)
    first = [i for i, p in enumerate(images.paths) if int(Path(p).stem) <= LUND_IMAGES]
    out = tmp_path_factory.mktemp("service") / "lund.idx"
    vgloc.build_index(images.subset(first), "tiny+gem", out, options=OPTIONS, validate=False, seed=0)
    return out


@pytest.fixture(scope="session")
def localizer(lund_index: Path) -> Iterator[vgloc.Localizer]:
    """One Localizer shared by the in-process API tests (as the service shares one)."""
    with vgloc.Localizer.load(lund_index, top_k=3, options=OPTIONS) as loc:
        yield loc


@pytest.fixture
def make_client(localizer: vgloc.Localizer) -> Iterator[Callable[..., TestClient]]:
    """``make_client(config=None, locate=None)``: a started TestClient over the shared localizer;
    ``locate`` replaces the model call (e.g. to hold a batch), the localizer itself is not closed."""
    clients: list[TestClient] = []

    def make(
        config: ServiceConfig | None = None, locate: Callable[[list[Any]], Any] | None = None
    ) -> TestClient:
        target: Any = localizer
        if locate is not None:
            target = _Wrapped(localizer, locate)
        client = TestClient(create_app(target, config))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


class _Wrapped:
    """The shared localizer with another ``locate`` (everything else delegated)."""

    def __init__(self, inner: vgloc.Localizer, locate: Callable[[list[Any]], Any]) -> None:
        self._inner = inner
        self.locate = locate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's
    signature: the file is small, the canvas it asks for is huge)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    # IHDR is the first chunk: 8-byte signature, 4-byte length, b"IHDR", then width, height.
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def encoded(image: Image.Image, fmt: str) -> bytes:
    """``image`` encoded as ``fmt`` (a Pillow format name)."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()
