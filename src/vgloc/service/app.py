"""The HTTP service: one :class:`~vgloc.localizer.Localizer` behind a small FastAPI app.

Routes:
    ``POST /locate``                 an image (multipart field ``file``, or the raw bytes) -> JSON
    ``GET /health``                  model, index, queue and batching counters
    ``GET /matches/{id}/thumbnail``  a database image's thumbnail, by index row only
    ``GET /``                        the map page (Leaflet, served from ``/static``)
    ``GET /docs``, ``/openapi.json`` the API's documentation

Uploads are read with a size cap and checked from their header (format, pixel count)
before anything is decoded (:mod:`vgloc.service.limits`); the photo travels to the
model as bytes, never as a path, so no request can make the service read a file.
Concurrent requests are batched onto the model, through a bounded queue that answers
503 when full (:mod:`vgloc.service.batching`).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from string import Template
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from vgloc.data.validation import DataError
from vgloc.localizer import Localizer
from vgloc.predict import Prediction
from vgloc.service.batching import Batcher, QueueFullError
from vgloc.service.limits import UploadLimits, UploadRefusedError, check_image_header
from vgloc.service.schemas import ErrorResponse, Health, LocateResponse

__all__ = ["ServiceConfig", "create_app", "prediction_json"]

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
# A multipart body carries boundaries and part headers around the file.
MULTIPART_SLACK = 64 * 1024
MIN_RADIUS_M = 10.0
RAW_TYPES = ("application/octet-stream", "image/")


@dataclass(frozen=True)
class ServiceConfig:
    """How the service batches, limits and draws.

    Attributes:
        limits: upload size, pixel count and formats.
        max_batch: most photos per model call.
        max_wait_ms: how long a photo waits for others to share its model call.
        queue_size: most requests waiting or running; 503 beyond.
        tiles: a Leaflet tile URL template (``https://tile.example/{z}/{x}/{y}.png``);
            None draws markers and a scale on a plain background.
        tile_attribution: the attribution the tile provider requires.
        thumbnail_height: pixel height of match thumbnails.
    """

    limits: UploadLimits = field(default_factory=UploadLimits)
    max_batch: int = 8
    max_wait_ms: float = 5.0
    queue_size: int = 64
    tiles: str | None = None
    tile_attribution: str = ""
    thumbnail_height: int = 128


def _error(status: int, code: str, message: str) -> JSONResponse:
    body = ErrorResponse.model_validate({"error": {"status": status, "code": code, "message": message}})
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def display_radius_m(pred: Prediction) -> float | None:
    """Similarity-weighted RMS distance (m) from the prediction to its matches, at least 10 m.

    Only a visual aid for the page's circle: wide when the top matches disagree.
    """
    from vgloc.geo import haversine_m

    if not (math.isfinite(pred.lat) and pred.matches):
        return None
    d = [float(haversine_m(pred.lat, pred.lon, m.lat, m.lon)) for m in pred.matches]
    w = [max(m.similarity, 0.0) + 1e-6 for m in pred.matches]
    rms = math.sqrt(sum(wi * di * di for wi, di in zip(w, d, strict=True)) / sum(w))
    return max(rms, MIN_RADIUS_M) if math.isfinite(rms) else None


def prediction_json(pred: Prediction) -> dict[str, Any]:
    """The JSON of one prediction (without timings): NaN becomes null, paths are left out."""
    return {
        "lat": _finite(pred.lat),
        "lon": _finite(pred.lon),
        "utm_east": _finite(pred.utm_east),
        "utm_north": _finite(pred.utm_north),
        "confidence": float(pred.confidence),
        "radius_m": display_radius_m(pred),
        "method": pred.method,
        "matches": [
            {
                "rank": m.rank,
                "id": m.index,
                "lat": _finite(m.lat),
                "lon": _finite(m.lon),
                "similarity": float(m.similarity),
                "inliers": m.inliers,
                "thumbnail": f"/matches/{m.index}/thumbnail",
            }
            for m in pred.matches
        ],
    }


async def _read_capped(request: Request, cap: int, limits: UploadLimits) -> bytes:
    """The request body, refused (413) as soon as it passes ``cap`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        # Refused from the header alone: nothing of the body is read.
        raise UploadRefusedError(
            413, "too_large", f"upload of {declared} bytes exceeds the limit of {limits.max_bytes} bytes"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise UploadRefusedError(
                413, "too_large", f"upload exceeds the limit of {limits.max_bytes} bytes"
            )
    return bytes(body)


async def _multipart_file(request: Request, body: bytes) -> bytes:
    """The bytes of the multipart field ``file`` from an already-read ``body``."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=8)
    except Exception as exc:  # Starlette raises its HTTPException or MultiPartException
        raise UploadRefusedError(400, "bad_multipart", f"cannot parse the multipart form: {exc}") from exc
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise UploadRefusedError(400, "missing_file", "send the image as the multipart field 'file'")
    data = await upload.read()
    await form.close()
    return data


async def read_upload(request: Request, limits: UploadLimits) -> bytes:
    """The uploaded image bytes (multipart field ``file``, or a raw image body), capped.

    Raises:
        UploadRefusedError: too large (413), unsupported content type (415), bad or
            missing multipart field (400).
    """
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        body = await _read_capped(request, limits.max_bytes + MULTIPART_SLACK, limits)
        data = await _multipart_file(request, body)
    elif not ctype or ctype.startswith(RAW_TYPES):
        data = await _read_capped(request, limits.max_bytes, limits)
    else:
        raise UploadRefusedError(
            415,
            "unsupported_media_type",
            f"content type {ctype!r}: send multipart/form-data with a 'file' field, or the image bytes "
            "as image/* or application/octet-stream",
        )
    limits.check_size(len(data))
    return data


_UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in {
        400: "empty upload, bad multipart form, missing 'file' field",
        413: "upload too large, or too many pixels (decompression bomb)",
        415: "not an image, a format not accepted, or an unsupported content type",
        422: "the image header is fine but the image cannot be decoded",
        503: "the queue is full; retry after the Retry-After seconds",
    }.items()
}


def create_app(
    localizer: Localizer, config: ServiceConfig | None = None, *, owns_localizer: bool = False
) -> FastAPI:
    """The FastAPI app serving ``localizer``.

    Args:
        localizer: loaded once, shared by every request (its calls are serialised).
        config: limits, batching and map settings.
        owns_localizer: close the localizer when the app shuts down.

    Returns:
        The app (run it with uvicorn; its lifespan starts and stops the batcher).
    """
    config = config or ServiceConfig()
    limits = config.limits
    batcher: Batcher[bytes, Prediction] = Batcher(
        localizer.locate,
        max_batch=config.max_batch,
        max_wait_ms=config.max_wait_ms,
        capacity=config.queue_size,
    )
    images = localizer.index.images

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            if owns_localizer:
                localizer.close()

    app = FastAPI(
        title="vgloc",
        summary="Visual geo-localization: where was this photo taken?",
        description="Upload a photo to `POST /locate`; the answer is a position, a confidence and the "
        "database images that support it. See docs/service.md.",
        lifespan=lifespan,
    )
    app.state.localizer = localizer
    app.state.batcher = batcher
    app.state.config = config
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(UploadRefusedError)
    async def refused(_: Request, exc: UploadRefusedError) -> JSONResponse:
        return _error(exc.status, exc.code, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid_request", "; ".join(str(e.get("msg", e)) for e in exc.errors()))

    @app.post(
        "/locate",
        response_model=LocateResponse,
        responses=_ERRORS,
        openapi_extra=_UPLOAD_DOC,
        summary="Locate one photo",
    )
    async def locate(request: Request) -> Any:
        """Predict where the uploaded photo was taken, with its top matches."""
        t0 = time.perf_counter()
        data = await read_upload(request, limits)
        check_image_header(data, limits)
        checked = time.perf_counter()
        try:
            result = await batcher.submit(data)
        except QueueFullError as exc:
            return _error(503, "queue_full", str(exc))
        except DataError as exc:
            return _error(422, "cannot_decode", str(exc).replace("<bytes #0>", "upload"))
        out = prediction_json(result.value)
        out["timings"] = {
            "check_ms": (checked - t0) * 1000.0,
            "queue_ms": result.queue_ms,
            "model_ms": result.run_ms,
            "total_ms": (time.perf_counter() - t0) * 1000.0,
            "batch_size": result.batch_size,
        }
        return out

    @app.get("/health", response_model=Health, summary="Service state")
    async def health() -> Any:
        """The model, the index size, the queue and the batching counters so far."""
        reranker = localizer.reranker
        return {
            "status": "ok",
            "model": localizer.describer.spec,
            "images": len(images),
            "method": localizer.method,
            "rerank": None if reranker is None else str(reranker.spec),
            "queue": {"pending": batcher.pending, "capacity": batcher.capacity},
            "batching": {**batcher.stats.as_dict(), "max_batch": batcher.max_batch},
            "limits": {**asdict(limits), "formats": list(limits.formats)},
        }

    @functools.lru_cache(maxsize=512)
    def thumbnail_bytes(row: int) -> bytes:
        from vgloc.data.images import load_image

        image = load_image(images.paths[row])
        h = config.thumbnail_height
        image.thumbnail((max(1, round(h * image.width / image.height)), h))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
        return buffer.getvalue()

    @app.get(
        "/matches/{id}/thumbnail",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}, 404: {"model": ErrorResponse}},
        summary="Thumbnail of a database image",
    )
    def thumbnail(id: int) -> Response:
        """The JPEG thumbnail of database image ``id`` (its row in the index)."""
        if not 0 <= id < len(images):
            return _error(404, "not_found", f"no database image {id}; ids run from 0 to {len(images) - 1}")
        try:
            data = thumbnail_bytes(id)
        except DataError as exc:
            log.warning("thumbnail %d: %s", id, exc)
            return _error(404, "not_found", f"database image {id} is not readable on the server")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=3600"})

    page = Template((HERE / "templates" / "index.html").read_text(encoding="utf-8"))
    page_config = {
        "tiles": config.tiles,
        "attribution": config.tile_attribution,
        "maxBytes": limits.max_bytes,
        "formats": list(limits.formats),
    }
    # "</" must not close the page's <script> early, whatever the tile URL holds.
    html = page.substitute(config=json.dumps(page_config).replace("</", "<\\/"))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index_page() -> HTMLResponse:
        return HTMLResponse(html)

    return app
