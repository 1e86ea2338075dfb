"""A procedural city for smoke tests, demos and training experiments of visual place recognition.

It writes datasets in the field's layout (``images/{train,val,test}/{database,queries,...}``
with ``@UTM_east@UTM_north@...@.jpg`` names) with the domain shifts the literature
studies: night, fog, occlusion and viewpoint changes, plus aerial tiles for cross-view work.

Example:
    >>> from vgloc.data.synthetic import generate_city
    >>> root = generate_city("data/synth-tiny", size="tiny", seed=0)  # doctest: +SKIP

Public API: :func:`generate_city`, :data:`SIZES` (:data:`SIZES_DOC` has the counts),
:class:`CityMap`, :func:`render_view`, :func:`render_aerial`, :class:`Conditions`,
:func:`contact_sheet`.
"""

from vgloc.data.synthetic.citymap import DEFAULT_ANCHOR, SIZES, SPLITS, CityMap, CitySize, PoseSet
from vgloc.data.synthetic.contact import contact_sheet
from vgloc.data.synthetic.generate import FOLDERS, QUERY_FOLDERS, SIZES_DOC, generate_city, is_complete
from vgloc.data.synthetic.render import (
    DEFAULT_FOV_DEG,
    DEFAULT_IMAGE_SIZE,
    DOMAINS,
    Conditions,
    Occluder,
    render_aerial,
    render_view,
)

__all__ = [
    "DEFAULT_ANCHOR",
    "DEFAULT_FOV_DEG",
    "DEFAULT_IMAGE_SIZE",
    "DOMAINS",
    "FOLDERS",
    "QUERY_FOLDERS",
    "SIZES",
    "SIZES_DOC",
    "SPLITS",
    "CityMap",
    "CitySize",
    "Conditions",
    "Occluder",
    "PoseSet",
    "contact_sheet",
    "generate_city",
    "is_complete",
    "render_aerial",
    "render_view",
]
