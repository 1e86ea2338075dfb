"""The JSON the service answers, as pydantic models (they also document /openapi.json)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["ErrorBody", "ErrorResponse", "Health", "LocateResponse", "MatchOut", "Timings"]


class MatchOut(BaseModel):
    """One retrieved database image."""

    rank: int = Field(description="1 = most similar")
    id: int = Field(description="row of the image in the index; its thumbnail is /matches/{id}/thumbnail")
    lat: float | None = Field(description="latitude in degrees (null when the index has UTM only)")
    lon: float | None
    similarity: float = Field(description="descriptor similarity (or fused score after re-ranking)")
    inliers: int | None = Field(default=None, description="geometric-verification inliers when re-ranked")
    thumbnail: str = Field(description="URL of the database image's thumbnail")


class Timings(BaseModel):
    """Where the time of one request went, in milliseconds."""

    check_ms: float = Field(description="reading and checking the upload (size, header, format)")
    queue_ms: float = Field(description="waiting for the model")
    model_ms: float = Field(description="the model call, shared with the other photos of its batch")
    total_ms: float
    batch_size: int = Field(description="photos located together in that model call")


class LocateResponse(BaseModel):
    """The predicted position of one uploaded photo."""

    lat: float | None = Field(description="predicted latitude (null when the index has UTM only)")
    lon: float | None
    utm_east: float | None = None
    utm_north: float | None = None
    confidence: float = Field(
        description="share of the similarity-weighted top neighbours that agree with the point "
        "(1 = all agree); ranks predictions, not a probability"
    )
    radius_m: float | None = Field(
        description="display radius: similarity-weighted RMS distance of the top matches to the "
        "prediction (at least 10 m); a visual aid, not a calibrated error bound"
    )
    method: str
    matches: list[MatchOut]
    timings: Timings


class ErrorBody(BaseModel):
    """Why a request was refused."""

    status: int
    code: str = Field(description="stable reason: too_large, too_many_pixels, not_an_image, queue_full, ...")
    message: str


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer of the service has this shape."""

    error: ErrorBody


class Health(BaseModel):
    """The service's state: model, index, queue and batching counters."""

    status: str
    model: str
    images: int
    method: str
    rerank: str | None
    queue: dict[str, int]
    batching: dict[str, Any]
    limits: dict[str, Any]
