"""A network's input standardized by its scene's own statistics, always.

A render of the same ground (another linear stretch, a per-band gain, haze) changes each
band's values by a gain and an offset; standardizing each band by the mean and spread of
the whole image takes them out exactly. A network that reads every scene so, at proxy
training and at every later use (maps, survey fits), whatever the radiometry, sees the
same tile whatever linear render made the scene; what a render's curve leaves (gamma,
equalization) it learns to ignore from the photometric augmentation of its training
(:mod:`..training.render_augmentation`).

The statistics come from the valid pixels of up to :data:`SAMPLE_TILES` tiles spread
evenly over the whole image, on the grid a map of the whole image lays out, so a cell's
estimate does not depend on the region asked for.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import rasterio

from ..errors import PovertyMapperError
from .radiometry import Radiometry
from .tile_reader import TileReader
from .tiling import region_window, tile_grid_for

SAMPLE_TILES = 96


def whole_image_values(
    ds: rasterio.io.DatasetReader, bands: Sequence[int], radiometry: Radiometry, tile_px: int, tile_m: float,
    dn_transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Each band's valid values (in ``radiometry``'s units) in up to :data:`SAMPLE_TILES`
    tiles spread evenly over the whole image's map grid (``dn_transform``: applied to the
    digital numbers first, e.g. a generated render)."""
    region = region_window(ds.transform, ds.width, ds.height, None)
    grid = tile_grid_for(ds.transform, ds.crs, region, tile_m, None, aligned=True)
    cells = [(r, c) for r in range(grid.shape[0]) for c in range(grid.shape[1])]
    pick = np.unique(np.linspace(0, len(cells) - 1, min(SAMPLE_TILES, len(cells))).round().astype(int))
    reader = TileReader(ds, tuple(bands), tile_px, radiometry)
    per_band: list[list[np.ndarray]] = [[] for _ in bands]
    for i in pick:
        dn, valid = reader.read_dn(grid.tile_window(*cells[int(i)]))
        values = radiometry.apply(dn if dn_transform is None else dn_transform(dn))
        if valid.any():
            for b in range(len(bands)):
                per_band[b].append(np.asarray(values[b][valid], np.float64))
    if not per_band[0]:
        raise PovertyMapperError(
            f"None of the {len(pick)} tiles sampled over {ds.name} holds a valid pixel: check the image's nodata value "
            "and the band mapping."
        )
    return [np.concatenate(v) for v in per_band]


def moments(values: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each band's mean and standard deviation (at least 1e-6)."""
    return np.array([v.mean() for v in values]), np.maximum(np.array([v.std() for v in values]), 1e-6)


def whole_image_moments(
    ds: rasterio.io.DatasetReader, bands: Sequence[int], radiometry: Radiometry, tile_px: int, tile_m: float,
    dn_transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The mean and standard deviation of the image's bands (:func:`whole_image_values`)."""
    return moments(whole_image_values(ds, bands, radiometry, tile_px, tile_m, dn_transform))
