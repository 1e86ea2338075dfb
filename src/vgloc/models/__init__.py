"""Model zoo: spec strings -> global-descriptor models, weights, extraction.

Example:
    >>> from vgloc.models import create_model
    >>> model = create_model("resnet18+gem+fc512")          # random init
    >>> model = create_model("resnet50+gem+fc2048", weights="cosplace")  # downloads
    >>> model.descriptor_dim
    2048

Importing this package registers the backbones, aggregators and heads in
:mod:`vgloc.registry`; nothing is downloaded until weights are asked for.
"""

from vgloc.models import (  # noqa: F401  (registers components and published entries)
    aggregators,
    backbones,
    boq,
    convap,
    cricavpr,
    dinov2,
    heads,
    megaloc,
    mixvpr,
    salad,
)
from vgloc.models.aggregators import initialize_netvlad
from vgloc.models.backbones import freeze_early_layers
from vgloc.models.checkpoints import load_model, load_state_dict_compat, save_model
from vgloc.models.extract import extract_descriptors
from vgloc.models.factory import ModelRow, create_model, list_models
from vgloc.models.model import GeoLocalizationModel
from vgloc.models.spec import ModelSpec

__all__ = [
    "GeoLocalizationModel",
    "ModelRow",
    "ModelSpec",
    "create_model",
    "extract_descriptors",
    "freeze_early_layers",
    "initialize_netvlad",
    "list_models",
    "load_model",
    "load_state_dict_compat",
    "save_model",
]
