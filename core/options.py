"""Options shared by training and mapping: how tiles are read and where the model runs."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class TileOptions:
    """How tiles are read from an image and run through a model.

    A configuration inherits these after a small dataclass of its required inputs,
    ``class Config(TileOptions, ConfigInputs)``: dataclasses order fields from the last
    base to the first, so the required inputs stay first and positional (Python 3.9,
    the Python of QGIS 3.22 on Windows, has no ``kw_only``). A configuration may declare
    its own default for a field here (e.g. ``batch_size``).
    """

    band_indexes: tuple[int, ...] | None = None  # 1-based; None = all bands (training) or guessed (mapping)
    radiometry: str = "auto"  # a preset of imagery.radiometry, or 'auto'
    device: str = "auto"  # 'auto', 'cpu' or 'cuda'
    batch_size: int = 32  # tiles per batch
    min_valid_fraction: float = 0.5  # share of a tile's pixels that must be valid for it to count


def default_of(config: type, name: str):
    """The default of a configuration's field: the one source of the defaults that the
    command line and the Processing algorithms offer."""
    return {f.name: f.default for f in dataclasses.fields(config)}[name]


# The scheduler option of mapping and fitting, as the command line and the Processing
# algorithms describe it.
SCHEDULER_HELP = (
    "Runs the tile batches (mapping) or the clusters' features (fitting) on the Dask cluster of this scheduler, "
    "e.g. tcp://10.0.0.5:8786 (started with `dask scheduler`, workers with `dask worker ADDRESS`). The workers "
    "open the image themselves: it must be a file on a file system they share, at the same path, or a URL "
    "they can reach (/vsicurl/https://..., /vsis3/bucket/scene.tif). Empty: this machine."
)
