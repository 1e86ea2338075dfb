"""Loading learned weights for the kornia-based extractors and matchers.

A learned model (DISK, ALIKED, LightGlue, LoFTR) gets its weights from, in order:

1. a file the user gives (``weights="/path/to/file.pth"``), loaded with
   ``torch.load(weights_only=True)`` (tensors only: no code runs from the file);
2. otherwise kornia's ``from_pretrained`` path, which looks in the torch hub cache
   (``$TORCH_HOME/hub/checkpoints``) and downloads the published file on a miss,
   unless ``download=False``.

Anything else ends in :class:`WeightsUnavailableError`, whose message says what
was tried and how to pass a file. Random weights are never used silently.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class WeightsUnavailableError(RuntimeError):
    """Learned weights could not be found or downloaded; the message says how to provide them."""


def hub_checkpoint_dir() -> Path:
    """The torch hub checkpoint cache that kornia's downloads go to."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def file_digest(path: str | os.PathLike[str], length: int = 16) -> str:
    """The first ``length`` hex digits of a file's SHA-256 (identifies a weights file in cache metadata)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


def load_weights_file(path: str | os.PathLike[str], what: str, keys: Sequence[str] = ()) -> dict[str, Any]:
    """Load a state dict from a user-given file.

    Args:
        path: the checkpoint (``.pth``/``.pt``/``.ckpt``).
        what: the model's name, for messages.
        keys: nesting keys to unwrap when present (e.g. ``"extractor"`` for DISK's
            ``depth-save.pth``, ``"state_dict"`` for LoFTR's ``.ckpt``).

    Returns:
        The state dict.

    Raises:
        FileNotFoundError: the file does not exist.
        WeightsUnavailableError: the file cannot be read as a tensor-only checkpoint.
    """
    import torch

    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{what}: weights file {p} does not exist")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a bad file
        raise WeightsUnavailableError(
            f"{what}: cannot load weights file {p} as a tensor-only checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    for key in keys:
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise WeightsUnavailableError(
            f"{what}: weights file {p} holds a {type(state).__name__}, not a state dict"
        )
    return dict(state)


def pretrained_or_error(
    what: str,
    build: Callable[[], T],
    urls: Sequence[str],
    *,
    download: bool,
    option_hint: str,
) -> T:
    """Build a pretrained model through kornia, or fail saying what was tried.

    Args:
        what: the model and checkpoint, for messages (e.g. ``"DISK ('depth')"``).
        build: a callable that returns the pretrained model (kornia's ``from_pretrained``).
        urls: the published URLs kornia tries (for the message).
        download: when False, nothing is attempted and the error explains how to pass a file.
        option_hint: how to pass a file in this context, e.g.
            ``"DISKExtractor(weights=...)"``.

    Returns:
        Whatever ``build`` returns.

    Raises:
        WeightsUnavailableError: ``download`` is False, or the cache and every URL failed.
    """
    cache = hub_checkpoint_dir()
    howto = (
        f"Download the file on a machine with internet access and pass it with {option_hint}, "
        f"or copy it into the torch hub cache {cache}."
    )
    if not download:
        raise WeightsUnavailableError(
            f"{what}: no weights file was given and download=False. Published weights: {list(urls)}. {howto}"
        )
    try:
        with warnings.catch_warnings():
            # kornia warns once per failed attempt; the error below names the last failure.
            warnings.simplefilter("ignore")
            return build()
    except Exception as exc:  # network, HTTP and corrupt-file errors all mean "not available"
        raise WeightsUnavailableError(
            f"{what}: no weights file was given; tried the torch hub cache {cache} and downloading "
            f"{list(urls)}, which failed ({type(exc).__name__}: {exc}). {howto}"
        ) from exc
