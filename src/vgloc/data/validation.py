"""Image validation: find every unreadable or truncated image before a long run starts.

A corrupt file usually surfaces hours into descriptor extraction, one file per
crash. :func:`validate_images` opens every image up front (``verify`` for the
container; a JPEG's end-of-image marker, or a real decode, to catch truncation)
and reports *all* bad files in one :class:`DataError`, so the user fixes the data
in one go. Complete JPEGs are not decoded here: extraction decodes them anyway and
names any file whose pixel data still fails.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from PIL import Image
from tqdm.contrib.concurrent import thread_map

# Long error messages help nobody: list this many problems, then a count of the rest.
MAX_LISTED_PROBLEMS = 20

T = TypeVar("T")
R = TypeVar("R")


class DataError(ValueError):
    """Input data that cannot be used: bad files, rows or layouts.

    Attributes:
        problems: one line per bad file/row (all of them, not only those in the message).
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems: list[str] = list(problems)


def format_problems(header: str, problems: Sequence[str], limit: int = MAX_LISTED_PROBLEMS) -> str:
    """Format a header and the first ``limit`` problems as one message, with a count of the rest.

    Args:
        header: the first line, e.g. ``"3 images cannot be read"``.
        problems: one line per problem.
        limit: how many problems to list.

    Returns:
        The multi-line message.
    """
    lines = [header + ":"] + [f"  - {p}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more ({len(problems)} in total)")
    return "\n".join(lines)


def raise_problems(where: str, problems: Sequence[str], what: str = "problem") -> None:
    """Raise one :class:`DataError` listing ``problems`` (does nothing when there are none).

    The message reads ``"<where>: <count> <what>(s):"`` followed by the first
    :data:`MAX_LISTED_PROBLEMS` problems and a count of the rest.

    Args:
        where: the file or folder concerned, e.g. ``"manifest /data/db.csv"``.
        problems: one line per problem.
        what: the noun counted, singular.
    """
    if problems:
        n = len(problems)
        header = f"{where}: {n} {what}{'' if n == 1 else 's'}"
        raise DataError(format_problems(header, problems), problems)


def parallel_map(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    workers: int = 2,
    progress: bool = True,
    desc: str = "",
) -> list[R]:
    """Apply ``fn`` to every item on a thread pool, keeping the input order.

    Threads suit this work: opening and decoding images is file I/O plus C code
    that releases the GIL, and threads need no pickling.

    Args:
        fn: the function; it should catch its own expected errors.
        items: the inputs.
        workers: thread count (>= 1).
        progress: show a tqdm progress bar.
        desc: the progress bar's label.

    Returns:
        ``[fn(x) for x in items]``.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if len(items) == 0:
        return []
    # tqdm's thread_map preserves order (Executor.map) and shows one progress bar.
    return list(
        thread_map(
            fn,
            items,
            max_workers=workers,
            disable=not progress,
            desc=desc,
            total=len(items),
        )
    )


def _jpeg_is_complete(path: str | os.PathLike[str]) -> bool:
    """Whether a JPEG file ends with its end-of-image marker (FF D9), ignoring zero padding.

    Truncation, by far the most common corruption (interrupted downloads and copies),
    removes the marker; entropy-coded data cannot contain FF D9 (FF bytes are stuffed),
    so a file that ends with it was written to the end.
    """
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 1024))
        tail = fh.read().rstrip(b"\x00")
    return tail.endswith(b"\xff\xd9")


def check_image(path: str | os.PathLike[str]) -> str | None:
    """Check one image; return why it is unusable, or None when it is fine.

    The container is checked with ``Image.verify``. A JPEG that ends with its
    end-of-image marker is not decoded here (the extraction's own decode names the
    file if its pixel data is still corrupt), so images are decoded once, not twice;
    a JPEG without the marker (truncated, or with trailing data) and every other
    format get a real ``load`` (``verify`` alone misses truncation), JPEGs in draft
    mode at 1/8 scale, which still reads every byte of the entropy-coded data.

    Args:
        path: the image file.

    Returns:
        None for a good image, else a short reason (without the path).
    """
    try:
        with warnings.catch_warnings():
            # A decompression-bomb warning is about size, not integrity; big panoramas are fine.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                fmt = im.format
                if im.width < 1 or im.height < 1:
                    return f"empty image ({im.width}x{im.height})"
                im.verify()
            if fmt == "JPEG" and _jpeg_is_complete(path):
                return None
            with Image.open(path) as im:
                if im.format == "JPEG":
                    im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
                im.load()
                if im.width < 1 or im.height < 1:
                    return f"empty image ({im.width}x{im.height})"
    except FileNotFoundError:
        return "file not found"
    except Image.UnidentifiedImageError:
        return "not an image Pillow can read (unknown or corrupt format)"
    except Image.DecompressionBombError as exc:
        return f"too large to decode safely ({exc})"
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncation as OSError and bad headers as SyntaxError.
        return f"corrupt or truncated ({type(exc).__name__}: {exc})"
    return None


def find_bad_images(
    paths: Iterable[str | os.PathLike[str]], *, workers: int = 2, progress: bool = True
) -> list[str]:
    """The problems of :func:`validate_images` as a list instead of an exception.

    Args:
        paths: image files.
        workers: thread count.
        progress: show a progress bar.

    Returns:
        One ``"<path>: <reason>"`` line per bad image, in input order.
    """
    path_list = [Path(p) for p in paths]
    reasons = parallel_map(
        check_image, path_list, workers=workers, progress=progress, desc="validating images"
    )
    return [f"{p}: {r}" for p, r in zip(path_list, reasons, strict=True) if r is not None]


def validate_images(
    paths: Iterable[str | os.PathLike[str]], *, workers: int = 2, progress: bool = True
) -> None:
    """Open and fully decode every image; raise one error listing all bad ones.

    Args:
        paths: image files.
        workers: threads used to open images in parallel.
        progress: show a tqdm progress bar.

    Raises:
        DataError: listing every unreadable, corrupt or truncated image with its reason
            (the first 20 in the message, all of them in ``DataError.problems``).
    """
    raise_problems(
        "image validation", find_bad_images(paths, workers=workers, progress=progress), what="bad image"
    )
