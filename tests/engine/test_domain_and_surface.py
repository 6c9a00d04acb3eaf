"""Where a model does not apply, the map says so: imagery unlike the training clusters'
(quality code 3, a widened interval in band 3), water (4) and cloud (5). Rasters, features
and weights here are GENERATED, except the tests on the real scenes and LSMS set."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from poverty_mapper.core.errors import ModelFileError
from poverty_mapper.core.imagery.radiometry import EIGHT_BIT, REFLECTANCE
from poverty_mapper.core.imagery.surface import SurfaceBands, surface_bands, surface_codes
from poverty_mapper.core.imagery.tiling import region_window, tile_grid_for
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.inference.writer import (
    QUALITY_CLOUD, QUALITY_OUT_OF_DOMAIN, QUALITY_WATER, has_estimate,
)
from poverty_mapper.core.models.feature_domain import FeatureDomain
from poverty_mapper.core.models.model_file import Scores, load_model, save_model
from poverty_mapper.evaluation.kinshasa_renders import apply_tables, band_histograms, renders
from helpers import CNN_SCENE_SIZE, CNN_TILE_PX, cnn_model, cnn_scene

TRANSFORM = Affine(30.0, 0, 480_000.0, 0, -30.0, 998_400.0)


MIXING = np.random.default_rng(99).normal(size=(4, 30))


def _correlated(rng, n):
    """Features of one kind: 4 hidden factors mixed into 30 features, with noise."""
    return rng.normal(size=(n, 4)) @ MIXING + 0.1 * rng.normal(size=(n, MIXING.shape[1])) + 5.0


def test_training_clusters_have_unit_spread_in_the_domain_frame():
    rng = np.random.default_rng(0)
    x = _correlated(rng, 200)
    domain = FeatureDomain.of_training(x)
    z = domain.coordinates(x)
    assert domain.n_dimensions == 10
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(z.std(0), 1, rtol=1e-9)
    w, b = domain.folded()
    np.testing.assert_allclose(x @ w + b, z, atol=1e-9)
    distance = domain.distance(z)
    assert domain.limit == pytest.approx(distance.max())
    assert np.mean(distance <= domain.reference) == pytest.approx(0.8, abs=0.01)
    assert not domain.outside(distance).any()
    # New clusters of the same kind are mostly inside; features far along the training
    # directions are outside, and their interval is widened in proportion.
    assert domain.outside(domain.distance(domain.coordinates(_correlated(np.random.default_rng(1), 500)))).mean() < 0.05
    far = x.mean(0) + 4 * (x - x.mean(0))
    d_far = domain.distance(domain.coordinates(far))
    assert domain.outside(d_far).mean() > 0.5
    assert np.all(domain.interval_scale(d_far) >= 1) and domain.interval_scale(d_far).max() > 3
    assert np.all(domain.interval_scale(distance[distance <= domain.reference]) == 1)


def test_too_few_clusters_describe_no_domain():
    assert FeatureDomain.of_training(np.random.default_rng(0).normal(size=(9, 5))) is None
    assert FeatureDomain.of_training(np.ones((50, 5))) is None


def _tile_features(model, images):
    """The model's features of every non-overlapping tile of 8-bit images [3, H, W]."""
    tiles = []
    for image in images:
        for r in range(0, image.shape[1] - CNN_TILE_PX + 1, CNN_TILE_PX):
            for c in range(0, image.shape[2] - CNN_TILE_PX + 1, CNN_TILE_PX):
                tiles.append(image[:, r:r + CNN_TILE_PX, c:c + CNN_TILE_PX])
    pixels = torch.from_numpy(np.stack(tiles).astype(np.float32) * EIGHT_BIT.scale)
    with torch.no_grad():
        return model.extractor.extract(pixels, torch.ones(pixels.shape[0], CNN_TILE_PX, CNN_TILE_PX, dtype=torch.bool)).numpy()


def _ordinary(rng, shape=(3, CNN_SCENE_SIZE, CNN_SCENE_SIZE)):
    return np.clip(rng.normal(110, 30, shape), 1, 255).astype(np.uint8)


def test_a_map_flags_imagery_unlike_the_training_clusters(tmp_path):
    rng = np.random.default_rng(4)
    model = cnn_model()
    training = _tile_features(model, [_ordinary(rng) for _ in range(3)])
    model = replace(model, feature_domain=FeatureDomain.of_training(training), scores=Scores(interval_80=0.5))
    path = tmp_path / "model.povmodel"
    save_model(model, path)
    model = load_model(path)
    image = _ordinary(rng)
    # A purple, sharply striped surface: never seen in training (and not white like a cloud).
    stripes = np.where(np.arange(CNN_SCENE_SIZE // 2) % 4 < 2, 1.0, 0.2)[None, None, :]
    image[:, :, CNN_SCENE_SIZE // 2:] = (np.array([230, 20, 160])[:, None, None] * stripes).astype(np.uint8)
    result = predict_poverty_map(PredictRequest(cnn_scene(tmp_path / "image.tif", image), str(tmp_path / "map.tif"),
                                                model, device="cpu"))
    with rasterio.open(tmp_path / "map.tif") as ds:
        estimate, quality, interval = ds.read(1, masked=True), ds.read(2), ds.read(3, masked=True)
        assert "out of domain" in ds.descriptions[1] and "interval" in ds.descriptions[2]
    half = quality.shape[1] // 2
    assert np.all(quality[:, half:] == QUALITY_OUT_OF_DOMAIN)
    # Familiar imagery: at most a cell or two beyond the farthest training tile (about
    # 1 in n + 1 of the same kind lie there).
    assert np.count_nonzero(quality[:, :half] == QUALITY_OUT_OF_DOMAIN) <= 2
    assert result.n_out_of_domain == np.count_nonzero(quality == QUALITY_OUT_OF_DOMAIN)
    assert any(f"{result.n_out_of_domain} of {result.n_estimated} estimated cells" in n for n in result.notes)
    # Every estimated cell keeps its estimate and has an interval: the cross-validated
    # one where the imagery is familiar, wider where it is not.
    assert np.array_equal(estimate.mask, ~has_estimate(quality)) and not interval.mask[~estimate.mask].any()
    assert np.ma.median(interval[:, :half]) == pytest.approx(0.5) and interval[:, half:].min() > 2 * 0.5


def test_a_model_file_with_a_domain_of_other_features_is_refused(tmp_path):
    model = cnn_model()
    wrong = FeatureDomain.of_training(np.random.default_rng(0).normal(size=(50, 7)))
    save_model(replace(model, feature_domain=wrong), tmp_path / "bad.povmodel")
    with pytest.raises(ModelFileError, match="feature domain describes 7 features"):
        load_model(tmp_path / "bad.povmodel")


def _four_band_scene(path, water, cloud):
    """Reflectance: vegetation (NIR bright), a lake (NIR dark) and a cloud (white) block."""
    rng = np.random.default_rng(5)
    data = np.empty((4, CNN_SCENE_SIZE, CNN_SCENE_SIZE), np.float32)
    data[:] = np.array([0.04, 0.08, 0.05, 0.35])[:, None, None] + rng.normal(0, 0.01, (4, CNN_SCENE_SIZE, CNN_SCENE_SIZE))
    data[(slice(None), *water)] = np.array([0.06, 0.05, 0.03, 0.01])[:, None, None]
    data[(slice(None), *cloud)] = np.array([0.62, 0.6, 0.58, 0.6])[:, None, None]
    with rasterio.open(path, "w", driver="GTiff", width=CNN_SCENE_SIZE, height=CNN_SCENE_SIZE, count=4, dtype="float32",
                       crs="EPSG:32636", transform=TRANSFORM) as dst:
        dst.write(data)
        dst.descriptions = ("blue", "green", "red", "nir")
    return str(path)


def test_water_and_cloud_cells_get_no_estimate(tmp_path):
    water = (slice(0, 96), slice(0, 96))  # cells (0..2, 0..2) of 32-px cells
    cloud = (slice(128, 192), slice(128, 192))  # cells (4..5, 4..5)
    image = _four_band_scene(tmp_path / "scene.tif", water, cloud)
    model = replace(cnn_model(), bands=("BLUE", "GREEN", "RED"), radiometry="reflectance", band_indexes=())
    result = predict_poverty_map(PredictRequest(image, str(tmp_path / "map.tif"), model, radiometry="reflectance",
                                                device="cpu"))
    with rasterio.open(tmp_path / "map.tif") as ds:
        estimate, quality = ds.read(1, masked=True), ds.read(2)
    expected = np.zeros((6, 6), np.uint8)
    expected[0:3, 0:3] = QUALITY_WATER
    expected[4:6, 4:6] = QUALITY_CLOUD
    assert np.array_equal(np.where(np.isin(quality, (QUALITY_WATER, QUALITY_CLOUD)), quality, 0), expected)
    assert estimate.mask[expected > 0].all() and not estimate.mask[expected == 0].any()
    assert (result.n_water, result.n_cloud, result.n_estimated) == (9, 4, 36 - 13)
    assert any("9 mostly water" in n and "4 mostly cloud" in n for n in result.notes)
    assert not any("near-infrared" in n for n in result.notes)


def test_imagery_without_nir_says_water_was_not_looked_for(tmp_path):
    rng = np.random.default_rng(6)
    result = predict_poverty_map(PredictRequest(cnn_scene(tmp_path / "rgb.tif", _ordinary(rng)),
                                                str(tmp_path / "map.tif"), cnn_model(), device="cpu"))
    assert result.n_water == 0 and any("no near-infrared band" in n for n in result.notes)


def test_surface_bands_come_from_the_mapping_and_the_raster(tmp_path):
    image = _four_band_scene(tmp_path / "scene.tif", (slice(0, 1), slice(0, 1)), (slice(1, 2), slice(1, 2)))
    with rasterio.open(image) as ds:
        assert surface_bands(ds, ("RED", "GREEN", "BLUE"), (3, 2, 1)) == SurfaceBands(1, 2, 3, 4)
        # The run's mapping wins over the descriptions.
        assert surface_bands(ds, ("NIR",), (2,)).nir == 2


# ----------------------------------------------------------------- real scenes

def _cloud_cells(path, cell_m=4300.0):
    with rasterio.open(path) as ds:
        grid = tile_grid_for(ds.transform, ds.crs, region_window(ds.transform, ds.width, ds.height), cell_m,
                             aligned=True)
        bands = surface_bands(ds, ("RED", "GREEN", "BLUE"), (1, 2, 3))
        return surface_codes(ds, grid, np.ones(grid.shape, bool), bands, EIGHT_BIT, QUALITY_WATER, QUALITY_CLOUD)


def test_the_clouds_of_the_real_2015_kinshasa_scene_are_found(real_data):
    """The data's README: the 2015-09-04 scene has clouds in the north-west; the
    2013-07-28 scene of the same place far fewer."""
    folder = real_data / "kinshasa"
    cloudy = _cloud_cells(folder / "kinshasa_landsat8_20150904_rgba_38m.tif") == QUALITY_CLOUD
    clear = _cloud_cells(folder / "kinshasa_landsat8_20130728_rgba_38m.tif") == QUALITY_CLOUD
    rows, cols = np.nonzero(cloudy)
    assert cloudy.sum() > 300 and clear.sum() < cloudy.sum() / 4
    h, w = cloudy.shape
    assert np.mean((rows < h / 2) & (cols < w / 2)) > 0.6  # mostly the north-west quarter


def _render(source, tmp_path, name):
    """A GENERATED render (evaluation.kinshasa_renders) of a shared scene, written beside it."""
    with rasterio.open(source) as ds:
        tables = renders(band_histograms(ds))[name]
        data, profile = ds.read(), ds.profile
    data[:3] = apply_tables(tables)(data[:3])
    path = tmp_path / f"{name}.tif"
    with rasterio.open(path, "w", **profile) as out:
        out.write(data)
    return path


@pytest.mark.parametrize("date, render", [("20130728", "histogram_equalization"), ("20150904", "gain_0.8_0.8_0.8"),
                                          ("20150904", "gamma_0.7")])
def test_the_8bit_cloud_screen_finds_the_same_cells_on_another_render_of_the_scene(real_data, tmp_path, date, render):
    """Generated renders of the shared scenes: the cloud cells stay those of the shared
    render. (A fixed 8-bit floor of 0.8 found 261 cloud cells instead of 61 on 2013's
    equalization, its bright roofs, and none of 2015's 494 under a gain of 0.8.)"""
    source = real_data / "kinshasa" / f"kinshasa_landsat8_{date}_rgba_38m.tif"
    shared = _cloud_cells(source) == QUALITY_CLOUD
    rendered = _cloud_cells(_render(source, tmp_path, render)) == QUALITY_CLOUD
    assert shared.sum() >= (300 if date == "20150904" else 10)
    assert (shared != rendered).sum() <= 0.15 * shared.sum()  # 3 of 26 cells on 2013's equalization


def test_a_real_landsat_scene_without_nir_gets_no_water_or_cloud_codes(real_data):
    """The Parana Level-1 scene has no NIR band and no cloud: nothing flagged."""
    path = real_data / "scenes" / "landsat8_l1_parana_rgb_30m.tif"
    with rasterio.open(path) as ds:
        grid = tile_grid_for(ds.transform, ds.crs, region_window(ds.transform, ds.width, ds.height), 6720.0,
                             aligned=True)
        from poverty_mapper.core.imagery.radiometry import LANDSAT_C1_L1

        bands = surface_bands(ds, ("BLUE", "GREEN", "RED"), (1, 2, 3))
        codes = surface_codes(ds, grid, np.ones(grid.shape, bool), bands, LANDSAT_C1_L1, QUALITY_WATER, QUALITY_CLOUD)
    assert not bands.can_see_water and bands.can_see_cloud
    assert not codes.any()


def test_reflectance_imagery_uses_the_reflectance_brightness_floor(tmp_path):
    """A grey (0.45) block is cloud-bright for reflectance, not for an 8-bit stretch."""
    rng = np.random.default_rng(7)
    data = np.full((3, CNN_SCENE_SIZE, CNN_SCENE_SIZE), 0.05, np.float32) + rng.normal(0, 0.005, (3, CNN_SCENE_SIZE, CNN_SCENE_SIZE)).astype(np.float32)
    data[:, :64, :64] = np.array([0.47, 0.45, 0.43])[:, None, None]
    path = cnn_scene(tmp_path / "grey.tif", data)
    with rasterio.open(path) as ds:
        grid = tile_grid_for(ds.transform, ds.crs, region_window(ds.transform, ds.width, ds.height), 960.0)
        bands = surface_bands(ds, ("RED", "GREEN", "BLUE"), (3, 2, 1))
        as_reflectance = surface_codes(ds, grid, np.ones(grid.shape, bool), bands, REFLECTANCE, 4, 5)
        as_eight_bit = surface_codes(ds, grid, np.ones(grid.shape, bool), bands, EIGHT_BIT, 4, 5)
    assert as_reflectance[:2, :2].tolist() == [[5, 5], [5, 5]] and as_reflectance.sum() == 20
    assert not as_eight_bit.any()
