"""Listing the image files of a folder, and the problems seen on the way.

Shared by every folder layout (:mod:`vgloc.data.layouts`): which extensions are
images, which are refused with a reason, files whose content says "image" under
another extension, broken links, duplicates through symbolic links.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

#: Image files read in every layout (compared case-insensitively).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: Read when Pillow has a plugin for them (pillow-heif for HEIC/HEIF; AVIF is built in
#: to recent Pillow); otherwise reported as unsupported.
PLUGIN_EXTENSIONS: tuple[str, ...] = (".heic", ".heif", ".avif")
#: Image formats that are not read; a folder holding them is refused rather than
#: silently loading only part of it.
UNSUPPORTED_IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".gif", ".jfif", ".jpe", ".jp2", ".j2k", ".jxl", ".ico", ".ppm", ".pgm", ".pbm",
    ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf", ".raw",
)  # fmt: skip
MANIFEST_EXTENSIONS: tuple[str, ...] = (".csv", ".parquet")

# Leading bytes of image formats, for files whose extension hides what they are.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)


# ----------------------------------------------------------------------------- scanning


@dataclass
class Scan:
    """The image files of a folder and the problems seen while listing it."""

    root: Path
    images: list[Path] = field(default_factory=list)  # absolute, sorted by relative path
    problems: list[str] = field(default_factory=list)
    ignored: int = 0
    manifests: list[str] = field(default_factory=list)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


@functools.lru_cache(maxsize=1)
def _register_optional_plugins() -> None:
    """Register pillow-heif's opener when it is installed (done once, only when needed)."""
    try:
        module: Any = importlib.import_module("pillow_heif")
    except ImportError:
        return
    module.register_heif_opener()


def _pillow_reads(ext: str) -> bool:
    """True when Pillow can open files with extension ``ext`` (plugins included)."""
    if ext in PLUGIN_EXTENSIONS:
        _register_optional_plugins()
    Image.init()
    return ext in Image.registered_extensions()


def _sniff(path: Path) -> str | None:
    """The image format a file's first bytes announce, or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return None
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return None


def _walk(root: Path, recursive: bool) -> list[Path]:
    """Files (and broken links) under ``root``; hidden files and folders (``.name``) are skipped."""
    if not recursive:
        return [
            p
            for p in root.iterdir()
            if not p.name.startswith(".") and (p.is_file() or (p.is_symlink() and not p.exists()))
        ]
    out: list[Path] = []
    seen_dirs: set[tuple[int, int]] = set()
    # Symlinked folders are followed (datasets are often assembled from links);
    # the (device, inode) set stops link cycles.
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        base = Path(dirpath)
        for name in filenames:
            if not name.startswith("."):
                p = base / name
                # Broken links are kept so that a missing image is reported, not skipped.
                if p.is_file() or (p.is_symlink() and not p.exists()):
                    out.append(p)
    return out


def scan_folder(root: Path, recursive: bool) -> Scan:
    """List the image files of ``root`` (absolute, sorted by relative path)."""
    scan = Scan(root=root)
    for path in _walk(root, recursive):
        ext = path.suffix.lower()
        rel = path.relative_to(root).as_posix()
        if not path.exists():
            if ext in IMAGE_EXTENSIONS + PLUGIN_EXTENSIONS:
                scan.problems.append(f"{rel}: broken symbolic link (to {os.readlink(path)})")
            else:
                scan.ignored += 1
        elif ext in IMAGE_EXTENSIONS:
            scan.images.append(path)
        elif ext in PLUGIN_EXTENSIONS:
            if _pillow_reads(ext):
                scan.images.append(path)
            else:
                hint = "pip install pillow-heif" if ext in (".heic", ".heif") else "a newer Pillow"
                scan.problems.append(f"{rel}: {ext} images need a Pillow plugin ({hint})")
        elif ext in UNSUPPORTED_IMAGE_EXTENSIONS:
            scan.problems.append(
                f"{rel}: {ext} images are not supported; convert to one of "
                f"{', '.join(IMAGE_EXTENSIONS)} or move the file out of the folder"
            )
        elif ext in MANIFEST_EXTENSIONS:
            scan.manifests.append(rel)
            scan.ignored += 1
        elif (fmt := _sniff(path)) is not None:
            # An image under a wrong extension would silently go missing from the set.
            scan.problems.append(
                f"{rel}: looks like a {fmt} image but its extension {ext or '(none)'!r} is not "
                f"an image extension; rename it (e.g. to .jpg/.png) or move it out of the folder"
            )
        else:
            scan.ignored += 1
    scan.images.sort(key=scan.rel)
    scan.problems.sort()
    return scan


def duplicate_problems(paths: Sequence[Path], labels: Sequence[str]) -> list[tuple[int, str]]:
    """(index, problem) for paths that name the same file (literally or through symlinks)."""
    first: dict[str, int] = {}
    problems = []
    for i, p in enumerate(paths):
        key = os.path.normcase(os.path.realpath(p))
        if key in first:
            problems.append((i, f"{labels[i]}: same file as {labels[first[key]]} (duplicate path)"))
        else:
            first[key] = i
    return problems
