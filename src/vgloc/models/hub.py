"""Published models by name: one resolver for every entry of :data:`vgloc.registry.PUBLISHED_MODELS`.

``--model NAME`` in every command and ``create_model(NAME, weights=FILE_OR_NONE)`` come
here. A name is a :class:`~vgloc.models.published.PublishedModel` registered by the
module of its architecture (``megaloc``, ``salad``, ``boq-dinov2``, ...) or one of the
CosPlace / EigenPlaces release files (``"cosplace:resnet50+gem+fc2048"``, from
:data:`vgloc.models.pretrained.PUBLISHED_WEIGHTS`, registered here so that both kinds
resolve the same way).

The weights are a local copy of the published file when one is given (container dict,
``module.`` prefix and ``.safetensors`` are undone by the checkpoint loader, then the
entry's ``convert_keys``), else ``<torch hub dir>/checkpoints/<filename>``: fetched from
the entry's ``url`` (refused when its SHA-256 differs from the published one) or built
by ``torch.hub.load`` from its ``hub_repo`` and saved there as a state dict. Offline,
:class:`~vgloc.models.pretrained.WeightsDownloadError` names the file, the URL or
repository tried, where to put a copy, and ``--checkpoint FILE``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from vgloc.models.pretrained import _RELEASES, PUBLISHED_WEIGHTS, WeightsDownloadError, hub_checkpoint_dir
from vgloc.models.published import Preprocessing, PublishedModel
from vgloc.registry import PUBLISHED_MODELS, UnknownNameError

if TYPE_CHECKING:
    from vgloc.models.model import GeoLocalizationModel

__all__ = [
    "find_published",
    "get_published",
    "load_published",
    "published_file",
    "published_for_weights",
    "published_models",
]

log = logging.getLogger(__name__)


def _author_keys(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """CosPlace / EigenPlaces ``aggregation.*`` keys -> vgloc's (see ``convert_author_keys``)."""
    from vgloc.models.checkpoints import convert_author_keys

    return convert_author_keys(sd)[0]


# CosPlace and EigenPlaces evaluate at full resolution with ImageNet normalisation
# (PROTOCOLS.md 2.3: no resize unless --resize_test_imgs), so their entries say native size.
for _key, _pw in PUBLISHED_WEIGHTS.items():
    PUBLISHED_MODELS.register(
        _key,
        PublishedModel(
            name=_key,
            spec=_pw.spec,
            descriptor_dim=_pw.descriptor_dim,
            preprocessing=Preprocessing(image_size=None),
            source=f"{_pw.description}; github.com/gmberton/{'CosPlace' if _pw.source == 'cosplace' else 'EigenPlaces'}",
            filename=_pw.filename,
            url=_pw.url,
            convert_keys=_author_keys,
            description=_pw.description,
        ),
        description=_pw.description,
    )


# -- published models by name: one resolver for every entry of PUBLISHED_MODELS ----------------
def published_models() -> list[PublishedModel]:
    """Every registered published model, sorted by name."""
    return [PUBLISHED_MODELS.get(n) for n in PUBLISHED_MODELS.names()]


def find_published(name: str) -> PublishedModel | None:
    """The published model called ``name``, or None when ``name`` is not one (e.g. a spec).

    Names match case-insensitively; in ``"<source>:<spec>"`` names the spec part may
    be written in any form :class:`~vgloc.models.spec.ModelSpec` accepts
    (``"cosplace:ResNet50+GeM+FC2048"``).
    """
    if not isinstance(name, str) or not name.strip():
        return None
    name = name.strip()
    if name in PUBLISHED_MODELS:
        return PUBLISHED_MODELS.get(name)
    lowered = {n.lower(): n for n in PUBLISHED_MODELS.names()}
    if name.lower() in lowered:
        return PUBLISHED_MODELS.get(lowered[name.lower()])
    source, sep, rest = name.partition(":")
    if sep and source.lower() in _RELEASES:
        from vgloc.models.spec import ModelSpec

        try:
            key = f"{source.lower()}:{ModelSpec.parse(rest)}"
        except (ValueError, KeyError):
            return None
        if key in PUBLISHED_MODELS:
            return PUBLISHED_MODELS.get(key)
    return None


def get_published(name: str) -> PublishedModel:
    """Like :func:`find_published`, but an unknown name raises with close matches."""
    entry = find_published(name)
    if entry is None:
        raise UnknownNameError(PUBLISHED_MODELS.unknown_message(name))
    return entry


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _published_help(entry: PublishedModel, tried: str, dst: Path, err: BaseException) -> str:
    """The offline message: the file, what was tried, where a copy is picked up, --checkpoint."""
    return (
        f"could not fetch the weights of published model {entry.name!r} (file {entry.filename}) "
        f"from {tried} ({type(err).__name__}: {err}). If this machine is offline, download that "
        f"file elsewhere and put it at {dst} (<torch hub dir>/checkpoints/{entry.filename}; set "
        f"TORCH_HOME to move it), or pass it directly: --model {entry.name} --checkpoint FILE "
        f"(Python: create_model({entry.name!r}, weights=FILE))."
    )


def _hub_target(entry: PublishedModel) -> tuple[str, str | None]:
    """``owner/repo[:entrypoint]`` -> (repo, entrypoint or None)."""
    assert entry.hub_repo is not None
    repo, _, entrypoint = entry.hub_repo.partition(":")
    return repo, entrypoint or None


def _fetch_from_hub(entry: PublishedModel, dst: Path) -> None:
    """Build the authors' model with ``torch.hub.load`` and save its state dict at ``dst``.

    The authors' hubconf is their code, run because the user asked for this model by name.
    """
    from vgloc.io import atomic_path

    repo, entrypoint = _hub_target(entry)
    if entrypoint is None:
        names = torch.hub.list(repo, trust_repo=True)
        if len(names) != 1:
            raise ValueError(f"{repo} has entrypoints {names}: name one as hub_repo='{repo}:<entrypoint>'")
        entrypoint = names[0]
    net = torch.hub.load(repo, entrypoint, trust_repo=True, **dict(entry.hub_kwargs))
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    with atomic_path(dst) as tmp:
        torch.save(state, tmp)


def _fetch_from_url(entry: PublishedModel, dst: Path) -> None:
    """Download ``entry.url`` to ``dst`` atomically, refusing a file whose SHA-256 differs."""
    from vgloc.io import atomic_path

    assert entry.url is not None
    with atomic_path(dst) as tmp:
        torch.hub.download_url_to_file(entry.url, os.fspath(tmp), progress=True)
        if entry.sha256 is not None:
            got = _sha256(tmp)
            if got != entry.sha256.lower():
                # Raised inside atomic_path: the temporary is removed, dst never appears.
                raise ValueError(
                    f"refusing the download of {entry.name!r} from {entry.url}: its sha256 is {got}, "
                    f"but {entry.sha256} is published (corrupted or changed file)"
                )


def published_file(entry: PublishedModel, local: str | os.PathLike[str] | None = None) -> Path:
    """The local file holding ``entry``'s published weights, fetching it when needed.

    Args:
        entry: The published model.
        local: A local copy of the published file (``--checkpoint FILE``); used as is.

    Returns:
        ``local``, or ``<torch hub dir>/checkpoints/<entry.filename>`` (fetched from
        ``entry.url``, checked against ``entry.sha256``, or built from ``entry.hub_repo``
        when not there yet).

    Raises:
        FileNotFoundError: ``local`` does not exist.
        WeightsDownloadError: Not cached and could not be fetched (offline).
        ValueError: The downloaded file's SHA-256 differs from the published one.
    """
    if local is not None:
        path = Path(local).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file not found: {path} (a local copy of {entry.name!r})")
        return path
    dst = hub_checkpoint_dir() / entry.filename
    if dst.is_file():
        return dst
    if entry.url is None and entry.hub_repo is None:
        raise WeightsDownloadError(
            f"published model {entry.name!r} names no download source: put its file at {dst} "
            f"or pass --checkpoint FILE"
        )
    dst.parent.mkdir(parents=True, exist_ok=True)
    tried = entry.url if entry.url is not None else f"torch.hub repository {entry.hub_repo}"
    log.info("fetching the weights of %s from %s", entry.name, tried)
    try:
        if entry.url is not None:
            _fetch_from_url(entry, dst)
        else:
            _fetch_from_hub(entry, dst)
    except ValueError:
        raise
    except Exception as err:  # urllib, socket, git and guard errors all end up here
        raise WeightsDownloadError(_published_help(entry, tried, dst, err)) from err
    return dst


def load_published(model: GeoLocalizationModel, entry: PublishedModel, path: str | os.PathLike[str]) -> None:
    """Load a published file (or a vgloc model file of the same spec) into ``model``, strictly.

    The authors' container and ``module.`` prefix are removed, then ``entry.convert_keys``
    maps their key names onto the spec's; a vgloc model file is already in vgloc's layout.
    """
    from vgloc.models.checkpoints import load_state_dict_compat

    load_state_dict_compat(model, path, strict=True, convert_keys=entry.convert_keys)


def published_for_weights(spec: str, weights: str) -> PublishedModel | None:
    """The published model that ``weights`` names for the architecture ``spec``, if any.

    For ``--model SPEC --checkpoint NAME`` where NAME is not a file: a release source
    (``"cosplace"``, ``"eigenplaces"``: its release for ``spec``), a full
    ``"<source>:<spec>"`` name, or a published model's name whose spec is ``spec``.

    Raises:
        ValueError: ``weights`` names published weights of another architecture, or a
            source without a release for ``spec``.
    """
    from vgloc.models.spec import ModelSpec

    canonical = str(ModelSpec.parse(spec))
    if weights.lower() in _RELEASES:
        entry = find_published(f"{weights.lower()}:{canonical}")
        if entry is None:
            avail = sorted(pw.spec for pw in PUBLISHED_WEIGHTS.values() if pw.source == weights.lower())
            raise ValueError(
                f"{weights} released no weights for {canonical!r}; available: {', '.join(avail)}"
            )
        return entry
    entry = find_published(weights)
    if entry is not None and entry.spec != canonical:
        raise ValueError(f"published weights {entry.name!r} are for {entry.spec!r}, not for {canonical!r}")
    return entry
