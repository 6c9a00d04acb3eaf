"""Water and cloud are screened as the tiles are read, not in a pass over the region
before mapping: the codes are those of the screening's first definition (a
nearest-neighbour read of the region in strips of cell rows, kept here as the reference),
on generated rasters of several layouts and on a real scene; the other cells' estimates
are those of a run without screening; the set-up reads under the mapping's GDAL cache.
Rasters are GENERATED except the Kinshasa scene."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import from_bounds

from helpers import write_screening_scene
from poverty_mapper.core.imagery import surface
from poverty_mapper.core.imagery.prefetch import PrefetchingReader
from poverty_mapper.core.imagery.radiometry import EIGHT_BIT, LANDSAT_C1_L1, REFLECTANCE
from poverty_mapper.core.imagery.surface import SurfaceBands, surface_bands, surface_screen
from poverty_mapper.core.imagery.tile_reader import READ_CACHE_BYTES, open_raster
from poverty_mapper.core.imagery.tiling import region_window, tile_grid_for
from poverty_mapper.core.inference import predict as predict_module
from poverty_mapper.core.inference.mapping_job import cell_batches
from poverty_mapper.core.inference.neighbourhood import NeighbourhoodMean
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.inference.writer import QUALITY_CLOUD, QUALITY_WATER
from poverty_mapper.core.models.defaults import DEFAULT_MODEL_PATH
from poverty_mapper.core.models.model_file import load_model

RADIOMETRY = {"uint8": EIGHT_BIT, "uint16": LANDSAT_C1_L1, "float32": REFLECTANCE}


def reference_codes(ds, grid, cell_mask, bands, radiometry, water_code=QUALITY_WATER, cloud_code=QUALITY_CLOUD):
    """The screening as it was first written: the region read in strips of 32 cell rows,
    16 x 16 nearest-neighbour samples per cell (boundless), the same tests."""
    samples = surface.SAMPLES
    codes = np.zeros(grid.shape, np.uint8)
    wanted = bands.wanted
    fill = radiometry.fill_value if ds.nodata is None else None
    floor = surface.eight_bit_cloud_floor(ds, bands, radiometry, fill) if radiometry.key == EIGHT_BIT.key else None
    rows = np.flatnonzero(cell_mask.any(axis=1))
    for r0 in range(int(rows[0]), int(rows[-1]) + 1, 32):
        r1 = min(r0 + 32, grid.height)
        left, top = grid.transform * (0, r0)
        right, bottom = grid.transform * (grid.width, r1)
        window = from_bounds(min(left, right), min(top, bottom), max(left, right), max(top, bottom), ds.transform)
        shape = (len(wanted), (r1 - r0) * samples, grid.width * samples)
        dn = ds.read(wanted, window=window, out_shape=shape, boundless=True, fill_value=0, resampling=Resampling.nearest)
        masks = ds.read_masks(wanted, window=window, out_shape=shape, boundless=True, resampling=Resampling.nearest)
        valid = np.all(masks > 0, axis=0)
        if ds.nodata is None and radiometry.fill_value is not None:
            valid &= ~np.all(dn == radiometry.fill_value, axis=0)
        refl = radiometry.apply(dn)
        valid &= np.all(np.isfinite(refl), axis=0)
        band = dict(zip(wanted, refl))
        cells = (r1 - r0, samples, grid.width, samples)
        n_valid = valid.reshape(cells).sum(axis=(1, 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            if bands.can_see_water:
                g, n = band[bands.green], band[bands.nir]
                share = (valid & ((g - n) / (g + n) > 0.0)).reshape(cells).sum(axis=(1, 3)) / np.maximum(n_valid, 1)
                codes[r0:r1][(n_valid > 0) & (share >= 0.5)] = water_code
            if bands.can_see_cloud:
                b, g, r = band[bands.blue], band[bands.green], band[bands.red]
                mean = (b + g + r) / 3.0
                white = (np.abs(b - mean) + np.abs(g - mean) + np.abs(r - mean)) / mean < 0.7
                bright = mean > surface.CLOUD_BRIGHTNESS if floor is None else (
                    (b >= floor[0]) & (g >= floor[1]) & (r >= floor[2]))
                cloud = valid & bright & white & (b - 0.5 * r > 0.08)
                share = cloud.reshape(cells).sum(axis=(1, 3)) / np.maximum(n_valid, 1)
                codes[r0:r1][(n_valid > 0) & (share >= 0.5) & (codes[r0:r1] == 0)] = cloud_code
    return np.where(cell_mask, codes, 0).astype(np.uint8)


LAYOUTS = {
    "uint8": dict(dtype="uint8"),
    "uint8, nodata": dict(dtype="uint8", nodata=0),
    "uint8, alpha": dict(dtype="uint8", alpha=True),
    "uint16, Landsat fill": dict(dtype="uint16"),
    "float32 with NaN": dict(dtype="float32"),
}


def _streamed_codes(path, grid, cell_mask, bands, radiometry, read_workers):
    """Codes as a mapping run gets them: batches of cells read by the prefetching reader
    (the model's bands RED, GREEN, BLUE) and screened as they are handed on."""
    with open_raster(path) as ds:
        screen = surface_screen(ds, grid, cell_mask, bands, radiometry, QUALITY_WATER, QUALITY_CLOUD)
    codes = np.zeros(grid.shape, np.uint8)
    tile_px = round(grid.tile_x)
    with PrefetchingReader(path, (3, 2, 1), tile_px, radiometry, read_workers, 2, screen=screen) as reader:
        windows_of = lambda cells: [grid.tile_window(r, c) for r, c in cells]  # noqa: E731
        for cells, _dn, _valid, batch_codes in reader.map(cell_batches(cell_mask, 7), windows_of):
            rows, cols = np.asarray(cells).T
            codes[rows, cols] = batch_codes
    return codes


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("stride_m", [None, 1500.0])
def test_cells_screened_as_read_get_the_codes_of_the_region_read_in_strips(tmp_path, layout, stride_m):
    path = write_screening_scene(tmp_path / "scene.tif", **LAYOUTS[layout])
    radiometry = RADIOMETRY[LAYOUTS[layout]["dtype"]]
    with open_raster(path) as ds:
        grid = tile_grid_for(ds.transform, ds.crs, region_window(ds.transform, ds.width, ds.height), 3000.0,
                             stride_m, aligned=True)
        cell_mask = np.ones(grid.shape, bool)
        cell_mask[:2] = False  # the strips start at the first row to map
        cell_mask[5, 3:7] = False
        bands = surface_bands(ds, ("RED", "GREEN", "BLUE"), (3, 2, 1))
        expected = reference_codes(ds, grid, cell_mask, bands, radiometry)
        at_once = surface.surface_codes(ds, grid, cell_mask, bands, radiometry, QUALITY_WATER, QUALITY_CLOUD)
    assert bands == SurfaceBands(1, 2, 3, 4)
    assert (expected == QUALITY_WATER).sum() >= 4 and (expected == QUALITY_CLOUD).sum() >= 4
    assert np.array_equal(at_once, expected)
    for workers in (0, 1):
        assert np.array_equal(_streamed_codes(path, grid, cell_mask, bands, radiometry, workers), expected)


@pytest.mark.parametrize("layout", ["uint8, alpha", "float32 with NaN"])
def test_a_map_flags_the_reference_cells_and_estimates_the_others_as_without_screening(tmp_path, monkeypatch, layout):
    path = write_screening_scene(tmp_path / "scene.tif", **LAYOUTS[layout])
    radiometry = RADIOMETRY[LAYOUTS[layout]["dtype"]]
    model = load_model(DEFAULT_MODEL_PATH)
    request = dict(model=model, radiometry=radiometry.key, band_indexes=(1, 2, 3), stride_m=2240.0, device="cpu")
    screened = predict_poverty_map(PredictRequest(path, str(tmp_path / "screened.tif"), **request))
    with open_raster(path) as ds:
        grid = tile_grid_for(ds.transform, ds.crs, region_window(ds.transform, ds.width, ds.height),
                             model.tile_size_m, 2240.0, aligned=True)
        expected = reference_codes(ds, grid, np.ones(grid.shape, bool), SurfaceBands(1, 2, 3, 4), radiometry)
    monkeypatch.setattr(predict_module, "surface_screen", lambda *args: None)
    plain = predict_poverty_map(PredictRequest(path, str(tmp_path / "plain.tif"), **request))
    with rasterio.open(tmp_path / "screened.tif") as a, rasterio.open(tmp_path / "plain.tif") as b:
        with_screen, without = a.read(), b.read()
    flagged = np.isin(with_screen[1], (QUALITY_WATER, QUALITY_CLOUD))
    assert np.array_equal(np.where(flagged, with_screen[1], 0), expected)
    assert (screened.n_water, screened.n_cloud) == ((expected == QUALITY_WATER).sum(), (expected == QUALITY_CLOUD).sum())
    assert screened.n_water > 0 and screened.n_cloud > 0
    assert (with_screen[0][flagged] == -9999.0).all()
    assert np.array_equal(with_screen[:, ~flagged], without[:, ~flagged])  # same batches, same estimates
    assert plain.n_estimated - screened.n_estimated == np.count_nonzero(flagged & (without[0] != -9999.0))


def test_the_clouds_of_the_real_kinshasa_scene_are_flagged_as_in_the_reference(real_data, tmp_path):
    path = str(real_data / "kinshasa" / "kinshasa_landsat8_20150904_rgba_38m.tif")
    model = load_model(DEFAULT_MODEL_PATH)
    result = predict_poverty_map(PredictRequest(path, str(tmp_path / "map.tif"), model, radiometry="eight_bit",
                                                device="cpu"))
    with open_raster(path) as ds:
        grid = tile_grid_for(ds.transform, ds.crs, region_window(ds.transform, ds.width, ds.height),
                             model.tile_size_m, None, aligned=True)
        bands = surface_bands(ds, model.bands, (3, 2, 1))
        expected = reference_codes(ds, grid, np.ones(grid.shape, bool), bands, EIGHT_BIT)
    with rasterio.open(tmp_path / "map.tif") as out:
        quality = out.read(2)
    assert (expected == QUALITY_CLOUD).sum() > 100
    assert np.array_equal(np.where(np.isin(quality, (QUALITY_WATER, QUALITY_CLOUD)), quality, 0), expected)
    assert result.n_cloud == (expected == QUALITY_CLOUD).sum()


def test_the_set_up_reads_under_the_mapping_cache_and_screens_no_cell_twice(tmp_path, monkeypatch):
    """GDAL's default cache (5 % of RAM) made memory grow with the raster in the set-up;
    the cells are screened once each, in the run's batches (the scene's statistics
    screen their own few tiles)."""
    path = write_screening_scene(tmp_path / "scene.tif")
    caches, screened = [], []
    real_screen, real_codes = predict_module.surface_screen, surface.SurfaceScreen.codes

    def spy_screen(*args):
        caches.append(rasterio.env.get_gdal_config("GDAL_CACHEMAX"))
        return real_screen(*args)

    def spy_codes(self, ds, cells, tiles=None):
        screened.append(len(cells))
        return real_codes(self, ds, cells, tiles)

    monkeypatch.setattr(predict_module, "surface_screen", spy_screen)
    monkeypatch.setattr(surface.SurfaceScreen, "codes", spy_codes)
    result = predict_poverty_map(PredictRequest(path, str(tmp_path / "map.tif"), load_model(DEFAULT_MODEL_PATH),
                                                radiometry="eight_bit", band_indexes=(1, 2, 3), stride_m=2240.0,
                                                device="cpu"))
    assert caches == [READ_CACHE_BYTES]
    assert sum(screened) <= result.n_cells + 48 and result.n_water > 0


class _Collect:
    def __init__(self):
        self.values, self.codes = {}, {}

    def add(self, cells, values):
        self.values.update(zip(cells, values))

    def screened(self, cells, codes):
        self.codes.update(zip(cells, codes))


def test_screened_cells_reach_the_writer_at_once_and_take_no_part_in_their_neighbours_means():
    sink = _Collect()
    means = NeighbourhoodMean(sink, (3, 3), 1)
    means.screened([(1, 1)], np.array([QUALITY_WATER], np.uint8))
    assert sink.codes == {(1, 1): QUALITY_WATER}
    means.add([(r, c) for r in range(3) for c in range(3)], np.array([1, 2, 3, 4, np.nan, 6, 7, 8, 9], float))
    means.flush()
    assert np.isnan(sink.values[(1, 1)]) and sink.values[(0, 0)] == np.mean([1, 2, 4])
