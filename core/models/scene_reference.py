"""A model's scene domain from its training rasters (:mod:`.scene_domain`).

Every tile of each raster's grid (cells a tile apart, as a map of the whole raster lays
them out) with enough valid pixels is read and summarized. A raster of more than
:data:`MAX_TILES` tiles is read in blocks of :data:`BLOCK_CELLS` x :data:`BLOCK_CELLS`
cells spread evenly over it, each drawn from as a scene of its own. The model's estimates
of up to :data:`ESTIMATE_TILES` of the tiles give the training estimates' distribution.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import rasterio
import torch

from ..imagery.radiometry import Radiometry
from ..imagery.tile_reader import TileReader, read_batch
from ..imagery.tiling import PixelWindow, TileGrid, region_window, tile_grid_for
from .model_file import PovertyModel
from .scene_check import DnTransform, read_histograms, training_value_map
from .scene_reading import scene_read_model
from .scene_domain import SceneDomain, TileHistograms, TrainingTiles, sample_positions

MAX_TILES = 4096  # tiles read of one raster
BLOCK_CELLS = 32
ESTIMATE_TILES = 256
BATCH = 32


class TrainingRaster:
    """One training raster as the model reads it: the open dataset, the band numbers, the radiometry."""

    def __init__(self, ds: rasterio.io.DatasetReader, bands: tuple[int, ...], radiometry: Radiometry):
        self.ds, self.bands, self.radiometry = ds, tuple(bands), radiometry

    @property
    def name(self) -> str:
        return Path(self.ds.name).name


def whole_grid(raster: TrainingRaster, model: PovertyModel) -> TileGrid:
    """The cells of a map of the whole raster, a tile apart."""
    ds = raster.ds
    return tile_grid_for(ds.transform, ds.crs, region_window(ds.transform, ds.width, ds.height, None), model.tile_size_m,
                         None, aligned=True)


def grid_blocks(grid: TileGrid, max_tiles: int = MAX_TILES) -> list[tuple[int, int, int, int]]:
    """The parts of ``grid`` read (top, left, rows, columns, in cells): all of it, or
    blocks of :data:`BLOCK_CELLS` square spread evenly over it when it has more than
    ``max_tiles`` cells."""
    rows, cols = grid.shape
    if rows * cols <= max_tiles:
        return [(0, 0, rows, cols)]
    corners = [(r, c) for r in range(0, rows, BLOCK_CELLS) for c in range(0, cols, BLOCK_CELLS)]
    picked = sample_positions(len(corners), max(1, max_tiles // BLOCK_CELLS**2))
    return [(r, c, min(BLOCK_CELLS, rows - r), min(BLOCK_CELLS, cols - c)) for r, c in (corners[i] for i in picked)]


def level_bounds(rasters: Sequence[TrainingRaster], model: PovertyModel) -> tuple[np.ndarray, np.ndarray]:
    """The levels' bounds per band: an 8-bit image's whole range; otherwise the 0.1 and
    99.9 % quantiles of the first raster's sampled pixels, widened by a quarter of their
    range on each side."""
    raster = rasters[0]
    if np.dtype(raster.ds.dtypes[raster.bands[0] - 1]).itemsize == 1:
        ends = raster.radiometry.apply(np.array([0, 255]))
        return np.full(len(raster.bands), float(ends[0])), np.full(len(raster.bands), float(ends[1]))
    grid = whole_grid(raster, model)
    cells = np.argwhere(np.ones(grid.shape, bool))[sample_positions(len(grid))]
    reader = TileReader(raster.ds, raster.bands, model.tile_size_px, raster.radiometry)
    values = [v[:, ok] for v, ok in (reader.read(grid.tile_window(int(r), int(c))) for r, c in cells) if ok.any()]
    if not values:
        return np.zeros(len(raster.bands)), np.ones(len(raster.bands))
    low, high = np.quantile(np.concatenate(values, axis=1), [0.001, 0.999], axis=1)
    pad = np.maximum(high - low, 1e-6) / 4
    return low - pad, high + pad


def training_tiles(
    raster: TrainingRaster, model: PovertyModel, bounds: tuple[np.ndarray, np.ndarray], min_valid_fraction: float,
    dn_transform: DnTransform | None = None, max_tiles: int = MAX_TILES,
    value_map: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[tuple[TrainingTiles, list[PixelWindow]]]:
    """The raster's tiles (per block) with enough valid pixels, and their windows
    (``value_map``: per-band scale and offset applied to the values read)."""
    grid = whole_grid(raster, model)
    reader = TileReader(raster.ds, raster.bands, model.tile_size_px, raster.radiometry)
    out = []
    for top, left, rows, cols in grid_blocks(grid, max_tiles):
        kept_cells, kept_windows, parts = [], [], []
        for cell in np.argwhere(np.ones((rows, cols), bool)):
            window = grid.tile_window(top + int(cell[0]), left + int(cell[1]))
            tile = read_histograms(reader, [window], bounds, min_valid_fraction, dn_transform, value_map)
            if len(tile):
                kept_cells.append(cell)
                kept_windows.append(window)
                parts.append(tile)
        if parts:
            out.append((TrainingTiles((rows, cols), np.array(kept_cells), TileHistograms.concatenate(parts)), kept_windows))
    return out


def tile_estimates(
    model: PovertyModel, raster: TrainingRaster, windows: Sequence[PixelWindow], dn_transform: DnTransform | None = None,
) -> np.ndarray:
    """The model's estimates of single tiles (on the CPU); ``dn_transform``: applied to the
    digital numbers first."""
    reader = TileReader(raster.ds, raster.bands, model.tile_size_px, raster.radiometry)
    out = []
    for start in range(0, len(windows), BATCH):
        pixels, valid = _read_tiles(reader, windows[start:start + BATCH], dn_transform)
        with torch.inference_mode():
            features = model.extractor.extract(pixels, valid).double().numpy()
        out.append(model.regressor.predict(features))
    return np.concatenate(out) if out else np.zeros(0)


def _read_tiles(
    reader: TileReader, windows: Sequence[PixelWindow], dn_transform: DnTransform | None
) -> tuple[torch.Tensor, torch.Tensor]:
    if dn_transform is None:
        return read_batch(reader, windows, torch.device("cpu"))
    values, valids = [], []
    for window in windows:
        dn, valid = reader.read_dn(window)
        v = reader.radiometry.apply(dn_transform(dn))
        v[:, ~valid] = 0.0
        values.append(v)
        valids.append(valid)
    return torch.from_numpy(np.stack(values)), torch.from_numpy(np.stack(valids))


def scene_domain_of(
    model: PovertyModel, rasters: Sequence[TrainingRaster], min_valid_fraction: float = 0.5, seed: int = 0,
) -> SceneDomain | None:
    """The scene domain of ``model`` trained on ``rasters`` (None: too few tiles for it).
    A network that reads each scene by its own mean and spread sees each raster so: its
    tiles are summarized in the training units that reading brings them to, as a run's
    scene check brings a scene's (:func:`.scene_check.training_value_map`)."""
    lo, hi = level_bounds(rasters, model)
    scenes, owners, reading = [], [], {}
    for raster in rasters:
        reading[id(raster)] = scene_read_model(raster.ds, model, raster.bands, raster.radiometry)
        value_map = training_value_map(model, reading[id(raster)])
        for tiles, windows in training_tiles(raster, model, (lo, hi), min_valid_fraction, value_map=value_map):
            scenes.append(tiles)
            owners += [(raster, w) for w in windows]
    estimates = None
    # A model that adds the bundled lights' features to the image's has no estimate of a tile alone.
    if model.can_predict and owners and model.lights_features is None:
        picked = [owners[i] for i in sample_positions(len(owners), ESTIMATE_TILES)]
        estimates = np.concatenate([
            tile_estimates(reading[id(raster)], raster, [w for r, w in picked if r is raster])
            for raster in rasters
        ])
    return SceneDomain.of_training(scenes, lo, hi, [r.name for r in rasters], estimates, seed)
