"""How a model reads a raster, the same for a map and for a survey fit with the model's
extractor: the raster's band for each of the model's bands, found by name; for a network
that reads every scene by its own statistics (``scene_moments``), each band standardized
by the whole image's mean and spread, always (:func:`scene_read_model`); for an older CNN
trained on imagery of another radiometry, each band standardized by this scene's own
statistics (:mod:`.scene_statistics`), with the note that says so."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import rasterio

from ..imagery.bands import check_band_indexes, guess_band_indexes
from ..imagery.lights_layer import image_bands
from ..imagery.radiometry import Radiometry
from ..imagery.scene_moments import whole_image_moments
from ..imagery.surface import SurfaceScreen, surface_bands, surface_screen
from ..imagery.tile_reader import band_descriptions
from ..imagery.tiling import TileGrid, region_window, tile_grid_for
from .model_file import PovertyModel
from .scene_statistics import needs_scene_standardization, scene_band_statistics, scene_note, scene_standardized


def model_band_indexes(
    ds: rasterio.io.DatasetReader, model_bands: Sequence[str], given: Sequence[int] | None
) -> tuple[int, ...]:
    """The raster's band for each of the model's image bands (NIGHTLIGHTS comes from a
    lights layer): the band numbers ``given``, checked, else matched by the bands' names."""
    wanted = image_bands(model_bands)
    if given is None:
        return guess_band_indexes(wanted, band_descriptions(ds), [ci.name for ci in ds.colorinterp]) if wanted else ()
    return check_band_indexes(given, wanted, ds.count)


@dataclass(frozen=True)
class SceneReading:
    """How a model reads the cells of one scene: the model (its CNN standardizing bands by
    the scene's statistics where it needs to), the cells' quality codes decided before
    reading (water, cloud; 0 elsewhere), the screen still to apply as tiles are read, and
    the note that says what was done."""

    model: PovertyModel
    preset: np.ndarray
    screen: SurfaceScreen | None
    notes: tuple[str, ...]


def scene_reading(
    ds: rasterio.io.DatasetReader, model: PovertyModel, bands: tuple[int, ...], radiometry: Radiometry,
    grid: TileGrid, region_cells: np.ndarray, screen: SurfaceScreen | None,
) -> SceneReading:
    """How ``model`` reads the cells ``region_cells`` of ``grid``. A network that reads
    every scene by its own statistics standardizes each band by the whole image's mean and
    spread (:func:`scene_read_model`, whatever the region); an older CNN trained on imagery
    of another radiometry (:func:`needs_scene_standardization`) by the mean and spread of
    the region's cells, water and cloud left out; otherwise the model reads the scene as it is."""
    preset = np.zeros(grid.shape, np.uint8)
    if model.extractor.reads_scene_moments:
        return SceneReading(scene_read_model(ds, model, bands, radiometry), preset, screen, ())
    if not needs_scene_standardization(model, radiometry):
        return SceneReading(model, preset, screen, ())
    if screen is not None:
        # The scene's statistics leave water and cloud out: those cells must be known
        # before mapping (a scan in cell rows); otherwise each cell is screened as its
        # tile is read.
        preset, screen = screen.region_codes(ds, region_cells), None
    cells = region_cells & (preset == 0)
    if cells.any():
        mean, std, used = scene_band_statistics(ds, bands, radiometry, model, grid, cells)
        if used:
            return SceneReading(scene_standardized(model, mean, std), preset, screen, (scene_note(model, radiometry, used),))
    return SceneReading(model, preset, screen, ())


def scene_read_model(
    ds: rasterio.io.DatasetReader, model: PovertyModel, bands: tuple[int, ...], radiometry: Radiometry,
    dn_transform=None,
) -> PovertyModel:
    """``model`` standardizing this image's bands by the whole image's own mean and spread
    (whatever the region mapped), as its network was trained; a model without a scene
    reading of its own as it is. ``dn_transform``: a generated render of the image (applied
    to its digital numbers), for measurements."""
    if not model.extractor.reads_scene_moments:
        return model
    mean, std = whole_image_moments(ds, bands, radiometry, model.tile_size_px, model.tile_size_m, dn_transform)
    return scene_standardized(model, mean, std)


# Quality codes of the whole-image reading's screen: only whether a cell is left out counts.
_WATER, _CLOUD = 1, 2


def whole_scene_reading(
    ds: rasterio.io.DatasetReader, model: PovertyModel, bands: tuple[int, ...], radiometry: Radiometry
) -> SceneReading:
    """:func:`scene_reading` of the whole image, as a map of it (no extent, no mask, cells a
    tile apart) reads it: the same bands, statistics and note."""
    if model.extractor.reads_scene_moments:
        return SceneReading(scene_read_model(ds, model, bands, radiometry), np.zeros((0, 0), np.uint8), None, ())
    if not needs_scene_standardization(model, radiometry):
        return SceneReading(model, np.zeros((0, 0), np.uint8), None, ())
    region = region_window(ds.transform, ds.width, ds.height, None)
    grid = tile_grid_for(ds.transform, ds.crs, region, model.tile_size_m, None, aligned=True)
    cells = np.ones(grid.shape, bool)
    seen = surface_bands(ds, image_bands(model.bands), bands)
    screen = surface_screen(ds, grid, cells, seen, radiometry, _WATER, _CLOUD)
    return scene_reading(ds, model, bands, radiometry, grid, cells, screen)
