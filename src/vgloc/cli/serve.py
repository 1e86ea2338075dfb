"""``vgloc serve``: the HTTP API and the map page over one index (see docs/service.md)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from vgloc.cli.command import Command, register
from vgloc.cli.options import add_rerank_options, add_runtime_options, positive_float, positive_int

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``vgloc serve``."""
    p.add_argument("--index", type=Path, required=True, help="index directory from `vgloc index build`")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)"
    )
    p.add_argument(
        "--port", type=int, default=8000, help="port to listen on (default: 8000; 0 = any free port)"
    )
    p.add_argument("--top-k", type=positive_int, default=5, help="matches returned per photo (default: 5)")
    p.add_argument(
        "--method",
        default="nearest",
        choices=["nearest", "kde"],
        help="position predictor (default: nearest)",
    )
    p.add_argument("--search-params", default=None, help="FAISS search parameters, e.g. nprobe=32")
    p.add_argument(
        "--tiles",
        default=None,
        metavar="URL_TEMPLATE",
        help="map tiles for the page, a Leaflet URL template such as https://tile.example/{z}/{x}/{y}.png "
        "(default: none; markers and a scale on a plain background)",
    )
    p.add_argument("--tile-attribution", default="", help="attribution text the tile provider requires")
    g = p.add_argument_group("limits and batching")
    g.add_argument(
        "--max-upload-mb", type=positive_float, default=20.0, help="largest upload (default: 20 MB)"
    )
    g.add_argument(
        "--max-pixels",
        type=positive_int,
        default=40_000_000,
        help="largest width x height, read from the header before decoding (default: 40e6)",
    )
    g.add_argument(
        "--formats",
        default="JPEG,PNG,WEBP",
        help="accepted image formats, Pillow names (default: JPEG,PNG,WEBP)",
    )
    g.add_argument(
        "--max-batch", type=positive_int, default=8, help="most photos per model call (default: 8)"
    )
    g.add_argument(
        "--batch-wait-ms",
        type=float,
        default=5.0,
        help="how long a photo waits for others to share its model call (default: 5 ms)",
    )
    g.add_argument(
        "--queue-size",
        type=positive_int,
        default=64,
        help="most requests waiting or running; more are answered 503 (default: 64)",
    )
    add_rerank_options(p)
    add_runtime_options(p)


def build_app(args: argparse.Namespace) -> Any:
    """The app for parsed ``args``: everything is checked, then the index and model are loaded once."""
    from vgloc.describers import ExtractionOptions
    from vgloc.localizer import Localizer

    try:
        from vgloc.service.app import ServiceConfig, create_app
        from vgloc.service.limits import UploadLimits
    except ImportError as exc:  # fastapi/uvicorn are an optional extra
        raise RuntimeError(
            f"vgloc serve needs the 'serve' extra: pip install 'vgloc[serve]' ({exc})"
        ) from exc

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in 0..65535, got {args.port}")
    if args.batch_wait_ms < 0:
        raise ValueError(f"--batch-wait-ms must be >= 0, got {args.batch_wait_ms}")
    if not args.index.is_dir():
        raise FileNotFoundError(f"index not found: {args.index}")
    formats = tuple(f.strip().upper() for f in args.formats.split(",") if f.strip())
    config = ServiceConfig(
        limits=UploadLimits(
            max_bytes=int(args.max_upload_mb * 1024 * 1024), max_pixels=args.max_pixels, formats=formats
        ),
        max_batch=args.max_batch,
        max_wait_ms=args.batch_wait_ms,
        queue_size=args.queue_size,
        tiles=args.tiles,
        tile_attribution=args.tile_attribution,
    )
    from vgloc.index import GeoIndex

    size = GeoIndex.read_metadata(args.index).image_size
    localizer = Localizer.load(
        args.index,
        method=args.method,
        top_k=args.top_k,
        search_params=args.search_params,
        options=ExtractionOptions(image_size=size, device=args.device, progress=False),
        rerank=args.rerank,
        rerank_k=args.rerank_k,
        rerank_cache=args.rerank_cache,
        rerank_fusion=args.rerank_fusion,
    )
    log.info("serving %r", localizer)
    return create_app(localizer, config, owns_localizer=True)


def run(args: argparse.Namespace) -> int:
    """Load the index once and serve until interrupted."""
    app = build_app(args)
    import uvicorn

    # vgloc's own logging is already set up by the CLI; uvicorn adds its access log.
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


COMMAND = register(
    Command(
        name="serve",
        help="serve the HTTP API and the map page over an index",
        description="Load an index once and answer POST /locate (an image upload) with a position, a "
        "confidence and the top matches; GET / is a map page to drop photos on, GET /docs the API. "
        "Uploads are limited in size, pixels and format; concurrent requests are batched onto the "
        "model and a full queue answers 503. See docs/service.md.",
        add_arguments=add_arguments,
        run=run,
    )
)
