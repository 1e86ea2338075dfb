"""The HTTP API in process: a Lund photo is located, every bad input gets a clear 4xx, load is batched."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

import vgloc
from tests.service.conftest import LUND_IMAGES, encoded, png_claiming
from vgloc.service.app import ServiceConfig
from vgloc.service.limits import UploadLimits

MakeClient = Callable[..., TestClient]


def _upload(client: TestClient, data: bytes, name: str = "photo.jpg", ctype: str = "image/jpeg") -> Any:
    return client.post("/locate", files={"file": (name, data, ctype)})


def _error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["status"] == status and body["error"]["code"] == code, body
    return str(body["error"]["message"])


def test_a_lund_photo_is_located_like_the_localizer_does(
    make_client: MakeClient, localizer: vgloc.Localizer, lund_dir: Path
) -> None:
    photo = lund_dir / "07.jpg"
    [expected] = localizer.locate([photo])
    client = make_client()
    body = _upload(client, photo.read_bytes()).json()
    raw = client.post("/locate", content=photo.read_bytes(), headers={"content-type": "image/jpeg"}).json()
    for got in (body, raw):
        assert got["lat"] == pytest.approx(expected.lat, abs=1e-9)
        assert got["lon"] == pytest.approx(expected.lon, abs=1e-9)
        assert got["confidence"] == pytest.approx(expected.confidence)
        assert [m["id"] for m in got["matches"]] == [m.index for m in expected.matches]
    # The photo is in the database: its own entry comes first, at its own EXIF position.
    top = body["matches"][0]
    assert Path(localizer.index.images.paths[top["id"]]).name == "07.jpg"
    assert (top["lat"], top["lon"]) == pytest.approx(tuple(localizer.index.images.latlon[top["id"]]))
    assert top["thumbnail"] == f"/matches/{top['id']}/thumbnail"
    assert body["radius_m"] >= 10 and body["method"] == "nearest"
    timings = body["timings"]
    assert timings["batch_size"] == 1 and timings["total_ms"] >= timings["model_ms"] > 0
    assert "path" not in str(body)  # server paths are not leaked


def test_thumbnails_are_served_by_index_id_only(make_client: MakeClient, localizer: vgloc.Localizer) -> None:
    client = make_client(ServiceConfig(thumbnail_height=40))
    response = client.get("/matches/3/thumbnail")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    thumb = Image.open(__import__("io").BytesIO(response.content))
    with Image.open(localizer.index.images.paths[3]) as full:
        assert thumb.height == 40 and thumb.width == pytest.approx(40 * full.width / full.height, abs=1)
    n = len(localizer.index.images)
    assert "ids run from 0" in _error(client.get(f"/matches/{n}/thumbnail"), 404, "not_found")
    _error(client.get("/matches/-1/thumbnail"), 404, "not_found")
    _error(client.get("/matches/..%2F..%2Fetc%2Fpasswd/thumbnail"), 404, "not_found")
    _error(client.get("/matches/etc/thumbnail"), 422, "invalid_request")


def test_every_bad_upload_is_a_clear_4xx(make_client: MakeClient, lund_dir: Path) -> None:
    calls: list[int] = []

    def counting(photos: list[Any]) -> Any:
        calls.append(len(photos))
        raise AssertionError("a refused upload must not reach the model")

    photo = (lund_dir / "01.jpg").read_bytes()
    limits = UploadLimits(max_bytes=len(photo) + 10, max_pixels=1024 * 768, formats=("JPEG", "PNG"))
    client = make_client(ServiceConfig(limits=limits), locate=counting)
    big = photo + b"\0" * 100
    _error(_upload(client, big), 413, "too_large")
    _error(client.post("/locate", content=big, headers={"content-type": "image/jpeg"}), 413, "too_large")
    # Chunked, with no Content-Length to refuse up front: cut off while streaming.
    chunks = iter([photo, b"\0" * 100])
    _error(client.post("/locate", content=chunks, headers={"content-type": "image/jpeg"}), 413, "too_large")
    _error(_upload(client, b""), 400, "empty")
    _error(_upload(client, png_claiming(200_000, 200_000), "bomb.png", "image/png"), 413, "too_many_pixels")
    _error(_upload(client, encoded(Image.new("RGB", (1025, 768)), "PNG"), "x.png"), 413, "too_many_pixels")
    gif = encoded(Image.new("RGB", (8, 8)), "GIF")
    assert "JPEG, PNG" in _error(_upload(client, gif, "x.gif", "image/gif"), 415, "format_not_allowed")
    # A request cannot name a file on the server: a path is just bytes that are not an image.
    _error(_upload(client, b"/etc/passwd", "passwd", "text/plain"), 415, "not_an_image")
    _error(client.post("/locate", json={"path": "/etc/passwd"}), 415, "unsupported_media_type")
    _error(client.post("/locate", files={"photo": ("x.jpg", photo, "image/jpeg")}), 400, "missing_file")
    _error(
        client.post("/locate", data={"file": "/etc/passwd"}, files={"other": ("a", b"b")}),
        400,
        "missing_file",
    )
    _error(
        client.post(
            "/locate", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data; boundary=x"}
        ),
        400,
        "missing_file",
    )
    _error(client.get("/locate"), 405, "method_not_allowed")
    assert calls == []


def test_a_declared_oversize_body_is_refused_from_its_header(make_client: MakeClient) -> None:
    client = make_client(ServiceConfig(limits=UploadLimits(max_bytes=1000)))
    message = _error(
        client.post(
            "/locate", content=b"x" * 10, headers={"content-type": "image/jpeg", "content-length": "999999"}
        ),
        413,
        "too_large",
    )
    assert "999999" in message


def test_an_image_that_fails_to_decode_is_422(make_client: MakeClient, lund_dir: Path) -> None:
    photo = (lund_dir / "01.jpg").read_bytes()
    truncated = photo[: len(photo) // 2]  # the header is fine, half the pixels are gone
    response = _upload(make_client(), truncated)
    assert "cannot" in _error(response, 422, "cannot_decode")


def test_page_static_files_and_openapi(make_client: MakeClient) -> None:
    client = make_client(ServiceConfig(tiles="https://tiles.example/{z}/{x}/{y}.png</script>"))
    page = client.get("/")
    assert page.status_code == 200 and "/static/leaflet/leaflet.js" in page.text
    assert "https://tiles.example/{z}/{x}/{y}.png<\\/script>" in page.text  # cannot close the script
    assert client.get("/static/leaflet/leaflet.js").text.startswith("/* @preserve\n * Leaflet 1.9.4")
    assert client.get("/static/leaflet/images/marker-icon.png").headers["content-type"] == "image/png"
    assert client.get("/static/vgloc.js").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/locate", "/health", "/matches/{id}/thumbnail"} <= set(schema["paths"])
    upload = schema["paths"]["/locate"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert {"200", "413", "415", "503"} <= set(upload["responses"])
    assert client.get("/docs").status_code == 200
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"] == "tiny+gem" and health["images"] == LUND_IMAGES


def test_simultaneous_requests_are_all_answered_and_batched(make_client: MakeClient, lund_dir: Path) -> None:
    localizer_calls: list[int] = []
    first_call = threading.Event()
    release = threading.Event()
    client_holder: dict[str, TestClient] = {}

    def held_locate(photos: list[Any]) -> Any:
        # Hold the first model call until the other requests are queued, so the
        # batching is certain rather than a matter of timing.
        localizer_calls.append(len(photos))
        first_call.set()
        release.wait(10)
        return real_locate(photos)

    client = make_client(ServiceConfig(max_batch=8, max_wait_ms=2, queue_size=32), locate=held_locate)
    client_holder["c"] = client
    real_locate = client.app.state.localizer._inner.locate  # type: ignore[attr-defined]
    photos = [(lund_dir / f"{i:02d}.jpg").read_bytes() for i in range(1, 10)]
    with ThreadPoolExecutor(len(photos)) as pool:
        first = pool.submit(_upload, client, photos[0])
        assert first_call.wait(10)
        rest = [pool.submit(_upload, client, p) for p in photos[1:]]
        deadline = time.monotonic() + 30
        while client.get("/health").json()["queue"]["pending"] < len(photos) and time.monotonic() < deadline:
            time.sleep(0.01)
        release.set()
        responses = [first.result(timeout=30)] + [f.result(timeout=30) for f in rest]
    assert [r.status_code for r in responses] == [200] * len(photos)
    # Each photo of the database finds itself first, batched or not.
    names = [
        Path(client.app.state.localizer.index.images.paths[r.json()["matches"][0]["id"]]).name
        for r in responses
    ]  # type: ignore[attr-defined]
    assert names == [f"{i:02d}.jpg" for i in range(1, 10)]
    assert localizer_calls == [1, 8]
    assert [r.json()["timings"]["batch_size"] for r in responses] == [1] + [8] * 8
    batching = client.get("/health").json()["batching"]
    assert batching["batches"] == 2 and batching["max_batch_seen"] == 8 and batching["items"] == 9


def test_a_full_queue_answers_503(make_client: MakeClient, lund_dir: Path) -> None:
    release = threading.Event()

    def held_locate(photos: list[Any]) -> Any:
        release.wait(10)
        return real_locate(photos)

    client = make_client(ServiceConfig(max_batch=1, max_wait_ms=0, queue_size=2), locate=held_locate)
    real_locate = client.app.state.localizer._inner.locate  # type: ignore[attr-defined]
    photo = (lund_dir / "05.jpg").read_bytes()
    try:
        with ThreadPoolExecutor(2) as pool:
            held = [pool.submit(_upload, client, photo) for _ in range(2)]
            deadline = time.monotonic() + 30
            while client.get("/health").json()["queue"]["pending"] < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            refused = _upload(client, photo)
            assert "capacity 2" in _error(refused, 503, "queue_full")
            assert refused.headers["retry-after"] == "1"
            release.set()
            assert [f.result(timeout=30).status_code for f in held] == [200, 200]
    finally:
        release.set()
    assert _upload(client, photo).status_code == 200  # room again
    assert client.get("/health").json()["batching"]["rejected"] == 1
