"""A night-lights layer read beside the imagery, for models with a NIGHTLIGHTS band, on a
GENERATED world (tests/generated_world.py): the lights in EPSG:4326 at about 450 m, the
image in UTM at 30 m. Not an accuracy figure."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from rasterio.warp import transform as transform_points

from generated_world import density_on, make_world
from poverty_mapper.core.errors import PovertyMapperError
from poverty_mapper.core.extractors.histogram import HistogramExtractor
from poverty_mapper.core.imagery.lights_layer import LightsInput
from poverty_mapper.core.imagery.prefetch import PrefetchingReader
from poverty_mapper.core.imagery.radiometry import REFLECTANCE
from poverty_mapper.core.imagery.tiling import PixelWindow
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.models.model_file import NightLightsInput, PovertyModel, Target, load_model, save_model
from poverty_mapper.core.regression.ridge import fit_ridge

TILE_PX = 16  # 480 m tiles of 30 m
LIGHTS_MEAN, LIGHTS_STD = 5.0, 10.0  # generated lights run 0..60


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("generated_world_lights"), size=256, n_settlements=12, n_clusters=10)


def _expected_lights(world, window: PixelWindow) -> tuple[np.ndarray, np.ndarray]:
    """The light of the place at each pixel centre, looked up in the lights raster directly."""
    rows, cols = np.mgrid[window.row_off:window.row_off + window.height, window.col_off:window.col_off + window.width]
    xs, ys = world.transform * (cols.ravel() + 0.5, rows.ravel() + 0.5)
    with rasterio.open(world.lights_path) as src:
        lon, lat = transform_points("EPSG:32636", src.crs, xs, ys)
        c, r = ~src.transform * (np.asarray(lon), np.asarray(lat))
        values = src.read(1)[np.floor(r).astype(int), np.floor(c).astype(int)]
        nodata = src.nodata
    values = values.reshape(rows.shape)
    return np.where(values == nodata, 0.0, values), values != nodata


def _model(bands: tuple[str, ...], means, stds, x: np.ndarray, y: np.ndarray) -> PovertyModel:
    return PovertyModel(
        name=f"generated {'+'.join(bands)} model", target=Target("generated index", "generated units"),
        bands=bands, input_scaling="reflectance 0-1; lights as read", pixel_size_m=30.0, tile_size_px=TILE_PX,
        extractor=HistogramExtractor(means, stds), regressor=fit_ridge(x, y, alpha=1.0), radiometry="reflectance",
        nightlights=NightLightsInput("generated lights", "generated radiance units"),
    )


def _tiles(world, n: int, seed: int = 0):
    """Generated training tiles: the image's reflectance and the warped lights, read by the reader itself."""
    rng = np.random.default_rng(seed)
    windows = [PixelWindow(int(c), int(r), TILE_PX, TILE_PX) for r, c in rng.integers(0, 256 - TILE_PX, (n, 2))]
    with PrefetchingReader(str(world.image_path), (1, 2, 3), TILE_PX, REFLECTANCE, 0,
                           lights=LightsInput(str(world.lights_path), 3)) as reader:
        pixels, valid = reader.read(windows)
    rows = [w.row_off + TILE_PX // 2 for w in windows]
    cols = [w.col_off + TILE_PX // 2 for w in windows]
    return pixels, valid, 2.0 * world.density[rows, cols]


@pytest.fixture(scope="module")
def lights_model(world):
    pixels, valid, y = _tiles(world, 120)
    extractor = HistogramExtractor([LIGHTS_MEAN], [LIGHTS_STD])
    x = extractor.extract(torch.from_numpy(pixels[:, 3:]), torch.from_numpy(valid)).numpy()
    return _model(("NIGHTLIGHTS",), [LIGHTS_MEAN], [LIGHTS_STD], x, y)


@pytest.fixture(scope="module")
def rgb_lights_model(world):
    pixels, valid, y = _tiles(world, 120, seed=1)
    means, stds = [0.062551, 0.090696, 0.105640, LIGHTS_MEAN], [0.023979, 0.032121, 0.051943, LIGHTS_STD]
    x = HistogramExtractor(means, stds).extract(torch.from_numpy(pixels), torch.from_numpy(valid)).numpy()
    return _model(("BLUE", "GREEN", "RED", "NIGHTLIGHTS"), means, stds, x, y)


def test_the_lights_tile_holds_the_light_of_each_pixels_place(world):
    window = PixelWindow(37, 101, 64, 64)  # 64 x 64 px of 30 m over 15 px lights cells of another CRS
    with PrefetchingReader(str(world.image_path), (3,), 64, REFLECTANCE, 0,
                           lights=LightsInput(str(world.lights_path), 0)) as reader:
        pixels, valid = reader.read([window])
    expected, lit = _expected_lights(world, window)
    assert pixels.shape == (1, 2, 64, 64) and pixels.dtype == np.float32
    assert lit.mean() > 0.9 and np.unique(expected).size > 10
    np.testing.assert_array_equal(valid[0], lit)
    np.testing.assert_array_equal(pixels[0, 0], expected.astype(np.float32))  # lights first: position 0
    with rasterio.open(world.image_path) as src:
        red = src.read(3, window=window.to_rasterio())
    np.testing.assert_array_equal(pixels[0, 1], np.where(lit, red, 0.0))


def test_pixels_outside_the_lights_are_invalid(world):
    window = PixelWindow(-8, -8, TILE_PX, TILE_PX)  # half outside the image
    with PrefetchingReader(str(world.image_path), (), TILE_PX, REFLECTANCE, 0,
                           lights=LightsInput(str(world.lights_path), 0)) as reader:
        pixels, valid = reader.read([window])
    assert pixels.shape == (1, 1, TILE_PX, TILE_PX)
    assert not valid[0, :8].any() and not valid[0, :, :8].any() and valid[0, 8:, 8:].any()
    assert np.all(pixels[0, 0][~valid[0]] == 0)


@pytest.mark.parametrize("which", ["lights_model", "rgb_lights_model"])
def test_a_model_with_night_lights_maps_the_planted_relation(world, which, request, tmp_path):
    model = request.getfixturevalue(which)
    path = save_model(model, tmp_path / "lights.povmodel")
    result = predict_poverty_map(PredictRequest(
        str(world.image_path), str(tmp_path / "map.tif"), load_model(path), device="cpu",
        nightlights_path=str(world.lights_path), read_workers=1,
    ))
    assert result.n_estimated > 0.8 * result.n_cells
    with rasterio.open(result.output_path) as dst:
        estimate = dst.read(1, masked=True)
        assert dst.tags()["SOURCE_NIGHTLIGHTS"] == world.lights_path.name
        truth = 2.0 * density_on(world, dst)  # the cells' own footprints, wherever the grid starts
    ok = ~estimate.mask & np.isfinite(truth)
    assert np.corrcoef(estimate.data[ok], truth[ok])[0, 1] > 0.7


def test_a_lights_model_without_a_lights_layer_says_what_to_give(world, lights_model, tmp_path):
    with pytest.raises(PovertyMapperError, match=r"reads night lights.*generated lights, in generated radiance units.*Night-lights layer"):
        predict_poverty_map(PredictRequest(str(world.image_path), str(tmp_path / "map.tif"), lights_model, device="cpu"))
    assert not (tmp_path / "map.tif").exists()


def test_a_lights_layer_elsewhere_is_refused(world, lights_model, tmp_path):
    far = tmp_path / "lights_elsewhere.tif"
    with rasterio.open(far, "w", driver="GTiff", width=20, height=20, count=1, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(100.0, 50.0, 0.01, 0.01)) as dst:
        dst.write(np.ones((1, 20, 20), np.float32))
    with pytest.raises(PovertyMapperError, match="does not overlap"):
        predict_poverty_map(PredictRequest(str(world.image_path), str(tmp_path / "map.tif"), lights_model,
                                           device="cpu", nightlights_path=str(far)))


def test_a_lights_layer_for_a_model_without_lights_is_a_note(world, rgb_lights_model, tmp_path):
    rgb_only = dataclasses.replace(
        rgb_lights_model, bands=("BLUE", "GREEN", "RED"), nightlights=None,
        extractor=HistogramExtractor([0.062551, 0.090696, 0.105640], [0.023979, 0.032121, 0.051943]),
        regressor=fit_ridge(np.random.default_rng(0).random((20, 306)), np.arange(20.0), alpha=1.0),
    )
    result = predict_poverty_map(PredictRequest(
        str(world.image_path), str(tmp_path / "map.tif"), rgb_only, device="cpu",
        nightlights_path=str(world.lights_path),
    ))
    assert result.n_estimated > 0
    assert any("does not read night lights" in note for note in result.notes)


def test_the_card_names_the_lights_product_and_units(lights_model, tmp_path):
    loaded = load_model(save_model(lights_model, tmp_path / "m.povmodel"))
    assert loaded.nightlights == lights_model.nightlights
    assert "Night lights (band NIGHTLIGHTS) from a separate night-lights layer: generated lights, in generated radiance units." in loaded.card()



def _lights_variant(world, path, change):
    """The generated lights raster with ``change(values, profile)`` applied."""
    with rasterio.open(world.lights_path) as src:
        profile, values = dict(src.profile), src.read(1)
    values, profile = change(values.copy(), profile)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values[None].astype(profile["dtype"]))
    return str(path)


def _half_nodata(values, profile):
    values[:, : values.shape[1] // 2] = -1.0
    return values, {**profile, "nodata": -1.0}


def _all_nodata(values, profile):
    return np.full_like(values, -1.0), {**profile, "nodata": -1.0}


def _one_pixel(values, profile):
    t = profile["transform"]
    bounds = (t.c, t.f + t.e * profile["height"], t.c + t.a * profile["width"], t.f)
    return np.full((1, 1), 12.0, values.dtype), {**profile, "width": 1, "height": 1,
                                                  "transform": rasterio.transform.from_bounds(*bounds, 1, 1)}


def test_lights_over_half_the_image_are_a_note_that_says_so(world, lights_model, tmp_path):
    """97 of 156 cells stayed empty without a word."""
    lights = _lights_variant(world, tmp_path / "half.tif", _half_nodata)
    result = predict_poverty_map(PredictRequest(str(world.image_path), str(tmp_path / "map.tif"), lights_model,
                                                device="cpu", nightlights_path=lights, read_workers=1))
    (note,) = [n for n in result.notes if "night-lights layer has data over only about" in n]
    share = float(note.split("about ")[1].split("%")[0]) / 100
    assert 0.3 < share < 0.7 and result.n_estimated < 0.8 * result.n_cells


def test_lights_without_data_over_the_image_are_refused_for_that_reason(world, lights_model, tmp_path):
    """They were blamed on 'the band mapping, the radiometry'."""
    lights = _lights_variant(world, tmp_path / "empty.tif", _all_nodata)
    with pytest.raises(PovertyMapperError, match=r"has no data over the image: every pixel there is nodata"):
        predict_poverty_map(PredictRequest(str(world.image_path), str(tmp_path / "map.tif"), lights_model,
                                           device="cpu", nightlights_path=lights))
    assert not (tmp_path / "map.tif").exists()


def test_lights_of_one_pixel_are_a_note_that_they_tell_no_place_from_another(world, lights_model, tmp_path):
    lights = _lights_variant(world, tmp_path / "one_pixel.tif", _one_pixel)
    result = predict_poverty_map(PredictRequest(str(world.image_path), str(tmp_path / "map.tif"), lights_model,
                                                device="cpu", nightlights_path=lights, read_workers=1))
    assert any("holds one value (12) over the whole image (1 x 1 pixels)" in n for n in result.notes), result.notes
    assert not any("band mapping" in n for n in result.notes)
