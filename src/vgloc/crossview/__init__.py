"""Cross-view geo-localization: street views located and oriented against aerial tiles.

Modules (one capability each):

- :mod:`vgloc.crossview.losses`: the pair/triplet/DBL/InfoNCE losses, registered in
  :data:`vgloc.registry.CROSSVIEW_LOSSES` (:func:`create_crossview_loss`).
- :mod:`vgloc.crossview.gradcache`: two-pass gradient caching for large contrastive batches.
- :mod:`vgloc.crossview.data`: (street view, aerial tile) pairs from the synthetic city or a CSV.
- :mod:`vgloc.crossview.network`: the two-branch network, aerial rotations, the orientation head.
- :mod:`vgloc.crossview.pairnet`: the study's pair classifiers (``classification``, ``hybrid``).
- :mod:`vgloc.crossview.train` / :mod:`vgloc.crossview.evaluate`: training loop, checkpoints, metrics.

See docs/crossview.md. Reference: Vo & Hays, "Localizing and Orienting Street Views
Using Overhead Imagery", ECCV 2016.
"""

# Importing the package registers every network kind in vgloc.registry.CROSSVIEW_NETWORKS
# (the embedding network with vgloc.crossview.network, the pair classifiers here), so that
# any checkpoint loads whichever module is imported first.
from vgloc.crossview import pairnet as _pairnet  # noqa: F401
