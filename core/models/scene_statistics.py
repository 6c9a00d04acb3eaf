"""Mapping imagery of another radiometry than a CNN model's: scene standardization.

A CNN model standardizes each band with the mean and spread of its training tiles, in the
training imagery's own units (for the bundled Kinshasa model: an 8-bit true-colour
render, read as DN / 255). Imagery of another radiometry (surface reflectance 0-1,
Landsat Level-1 DN, another stretch) has other means and spreads for the same ground,
so the network would see inputs unlike any it was trained on. In that case each band is
standardized with this scene's own mean and spread instead, measured on tiles spread
evenly over the mapped region: the network then sees every scene at the contrast its
training tiles had. This assumes the scene holds a mix of land like the training scenes
(a scene of only forest, or only city, is stretched too much); the run says when it was
done, and such estimates are indicative.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import rasterio

from ..imagery.radiometry import Radiometry
from ..imagery.surface import SurfaceScreen
from ..imagery.tile_reader import TileReader
from ..imagery.tiling import TileGrid
from ..models.model_file import PovertyModel

SAMPLE_TILES = 48


def needs_scene_standardization(model: PovertyModel, radiometry: Radiometry) -> bool:
    """Whether ``model`` standardizes scenes (a CNN) and was trained on imagery of another
    radiometry than ``radiometry``."""
    return model.extractor.standardizes_scenes and model.radiometry is not None and model.radiometry != radiometry.key


def scene_band_statistics(
    ds: rasterio.io.DatasetReader, bands, radiometry: Radiometry, model: PovertyModel, grid: TileGrid,
    cell_mask: np.ndarray, screen: SurfaceScreen | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-band mean and standard deviation of the valid pixels of up to
    :data:`SAMPLE_TILES` tiles spread evenly over the cells to map; and their number.
    ``screen``: the picked cells it finds mostly water or cloud are left out."""
    cells = np.argwhere(cell_mask)
    pick = cells[np.unique(np.linspace(0, len(cells) - 1, min(SAMPLE_TILES, len(cells))).round().astype(int))]
    if screen is not None and len(pick):
        pick = pick[screen.codes(ds, [(int(r), int(c)) for r, c in pick]) == 0]
    reader = TileReader(ds, bands, model.tile_size_px, radiometry)
    sums = np.zeros((3, len(bands)))
    used = 0
    for r, c in pick:
        values, valid = reader.read(grid.tile_window(int(r), int(c)))
        if valid.any():
            v = values[:, valid].astype(np.float64)
            with np.errstate(over="ignore", invalid="ignore"):
                sums += [v.sum(1), (v**2).sum(1), np.full(len(bands), v.shape[1])]
            used += 1
    count = np.maximum(sums[2], 1)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = sums[0] / count
        std = np.sqrt(np.maximum(sums[1] / count - mean**2, 0.0))
    return mean, np.maximum(std, 1e-6), used


def scene_standardized(model: PovertyModel, mean: np.ndarray, std: np.ndarray) -> PovertyModel:
    """``model`` with its extractor standardizing bands by this scene's mean and spread."""
    return replace(model, extractor=model.extractor.standardized_by(mean, std))


def scene_note(model: PovertyModel, radiometry: Radiometry, used: int) -> str:
    return (
        f"The model was trained on imagery of radiometry '{model.radiometry}', this image is read as "
        f"'{radiometry.label}': each band was standardized with this scene's own mean and spread (from "
        f"{used} tiles) instead of the training tiles'. Estimates are indicative; they assume the region "
        "holds a mix of land like the training scenes."
    )


# A scene band this many of the training tiles' standard deviations from their mean holds
# values no training tile was near: the model's estimates there are made up.
IMPLAUSIBLE_SD = 10.0


def knows_band_statistics(model: PovertyModel) -> bool:
    """Whether the model's extractor says the mean and spread of its training bands."""
    return model.extractor.knows_band_statistics


def implausible_input_note(model: PovertyModel, mean: np.ndarray, std: np.ndarray) -> str | None:
    """What to say when the scene's bands (``mean``, ``std`` per band, in the model's units)
    are constant or far outside what the model was trained on; None when they are not."""
    trained_mean, trained_std = np.asarray(model.extractor.band_means), np.asarray(model.extractor.band_stds)
    if trained_mean.shape != np.shape(mean):
        return None  # the model reads other bands besides the image's (night lights)
    with np.errstate(over="ignore", invalid="ignore"):
        # reflectance (and every radiometry's values) is never negative on average
        far = ~(np.abs(mean - trained_mean) <= IMPLAUSIBLE_SD * trained_std) | (mean < 0)
    constant = std <= 1e-6
    if not far.any() and not constant.all():
        return None
    bands = [
        f"{name}: mean {m:.3g}, sd {s:.3g} (trained on {tm:.3g} +- {ts:.3g})"
        for name, m, s, tm, ts, bad in zip(model.bands, mean, std, trained_mean, trained_std, far | constant)
        if bad
    ]
    what = " and ".join(
        w for w, bad in (("constant", constant.all()), ("far outside the values the model was trained on", far.any())) if bad
    )
    return (
        f"The imagery is {what} ({'; '.join(bands)}): the estimates are not meaningful. Check the radiometry "
        "and the band mapping, and that the image is not saturated, empty or of another product."
    )
