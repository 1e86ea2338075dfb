"""Training: CosPlace classes/groups (:mod:`~vgloc.training.groups`), VG benchmark triplet
mining (:mod:`~vgloc.training.mining`), and the training loops.

Import the submodules directly (``from vgloc.training.mining import TripletMiner``); this
package imports nothing itself, so importing it stays cheap.
"""
