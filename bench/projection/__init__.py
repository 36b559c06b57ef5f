"""The serving model and device profiles: what a device or a cluster of devices would do, projected from
published figures -- never measured, and labelled simulated wherever it appears.

Parts: device profiles with a status and source per figure (`profiles`); a decoder's serving view from its
published config (`arch`); collectives (`interconnect`); efficiency factors per device kind (`efficiency`); the
serving model itself -- one engine step of one chip, memory per chip, the search over splits and batch
(`serving`); one projection with its low/high figures (`project`); its validation against published results
(`published`) and against this host (`hostcheck`); and the simulated serving cell (`cell`).

Pure Python over published configs and device figures: nothing here imports torch or allocates weights (an
import contract checks it). Backends reach this layer only from `backends.simulated`, through the names below.
"""

from bench.projection.cell import SERVING_CELL_OPTIONS, CellProjection, cell_projection
from bench.projection.profiles import PROFILES_ENV, Profile, get_profile, load_profiles

__all__ = [
    "cell_projection",
    "CellProjection",
    "SERVING_CELL_OPTIONS",
    "Profile",
    "get_profile",
    "load_profiles",
    "PROFILES_ENV",
]
