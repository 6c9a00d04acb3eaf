"""Bad input, faults and hostile files, in the engine.

Every failure is a PovertyMapperError (or Canceled) whose message names the problem and
the fix; nothing half-written stands under the requested output name afterwards, and an
earlier output of that name is left byte-identical. Rasters, clusters and models are
GENERATED here (the world in tests/generated_world.py); no number is an accuracy.
"""
from __future__ import annotations

import dataclasses
import errno
import io
import json
import math
import random
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_transform

from poverty_mapper.core.models import model_file as model_file_module
from poverty_mapper.core.inference import executors as executors_module
from poverty_mapper.core.inference import writer as writer_module
from poverty_mapper.core.atomic import write_json
from poverty_mapper.core.training.clusters import Cluster, ClusterFitConfig, fit_clusters
from poverty_mapper.core.errors import Canceled, ModelFileError, PovertyMapperError
from poverty_mapper.core.models.model_file import load_model, save_model
from poverty_mapper.core.imagery.nightlights import mean_lights_on_grid
from poverty_mapper.core.inference.estimate import estimate_batch
from poverty_mapper.core.inference.plan import plan_run
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.inference.writer import NODATA
from poverty_mapper.core.training.proxy import ProxyTrainingConfig, train_proxy
from poverty_mapper.core.imagery.radiometry import REFLECTANCE
from poverty_mapper.core.imagery.tile_reader import TileReader
from poverty_mapper.core.imagery.tiling import PixelWindow, pixel_size_m, region_window, tile_grid_for
from helpers import (  # noqa: F401 (small_model: a fixture)
    PIXEL, X0, Y0, assert_cells_cover_region, assert_centres_match, assert_untouched, make_reflectance, predict_to,
    small_model, write_earlier, write_geotiff,
)


def _values(path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


# --- imagery ----------------------------------------------------------------------------


def test_a_raster_without_crs_is_refused_before_any_output(tmp_path, small_model):
    raster = write_geotiff(tmp_path / "generated_no_crs.tif", make_reflectance(), crs=None)
    out = write_earlier(tmp_path / "map.tif")
    with pytest.raises(PovertyMapperError, match="no coordinate reference system; assign one"):
        predict_to(raster, out, small_model)
    assert_untouched(out)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # writing the photo
def test_a_jpeg_without_georeference_is_refused_as_such(tmp_path, small_model):
    """A plain JPEG (no world file, no GCPs): its pixels have no place on the ground. It
    was refused as 'rotated', from the undefined transform rasterio gives such a file."""
    photo = tmp_path / "photo.jpg"
    with rasterio.open(photo, "w", driver="JPEG", width=64, height=64, count=3, dtype="uint8") as dst:
        dst.write(np.full((3, 64, 64), 120, np.uint8))
    out = write_earlier(tmp_path / "map.tif")
    with pytest.raises(PovertyMapperError, match=r"photo\.jpg has no georeference .*Georeference it \(Raster > Georeferencer\)"):
        predict_to(photo, out, small_model)
    assert_untouched(out)
    (tmp_path / "photo.jgw").write_text("30\n0\n0\n-30\n500015\n7000015\n")  # a world file, and still no CRS
    with pytest.raises(PovertyMapperError, match="no coordinate reference system; assign one"):
        predict_to(photo, out, small_model)


def test_a_geographic_raster_at_latitude_60_gets_tiles_of_the_right_size_in_metres(tmp_path, small_model):
    """EPSG:4326, 0.0005 degree pixels around latitude 60 (27.8 m across, 55.3 m down):
    240 m tiles are about 8.6 pixels wide and 4.3 high, and output cells 240 m square,
    measured independently by projecting their corners to UTM 32N."""
    transform = from_origin(10.0, 60.01, 0.0005, 0.0005)  # 40 x 40 px: centre at latitude 60.0
    raster = write_geotiff(tmp_path / "generated_wgs84.tif", make_reflectance(40, 40), crs="EPSG:4326", transform=transform)
    region = region_window(transform, 40, 40)
    grid = tile_grid_for(transform, CRS.from_epsg(4326), region, 240.0)
    assert grid.tile_x == pytest.approx(8.62, abs=0.05) and grid.tile_y == pytest.approx(4.34, abs=0.05)

    result = predict_to(raster, tmp_path / "map.tif", small_model)
    with rasterio.open(tmp_path / "map.tif") as ds:
        t, shape, values = ds.transform, ds.shape, ds.read(1)
    assert shape == (math.ceil(40 / grid.tile_y), math.ceil(40 / grid.tile_x)) == (10, 5)
    assert (t.c, t.f) == (10.0, 60.01)
    # Corners of the cell at the middle of the map, in metres (UTM 32N covers 6-12 E).
    col, row = 2, 5
    xs, ys = zip(*(t * (col + dc, row + dr) for dc, dr in ((0, 0), (1, 0), (0, 1))))
    ex, ny = warp_transform("EPSG:4326", "EPSG:32632", xs, ys)
    assert math.hypot(ex[1] - ex[0], ny[1] - ny[0]) == pytest.approx(240.0, rel=0.01)  # across
    assert math.hypot(ex[2] - ex[0], ny[2] - ny[0]) == pytest.approx(240.0, rel=0.01)  # down
    estimated = values != NODATA
    assert result.n_estimated == int(estimated.sum()) >= 40
    assert np.all(np.isfinite(values[estimated]))


def test_an_image_smaller_than_one_tile_is_refused_naming_both_sizes(tmp_path, small_model):
    big_tiles = dataclasses.replace(small_model, tile_size_px=224)  # 6.72 km tiles
    raster = write_geotiff(tmp_path / "generated_small.tif", make_reflectance(100, 130), transform=from_origin(X0, Y0, 20.0, 20.0))
    out = write_earlier(tmp_path / "map.tif")
    with pytest.raises(PovertyMapperError, match=r"The image covers 2\.6 x 2\.0 km, smaller than one 6\.72 km tile"):
        predict_to(raster, out, big_tiles)
    assert_untouched(out)
    tiny = write_geotiff(tmp_path / "generated_tiny.tif", make_reflectance(5, 5))
    with pytest.raises(PovertyMapperError, match=r"0\.15 x 0\.15 km, smaller than one 0\.24 km tile.*smaller tiles"):
        predict_to(tiny, out, small_model)
    assert_untouched(out)


def test_the_rule_is_whether_any_tile_can_reach_the_valid_fraction(tmp_path, small_model):
    """5 of the 8 pixels of a tile across (62%) can reach 50%; 3 of 8 (38%) cannot."""
    narrow = write_geotiff(tmp_path / "generated_5px.tif", make_reflectance(40, 5))
    result = predict_to(narrow, tmp_path / "map.tif", small_model)
    assert result.n_estimated == result.n_cells == 5
    narrower = write_geotiff(tmp_path / "generated_3px.tif", make_reflectance(40, 3))
    with pytest.raises(PovertyMapperError, match="0.09 x 1.20 km"):
        predict_to(narrower, tmp_path / "map2.tif", small_model)
    assert not (tmp_path / "map2.tif").exists()
    # With a lower valid fraction the same image is fine.
    assert predict_to(narrower, tmp_path / "map3.tif", small_model, min_valid_fraction=0.3).n_estimated == 5


def test_a_region_outside_the_raster_is_refused_and_one_partly_outside_is_clipped(tmp_path, small_model):
    raster = write_geotiff(tmp_path / "generated_scene.tif", make_reflectance())
    out = write_earlier(tmp_path / "map.tif")
    with pytest.raises(PovertyMapperError, match="does not overlap the raster; choose an extent inside"):
        predict_to(raster, out, small_model, bounds=(X0 - 9000, Y0 - 900, X0 - 3000, Y0 - 300))
    assert_untouched(out)
    # 3 km west and north of the raster, 600 m (20 px) into it: clipped to its corner.
    result = predict_to(raster, tmp_path / "clipped.tif", small_model, bounds=(X0 - 3000, Y0 - 600, X0 + 600, Y0 + 3000))
    with rasterio.open(tmp_path / "clipped.tif") as ds:
        assert (ds.transform.c, ds.transform.f) == (X0, Y0)
        assert ds.shape == (3, 3)  # ceil(20 / 8)
        assert np.all(ds.read(1) != NODATA)
    assert result.n_cells == result.n_estimated == 9


def test_an_all_nodata_region_gives_a_note_and_a_nodata_map(tmp_path, small_model):
    data = make_reflectance()
    data[:, :16, :16] = -1.0  # declared nodata: the region below holds nothing else
    raster = write_geotiff(tmp_path / "generated_gap.tif", data, nodata=-1.0)
    result = predict_to(raster, tmp_path / "map.tif", small_model, bounds=(X0, Y0 - 16 * PIXEL, X0 + 16 * PIXEL, Y0))
    assert result.n_cells == 4 and result.n_estimated == 0
    assert result.value_mean is None
    assert any("only nodata" in note and "region covers imagery" in note for note in result.notes)
    assert np.all(_values(tmp_path / "map.tif") == NODATA)


def _landsat_dn(data: np.ndarray, dtype="uint16") -> np.ndarray:
    """Reflectance as Landsat Collection 1 Level-1 digital numbers (2e-5 * DN - 0.1)."""
    return np.round((data + 0.1) / 2e-5).astype(dtype)


def _c2_l2_dn(data: np.ndarray) -> np.ndarray:
    """Reflectance as Landsat Collection 2 Level-2 digital numbers (2.75e-5 * DN - 0.2)."""
    return np.round((data + 0.2) / 2.75e-5).astype("uint16")


def test_auto_radiometry_follows_the_model_trained_on_collection_2(tmp_path, small_model):
    """A model fitted on Collection 2 Level-2 DN maps 16-bit imagery with that preset under
    'auto', not with the Level-1 guess from the pixel type (the guess gave other values)."""
    c2_model = dataclasses.replace(small_model, radiometry="landsat_c2_l2")
    raster = write_geotiff(tmp_path / "generated_c2_l2.tif", _c2_l2_dn(make_reflectance()))
    auto = predict_to(raster, tmp_path / "auto.tif", c2_model)
    predict_to(raster, tmp_path / "explicit.tif", c2_model, radiometry="landsat_c2_l2")
    guessed = predict_to(raster, tmp_path / "guessed.tif", small_model)  # a model that names no radiometry
    assert auto.radiometry.key == "landsat_c2_l2" and guessed.radiometry.key == "landsat_c1_l1"
    np.testing.assert_array_equal(_values(tmp_path / "auto.tif"), _values(tmp_path / "explicit.tif"))
    assert np.abs(_values(tmp_path / "auto.tif") - _values(tmp_path / "guessed.tif")).max() > 0.01
    # 8-bit renders cannot hold Collection 2 DN: 'auto' then falls back to the pixel type's guess.
    eight_bit = write_geotiff(tmp_path / "generated_8bit.tif", np.round(make_reflectance() * 255).astype("uint8"))
    assert predict_to(eight_bit, tmp_path / "eight.tif", c2_model).radiometry.key == "eight_bit"


def test_a_fit_on_collection_2_dn_is_mapped_as_collection_2(tmp_path):
    """The chain the bug broke: fitclusters with the Collection 2 preset writes the preset
    into the model file, and predict with 'auto' follows it."""
    refl = make_reflectance(64, 64, seed=3)
    raster = write_geotiff(tmp_path / "generated_c2_l2.tif", _c2_l2_dn(refl))
    rng = np.random.default_rng(5)
    clusters = [Cluster(X0 + x, Y0 - y, float(v)) for x, y, v in
                zip(rng.uniform(300, 1600, 30), rng.uniform(300, 1600, 30), rng.normal(size=30))]
    model_path = tmp_path / "c2.povmodel"
    fit_clusters(ClusterFitConfig(
        image_path=str(raster), clusters=clusters, model_path=str(model_path), outcome_name="generated",
        box_size_m=480.0, tile_size_m=240.0, radiometry="landsat_c2_l2", device="cpu", n_folds=3,
        fold_distance_m=0.0,  # 30 clusters in 1.3 km: folds by place only, this test is about radiometry
    ))
    model = load_model(model_path)
    assert model.radiometry == "landsat_c2_l2" and model.band_indexes == (1, 2, 3)
    assert predict_to(raster, tmp_path / "map.tif", model).radiometry.key == "landsat_c2_l2"


@pytest.mark.parametrize("radiometry", ["auto", "landsat_c1_l1", "landsat_c2_l2", "sentinel2_l2a"])
def test_fill_value_zero_without_declared_nodata_is_fill_for_the_product_presets(tmp_path, small_model, radiometry):
    # Level-1 DN for every preset but Sentinel-2's (read as Sentinel-2 they would be
    # reflectances of 0.6 and more: cloud-bright, and screened as cloud).
    dn = np.round(make_reflectance() * 1e4).astype("uint16") if radiometry == "sentinel2_l2a" else _landsat_dn(make_reflectance())
    dn[:, :16, :16] = 0  # the fill corner of a scene: 0 in every band, no nodata declared
    dn[0, 20, 20] = 0  # 0 in one band only is a (dark) pixel, not fill
    raster = write_geotiff(tmp_path / "generated_dn.tif", dn)
    result = predict_to(raster, tmp_path / "map.tif", small_model, radiometry=radiometry)
    values = _values(tmp_path / "map.tif")
    assert np.all(values[:2, :2] == NODATA)
    rest = np.ones(values.shape, bool)
    rest[:2, :2] = False
    assert np.all(values[rest] != NODATA) and np.all(np.isfinite(values[rest]))
    assert result.n_estimated == 20 - 4


def test_with_a_declared_nodata_the_product_fill_value_is_data(tmp_path, small_model):
    dn = _landsat_dn(make_reflectance())
    dn[:, :16, :16] = 0
    raster = write_geotiff(tmp_path / "generated_dn_nodata.tif", dn, nodata=65535)
    assert predict_to(raster, tmp_path / "map.tif", small_model).n_estimated == 20


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32", "float64"])
def test_every_pixel_type_gives_finite_estimates(tmp_path, small_model, dtype):
    refl = make_reflectance()
    if dtype == "uint8":
        data = np.round(refl * 255).astype(dtype)
    elif dtype in ("uint16", "int16"):
        data = _landsat_dn(refl, dtype)
    else:
        data = refl.astype(dtype)
    result = predict_to(write_geotiff(tmp_path / f"generated_{dtype}.tif", data), tmp_path / "map.tif", small_model)
    values = _values(tmp_path / "map.tif")
    assert result.n_estimated == 20
    assert np.all(np.isfinite(values)) and np.all(values != NODATA)


def test_the_same_numbers_give_the_same_estimates_whatever_the_type(tmp_path, small_model):
    refl = make_reflectance()
    maps = {}
    for dtype in ("uint16", "int16", "float32", "float64"):
        data = _landsat_dn(refl, dtype) if dtype.endswith("int16") else refl.astype(dtype)
        predict_to(write_geotiff(tmp_path / f"generated_{dtype}.tif", data), tmp_path / f"map_{dtype}.tif", small_model)
        maps[dtype] = _values(tmp_path / f"map_{dtype}.tif")
    np.testing.assert_array_equal(maps["uint16"], maps["int16"])
    np.testing.assert_allclose(maps["float32"], maps["float64"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("nodata", [None, -1.0])
def test_nan_and_infinity_are_invalid_pixels(tmp_path, small_model, nodata):
    data = make_reflectance()
    data[:, 0:8, 0:8] = np.nan  # cell (0, 0)
    data[:, 0:8, 8:16] = np.inf  # cell (0, 1)
    data[2, 8:16, 0:8] = -np.inf  # cell (1, 0): one band suffices to make a pixel invalid
    nan_pixels = np.zeros((8, 8), bool)
    nan_pixels[:2, :] = True  # cell (1, 1): 16 of 64 pixels NaN in one band
    data[1, 8:16, 8:16][nan_pixels] = np.nan
    raster = write_geotiff(tmp_path / "generated_nan.tif", data, nodata=nodata)
    result = predict_to(raster, tmp_path / "map.tif", small_model)
    values = _values(tmp_path / "map.tif")
    assert values[0, 0] == values[0, 1] == values[1, 0] == NODATA
    assert result.n_estimated == 20 - 3 and np.all(np.isfinite(values))
    # Cell (1, 1) is estimated from its 48 finite pixels alone.
    tile = torch.from_numpy(np.nan_to_num(data[:, 8:16, 8:16], nan=0.0))[None]
    valid = torch.from_numpy(~nan_pixels)[None]
    expected = small_model.regressor.predict(small_model.extractor.extract(tile, valid).numpy())[0]
    assert values[1, 1] == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_fewer_or_more_bands_than_the_model_expects(tmp_path, small_model):
    out = write_earlier(tmp_path / "map.tif")
    two = write_geotiff(tmp_path / "generated_2bands.tif", make_reflectance(bands=2), descriptions=("", ""))
    with pytest.raises(PovertyMapperError, match=r"needs 3 bands \(BLUE, GREEN, RED\) but the raster has only 2"):
        predict_to(two, out, small_model)
    four = write_geotiff(tmp_path / "generated_4bands.tif", make_reflectance(bands=4), descriptions=("", "", "", ""))
    with pytest.raises(PovertyMapperError, match=r"which of the raster's 4 bands are the model's BLUE, GREEN, RED"):
        predict_to(four, out, small_model)
    with pytest.raises(PovertyMapperError, match=r"needs 3 bands \(BLUE, GREEN, RED\) but 2 band numbers"):
        predict_to(four, out, small_model, band_indexes=(1, 2))
    assert_untouched(out)
    # Four bands with names: the model's three are found by name.
    named = write_geotiff(tmp_path / "generated_named.tif", make_reflectance(bands=4), descriptions=("nir", "red", "green", "blue"))
    assert predict_to(named, tmp_path / "named.tif", small_model).band_indexes == (4, 3, 2)


def test_a_model_whose_bands_the_raster_does_not_have_is_refused_naming_both(tmp_path, small_model):
    swir_model = dataclasses.replace(small_model, bands=("NIR", "SWIR1", "SWIR2"))
    raster = write_geotiff(tmp_path / "generated_rgb.tif", make_reflectance())  # described blue, green, red
    out = write_earlier(tmp_path / "map.tif")
    with pytest.raises(PovertyMapperError, match=r"expects the bands NIR, SWIR1, SWIR2, but the raster's bands are blue, green, red"):
        predict_to(raster, out, swir_model)
    assert_untouched(out)
    # Without names the bands are taken in order, as before.
    unnamed = write_geotiff(tmp_path / "generated_unnamed.tif", make_reflectance(), descriptions=("", "", ""))
    assert predict_to(unnamed, tmp_path / "unnamed.tif", swir_model).band_indexes == (1, 2, 3)


@pytest.mark.parametrize("layout", [{}, {"tiled": True, "blockxsize": 64, "blockysize": 64, "compress": "deflate"}])
@pytest.mark.parametrize("read_workers", [0, 2])
def test_a_truncated_geotiff_is_a_clear_error_naming_the_file(tmp_path, small_model, layout, read_workers):
    """The TIFF directory comes first: the file opens, and the damage shows when reading."""
    full = write_geotiff(tmp_path / "generated_full.tif", make_reflectance(256, 256), descriptions=(), **layout)
    cut = tmp_path / "generated_truncated.tif"
    data = full.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])  # a copy cut short
    with rasterio.open(cut) as ds:
        assert ds.shape == (256, 256)
    out = write_earlier(tmp_path / "map.tif")
    with pytest.raises(PovertyMapperError, match=r"Cannot read the raster .*generated_truncated\.tif.*damaged or incomplete.*cut short"):
        predict_to(cut, out, small_model, read_workers=read_workers)
    assert_untouched(out)


def test_a_truncated_geotiff_whose_directory_is_lost_cannot_be_opened(tmp_path, small_model):
    """Band names written after the pixels move the TIFF directory to the end of the file."""
    full = write_geotiff(tmp_path / "generated_full.tif", make_reflectance(256, 256))
    cut = tmp_path / "generated_truncated.tif"
    cut.write_bytes(full.read_bytes()[:-4096])
    out = write_earlier(tmp_path / "map.tif")
    with pytest.raises(PovertyMapperError, match=r"Cannot open the raster .*generated_truncated\.tif.*complete raster.*cut short"):
        predict_to(cut, out, small_model)
    assert_untouched(out)


# --- survey clusters --------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(small_world):
    return small_world  # conftest's session-wide generated world


def _fit(world, clusters, model_path, **kw):
    kw.setdefault("box_size_m", 1500.0)
    # 40 generated clusters with 1.5 km boxes in 7.7 km form two groups at the box size;
    # these tests are about other things.
    kw.setdefault("fold_distance_m", 750.0)
    kw.setdefault("tile_size_m", 480.0)
    kw.setdefault("device", "cpu")
    return fit_clusters(ClusterFitConfig(str(world.image_path), tuple(clusters), str(model_path), **kw))


def _clusters(world):
    return [Cluster(x, y, o, w, str(i)) for i, (x, y, o, w) in enumerate(world.clusters)]


def test_clusters_outside_or_without_a_numeric_outcome_are_left_out_and_counted(world, tmp_path):
    clusters = _clusters(world)
    bad = {0: None, 1: "n/a", 2: float("nan"), 3: float("inf")}
    for i, outcome in bad.items():
        clusters[i] = dataclasses.replace(clusters[i], outcome=outcome)
    east = world.transform.c + 256 * 30.0
    clusters[4] = dataclasses.replace(clusters[4], x=east + 5_000.0)  # 5 km east of the image
    clusters[5] = dataclasses.replace(clusters[5], x=-1e6, y=-1e6)  # nowhere near
    result = _fit(world, clusters, tmp_path / "m.povmodel")
    assert result.report.clusters.given == 40 and result.report.clusters.used == 40 - 6
    assert result.used.tolist() == [False] * 6 + [True] * 34
    assert "4 clusters without a numeric outcome (missing, NaN or text) left out." in result.notes
    assert "2 clusters outside the image left out." in result.notes
    assert result.report.notes == result.notes


def test_clusters_at_the_same_location_share_a_fold(world, tmp_path):
    clusters = _clusters(world)
    twins = [dataclasses.replace(c, id=f"{c.id}-again", outcome=c.outcome + 0.1) for c in clusters[:8]]
    result = _fit(world, clusters + twins, tmp_path / "m.povmodel", fold_distance_m=0.0)
    assert result.report.clusters.groups == 40
    assert result.report.folds.distance_m == 0.0
    assert sorted(result.report.folds.sizes) == [9, 9, 10, 10, 10]
    folds = result.fold  # all 48 used
    for i in range(8):
        assert folds[i] == folds[40 + i]
    assert len(set(folds.tolist())) == 5


def test_fewer_clusters_or_locations_than_cross_validation_needs(world, tmp_path):
    out = write_earlier(tmp_path / "m.povmodel")
    with pytest.raises(PovertyMapperError, match=r"Only 6 clusters have imagery and a valid outcome; at least 10 are needed for 5-fold"):
        _fit(world, _clusters(world)[:6], out)
    assert_untouched(out)
    # Twelve clusters but at three places: folds by location cannot make five.
    places = _clusters(world)[:3]
    clusters = [dataclasses.replace(places[i % 3], outcome=float(i)) for i in range(12)]
    with pytest.raises(PovertyMapperError, match=r"The 12 clusters form only 3 groups of neighbours closer than 750 m "
                       r"\(each group stays in one fold\), too few for 5 folds; lower the number of folds or the fold distance"):
        _fit(world, clusters, out)
    assert_untouched(out)


def test_too_few_valid_pixels_for_random_filters_is_a_clear_error(world, tmp_path):
    with pytest.raises(PovertyMapperError, match="too few valid pixels to draw 1000000 random filters.*histogram"):
        _fit(world, _clusters(world), tmp_path / "m.povmodel", extractor_kind="random", n_random_filters=10**6)
    assert not (tmp_path / "m.povmodel").exists()


@pytest.mark.parametrize("extractor", ["histogram", "random"])
def test_model_files_never_hold_cluster_coordinates(world, tmp_path, extractor):
    clusters = _clusters(world)
    path = tmp_path / "m.povmodel"
    _fit(world, clusters, path, extractor_kind=extractor, n_random_filters=32,
         report_path=str(tmp_path / "cv.json"))
    coordinates = np.array([v for c in clusters for v in (c.x, c.y)])
    with zipfile.ZipFile(path) as zf:
        text = zf.read("model.json").decode()
        for value in coordinates:
            assert f"{value:.0f}" not in text and f"{value:.1f}" not in text
        numbers = [float(v) for v in __import__("re").findall(r"-?\d+\.?\d*(?:e[-+]?\d+)?", text)]
        for name in zf.namelist():
            if name.endswith(".npy"):
                numbers.extend(np.lib.format.read_array(io.BytesIO(zf.read(name))).ravel().tolist())
    numbers = np.array(numbers, np.float64)
    # No stored number is any cluster's x or y (to a metre).
    assert not np.any(np.abs(numbers[:, None] - coordinates[None, :]) < 1.0)
    # The report does not list them either.
    report = (tmp_path / "cv.json").read_text()
    assert all(f"{value:.0f}" not in report for value in coordinates)


# --- nightlights ------------------------------------------------------------------------


def test_nightlights_in_another_crs_and_resolution_are_averaged_onto_the_grid(tmp_path):
    """Generated lights in WGS 84 at 0.001 degree whose value is 1000 x longitude,
    averaged onto a UTM grid of 1 km cells: each cell gets about 1000 x the longitude
    of its centre."""
    west, north, n = 32.9, 9.1, 300  # around the generated world (UTM 36N)
    lon = west + (np.arange(n) + 0.5) * 0.001
    lights = np.repeat((1000 * lon)[None, :], n, 0).astype(np.float32)
    path = write_geotiff(tmp_path / "generated_lights_wgs84.tif", lights[None], crs="EPSG:4326",
                   transform=from_origin(west, north, 0.001, 0.001), descriptions=())
    grid_transform = from_origin(500_000.0, 1_000_000.0, 1000.0, 1000.0)
    grid_crs = CRS.from_epsg(32636)
    means = mean_lights_on_grid(str(path), grid_transform, (8, 8), grid_crs)
    assert np.all(np.isfinite(means))
    rows, cols = np.mgrid[0:8, 0:8]
    xs, ys = grid_transform * (cols.ravel() + 0.5, rows.ravel() + 0.5)
    centre_lon, _ = warp_transform(grid_crs, "EPSG:4326", xs, ys)
    np.testing.assert_allclose(means.ravel(), 1000 * np.array(centre_lon), rtol=2e-4)


def _far_lights(tmp_path) -> Path:
    """Generated nightlights over South America, nowhere near the generated world."""
    return write_geotiff(tmp_path / "generated_far_lights.tif", np.ones((1, 50, 50), np.float32), crs="EPSG:4326",
                   transform=from_origin(-60.0, -20.0, 0.01, 0.01), descriptions=())


def test_nightlights_that_miss_the_region_are_a_clear_error(world, tmp_path):
    out = write_earlier(tmp_path / "proxy.povmodel")
    with pytest.raises(PovertyMapperError, match="does not cover the region of the image; choose nightlights that overlap it"):
        train_proxy(ProxyTrainingConfig(str(world.image_path), str(_far_lights(tmp_path)), str(out),
                                        tile_size_m=480.0, epochs=1, device="cpu"))
    assert_untouched(out)


def test_nightlights_that_miss_the_clusters_leave_the_fit_without_a_baseline(world, tmp_path):
    result = _fit(world, _clusters(world), tmp_path / "m.povmodel", nightlights_path=str(_far_lights(tmp_path)))
    assert result.report.nightlights_baseline is None
    assert "Too few clusters are covered by the nightlights raster for a baseline." in result.notes
    assert load_model(tmp_path / "m.povmodel").can_predict


# --- model files ------------------------------------------------------------------------
# Truncated files, newer format versions and pickled payloads: tests/test_model_file.py.


def test_corrupted_model_files_only_ever_give_a_model_file_error(small_model, tmp_path):
    data = bytearray(save_model(small_model, tmp_path / "m.povmodel").read_bytes())
    with zipfile.ZipFile(tmp_path / "m.povmodel") as zf:
        info = zf.getinfo("regressor/coef.npy")
    # Bytes inside one deflated entry: a broken stream, not merely a wrong checksum.
    start = info.header_offset + 30 + len(info.filename) + 40
    broken = bytearray(data)
    broken[start : start + 16] = bytes(16)
    (tmp_path / "broken.povmodel").write_bytes(bytes(broken))
    with pytest.raises(ModelFileError, match=r"broken\.povmodel is not a readable poverty model file"):
        load_model(tmp_path / "broken.povmodel")
    # Random damage anywhere: a ModelFileError naming the file, or (harmless bytes) a model.
    rng = random.Random(0)
    outcomes = set()
    for k in range(300):
        damaged = bytearray(data)
        for _ in range(rng.choice((1, 4, 32))):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        path = tmp_path / f"damaged_{k}.povmodel"
        path.write_bytes(bytes(damaged))
        try:
            load_model(path)
            outcomes.add("loaded")
        except ModelFileError as exc:
            assert path.name in str(exc)
            outcomes.add("refused")
    assert "refused" in outcomes


def _with_meta(src: Path, dst: Path, change) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "model.json":
                meta = json.loads(data)
                change(meta)
                data = json.dumps(meta).encode()
            zout.writestr(info, data)
    return dst


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.update(extractor="histogram"),
        lambda m: m.update(bands=3),
        lambda m: m.update(bands=[]),
        lambda m: m.update(tile_size_px=0),
        lambda m: m.update(tile_size_px="many"),
        lambda m: m.update(pixel_size_m=-30.0),
        lambda m: m.update(target=["wealth"]),
        lambda m: m.update(regressor={"kind": "ridge"}),
    ],
)
def test_crafted_model_descriptions_are_refused(small_model, tmp_path, change):
    path = save_model(small_model, tmp_path / "m.povmodel")
    crafted = _with_meta(path, tmp_path / "crafted.povmodel", change)
    with pytest.raises(ModelFileError, match=r"crafted\.povmodel"):
        load_model(crafted)


def test_a_model_file_that_would_unpack_to_gigabytes_is_refused_unread(small_model, tmp_path, monkeypatch):
    path = save_model(small_model, tmp_path / "m.povmodel")
    assert load_model(path).can_predict  # under the default limit
    with zipfile.ZipFile(path) as zf:
        unpacked = sum(info.file_size for info in zf.infolist())
    monkeypatch.setattr(model_file_module, "MAX_UNPACKED_BYTES", unpacked - 1)
    with pytest.raises(ModelFileError, match="far more than a model file holds"):
        load_model(path)


# --- outputs and runs -------------------------------------------------------------------


@pytest.fixture
def scene(tmp_path) -> Path:
    return write_geotiff(tmp_path / "generated_scene.tif", make_reflectance())


def test_an_output_folder_that_is_not_writable_is_refused_before_the_run(scene, tmp_path, small_model, monkeypatch):
    # Tests may run as root, for whom every folder is writable: the refusal is simulated
    # where the operating system answers.
    out = write_earlier(tmp_path / "map.tif")
    real_access = writer_module.os.access
    monkeypatch.setattr(writer_module.os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
    reads = []
    monkeypatch.setattr(TileReader, "read_dn_into", lambda *a: reads.append(a))
    with pytest.raises(PovertyMapperError, match="is not writable; choose another output file"):
        predict_to(scene, out, small_model)
    assert reads == []
    assert_untouched(out)


def test_an_output_that_cannot_be_created_or_renamed_is_a_clear_error(scene, tmp_path, small_model, monkeypatch):
    out = write_earlier(tmp_path / "map.tif")
    real_open = rasterio.open

    def open_refusing_writes(path, mode="r", *args, **kw):
        if mode == "w":
            raise RasterioIOError(f"Attempt to create new tiff file '{path}' failed: Permission denied")
        return real_open(path, mode, *args, **kw)

    with monkeypatch.context() as m:
        m.setattr(rasterio, "open", open_refusing_writes)
        with pytest.raises(PovertyMapperError, match=r"Cannot create the output .*map\.tif.*choose a folder you can write to"):
            predict_to(scene, out, small_model)
    assert_untouched(out)

    def replace_refused(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(dst))

    with monkeypatch.context() as m:
        m.setattr("poverty_mapper.core.atomic.os.replace", replace_refused)
        with pytest.raises(PovertyMapperError, match=r"Cannot write .*map\.tif: permission denied.*earlier file of that name is unchanged"):
            predict_to(scene, out, small_model)
    assert_untouched(out)


def test_an_output_name_that_is_a_folder_is_refused(scene, tmp_path, small_model):
    (tmp_path / "map.tif").mkdir()
    with pytest.raises(PovertyMapperError, match="is a folder; choose a file name"):
        predict_to(scene, tmp_path / "map.tif", small_model)
    (tmp_path / "model.povmodel").mkdir()
    with pytest.raises(PovertyMapperError, match="is a folder; choose a file name"):
        save_model(small_model, tmp_path / "model.povmodel")
    assert list(tmp_path.glob("*.partial*")) == []


def test_reports_and_models_in_folders_that_cannot_exist_are_clear_errors(small_model, tmp_path):
    with pytest.raises(PovertyMapperError, match=r"The folder .*missing does not exist; choose an existing folder for cv\.json"):
        write_json(tmp_path / "missing" / "cv.json", {"r2": 0.5})
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(PovertyMapperError, match=r"Cannot create the folder .*a_file for the model file"):
        save_model(small_model, tmp_path / "a_file" / "m.povmodel")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


class _DiskFillingDataset:
    """A dataset being written whose disk fills up after ``rows`` row writes."""

    def __init__(self, dataset, rows: int):
        self._dataset, self._rows = dataset, rows

    def write(self, *args, **kw):
        if self._rows == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._rows -= 1
        return self._dataset.write(*args, **kw)

    def __getattr__(self, name):
        return getattr(self._dataset, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._dataset.__exit__(*exc)


@pytest.mark.parametrize("rows", [0, 2])
def test_a_disk_filling_up_mid_run_says_so_and_leaves_the_earlier_map(scene, tmp_path, small_model, monkeypatch, rows):
    out = write_earlier(tmp_path / "map.tif")
    real_create = writer_module._create_output
    monkeypatch.setattr(writer_module, "_create_output", lambda *a: _DiskFillingDataset(real_create(*a), rows))
    with pytest.raises(PovertyMapperError, match=r"The disk is full: .*map\.tif could not be written\. Free some space"):
        predict_to(scene, out, small_model, batch_size=2)
    assert_untouched(out)


def test_a_disk_filling_up_while_saving_a_model_or_report(small_model, tmp_path, monkeypatch):
    model_out, report_out = write_earlier(tmp_path / "m.povmodel"), write_earlier(tmp_path / "cv.json")
    real_writestr = zipfile.ZipFile.writestr
    written = []

    def writestr(self, *args, **kw):
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(args[0])
        return real_writestr(self, *args, **kw)

    with monkeypatch.context() as m:
        m.setattr(zipfile.ZipFile, "writestr", writestr)
        with pytest.raises(PovertyMapperError, match=r"The disk is full: .*m\.povmodel"):
            save_model(small_model, model_out)
    assert len(written) == 1  # the disk filled up after the first entry
    assert_untouched(model_out)
    with monkeypatch.context() as m:
        m.setattr(Path, "write_text", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left")))
        with pytest.raises(PovertyMapperError, match=r"The disk is full: .*cv\.json"):
            write_json(report_out, {"r2": 0.5})
    assert_untouched(report_out)


def _cancel_after(k: int):
    """A cancel check that answers False k times, then True."""
    answers = iter([False] * k)
    return lambda: next(answers, True)


@pytest.mark.parametrize("k", [0, 1, 3, 7])
def test_cancel_after_any_number_of_batches_leaves_the_earlier_map(scene, tmp_path, small_model, k):
    out = write_earlier(tmp_path / "map.tif")
    done = []
    with pytest.raises(Canceled):
        predict_poverty_map(
            PredictRequest(str(scene), str(out), small_model, device="cpu", batch_size=2),  # 10 batches
            progress=done.append, is_canceled=_cancel_after(k),
        )
    assert len([f for f in done if f < 1]) == k
    assert_untouched(out)
    assert not [t for t in threading.enumerate() if t.name.startswith("poverty-read")]


@pytest.mark.parametrize("k", [0, 1])
def test_cancel_during_a_cluster_fit_leaves_the_earlier_model(world, tmp_path, k):
    out = write_earlier(tmp_path / "m.povmodel")
    with pytest.raises(Canceled):
        fit_clusters(
            ClusterFitConfig(str(world.image_path), tuple(_clusters(world)), str(out), box_size_m=1500,
                             tile_size_m=480, device="cpu", batch_size=16),
            is_canceled=_cancel_after(k),
        )
    assert_untouched(out)


@pytest.mark.parametrize("k", [0, 1, 4])
def test_cancel_during_proxy_training_leaves_the_earlier_model(world, tmp_path, k):
    """k = 0 and 1: while reading tiles; 4: while training."""
    out = write_earlier(tmp_path / "proxy.povmodel")
    with pytest.raises(Canceled):
        train_proxy(
            ProxyTrainingConfig(str(world.image_path), str(world.lights_path), str(out), tile_size_m=240.0,
                                epochs=1, batch_size=32, block_size_tiles=2, device="cpu"),
            is_canceled=_cancel_after(k),
        )
    assert_untouched(out)


def _in_thread(function, timeout: float = 60.0):
    """Runs ``function`` in a thread; returns what it raised. Fails if it hangs."""
    raised = []

    def target():
        try:
            function()
        except BaseException as exc:  # noqa: BLE001 (handed to the test)
            raised.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the run hangs"
    return raised[0] if raised else None


def test_a_crash_in_a_reader_thread_reaches_the_caller_without_a_hang(scene, tmp_path, small_model, monkeypatch):
    out = write_earlier(tmp_path / "map.tif")
    real_read = TileReader.read_dn_into
    threads = []

    def read_then_crash(self, *args):
        # (The calling thread reads a sample of tiles first, for the scene's band statistics.)
        if threading.current_thread().name.startswith("poverty-read"):
            threads.append(threading.current_thread().name)
            if len(threads) > 5:
                raise RuntimeError("generated crash in a reader thread")
        return real_read(self, *args)

    monkeypatch.setattr(TileReader, "read_dn_into", read_then_crash)
    exc = _in_thread(lambda: predict_to(scene, out, small_model, batch_size=2, read_workers=2))
    assert isinstance(exc, RuntimeError) and "generated crash" in str(exc)
    assert len(threads) > 5  # the crash came from a reader thread
    assert_untouched(out)
    assert not [t for t in threading.enumerate() if t.name.startswith("poverty-read")]


def test_a_crash_in_the_model_while_readers_are_ahead_does_not_hang(scene, tmp_path, small_model, monkeypatch):
    out = write_earlier(tmp_path / "map.tif")
    calls = []

    def estimate_then_crash(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("generated crash in the model")
        return estimate_batch(*args)

    monkeypatch.setattr(executors_module, "estimate_batch", estimate_then_crash)
    exc = _in_thread(lambda: predict_to(scene, out, small_model, batch_size=2, read_workers=2, prefetch_batches=4))
    assert isinstance(exc, RuntimeError) and "generated crash in the model" in str(exc)
    assert_untouched(out)
    assert not [t for t in threading.enumerate() if t.name.startswith("poverty-read")]


class _OutOfMemoryAboveTwo:
    """The model's extractor, but a batch of more than two tiles runs 'out of GPU memory'."""

    kind = "histogram"
    reads_imagery = True

    def __init__(self, extractor):
        self.extractor, self.sizes = extractor, []

    @property
    def n_features(self):
        return self.extractor.n_features

    def extract_dn(self, dn, valid, radiometry):
        self.sizes.append(len(dn))
        if len(dn) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (generated)")
        return self.extractor.extract_dn(dn, valid, radiometry)


def test_cuda_out_of_memory_halves_the_batch_and_still_estimates_every_tile(small_model):
    rng = np.random.default_rng(5)
    dn = rng.uniform(0.02, 0.2, (11, 3, 8, 8)).astype(np.float32)
    valid = rng.random((11, 8, 8)) > 0.05
    plan = plan_run(torch.device("cpu"), small_model.extractor.kind, batch_size=11, mixed_precision=False)
    plain = estimate_batch(small_model, dn, valid, REFLECTANCE, plan)
    flaky = _OutOfMemoryAboveTwo(small_model.extractor)
    halved = estimate_batch(dataclasses.replace(small_model, extractor=flaky), dn, valid, REFLECTANCE, plan)
    assert halved.shape == (11, 1)  # the estimate column (the model has no feature domain)
    np.testing.assert_allclose(halved, plain, rtol=1e-6, atol=1e-6)
    assert flaky.sizes[0] == 11 and max(s for s in flaky.sizes if s <= 2) == 2
    assert sum(s for s in flaky.sizes if s <= 2) == 11  # every tile estimated once


def test_cuda_out_of_memory_on_a_single_tile_says_to_use_the_cpu(small_model):
    class AlwaysOutOfMemory(_OutOfMemoryAboveTwo):
        def extract_dn(self, dn, valid, radiometry):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (generated)")

    model = dataclasses.replace(small_model, extractor=AlwaysOutOfMemory(small_model.extractor))
    dn, valid = np.zeros((4, 3, 8, 8), np.float32), np.ones((4, 8, 8), bool)
    plan = plan_run(torch.device("cpu"), model.extractor.kind, batch_size=4, mixed_precision=False)
    with pytest.raises(PovertyMapperError, match=r"out of memory on a single tile; run on the CPU"):
        estimate_batch(model, dn, valid, REFLECTANCE, plan)


def test_out_of_memory_in_a_whole_run_gives_the_same_map(scene, tmp_path, small_model):
    predict_to(scene, tmp_path / "plain.tif", small_model, batch_size=8)
    flaky = _OutOfMemoryAboveTwo(small_model.extractor)
    predict_to(scene, tmp_path / "halved.tif", dataclasses.replace(small_model, extractor=flaky), batch_size=8)
    assert max(flaky.sizes) == 8
    # Same map up to float32 rounding: the ridge's matrix product over 8 tiles and over 2
    # may sum in another order (BLAS kernels differ between CPUs and matrix shapes).
    halved, plain = _values(tmp_path / "halved.tif"), _values(tmp_path / "plain.tif")
    np.testing.assert_array_equal(halved == NODATA, plain == NODATA)
    np.testing.assert_allclose(halved, plain, rtol=1e-5, atol=1e-6)


# --- the tile grid in random CRSs (properties) --------------------------------------------

# (CRS, pixel sizes in its units, origin ranges): a projected CRS in metres, one in US
# feet, Web Mercator, and geographic WGS 84 from the tropics to 70 degrees.
CRS_CASES = {
    "utm": (CRS.from_epsg(32621), (5.0, 30.0, 250.0), ((200_000, 800_000), (1_000_000, 9_000_000))),
    "feet": (CRS.from_epsg(2263), (16.4, 98.4), ((900_000, 1_100_000), (150_000, 250_000))),
    "mercator": (CRS.from_epsg(3857), (10.0, 38.2), ((-2e7, 2e7), (-1e7, 1e7))),
    "wgs84": (CRS.from_epsg(4326), (0.0001, 0.0005, 0.00833), ((-179.0, 170.0), (-70.0, 70.0))),
}


@st.composite
def rasters_and_regions(draw):
    crs, pixels, (xs, ys) = CRS_CASES[draw(st.sampled_from(sorted(CRS_CASES)))]
    pixel = draw(st.sampled_from(pixels))
    width, height = draw(st.integers(1, 300)), draw(st.integers(1, 300))
    x0, y0 = draw(st.floats(*xs)), draw(st.floats(*ys))
    transform = from_origin(x0, y0, pixel, pixel)
    fx = sorted(draw(st.tuples(st.floats(-0.3, 1.3), st.floats(-0.3, 1.3))))
    fy = sorted(draw(st.tuples(st.floats(-0.3, 1.3), st.floats(-0.3, 1.3))))
    return crs, transform, width, height, fx, fy


@settings(max_examples=200, deadline=None)
@given(case=rasters_and_regions(), tile_px=st.floats(1.0, 40.0), stride_fraction=st.floats(0.1, 1.0))
def test_property_grids_in_random_crss_cover_the_region_and_centre_their_tiles(case, tile_px, stride_fraction):
    crs, transform, width, height, (fx0, fx1), (fy0, fy1) = case
    minx, maxx = transform.c + fx0 * width * transform.a, transform.c + fx1 * width * transform.a
    maxy, miny = transform.f + fy0 * height * transform.e, transform.f + fy1 * height * transform.e
    # Clearly overlapping the raster (grazing extents are region_window's own tests).
    if min(fx1, 1.0) - max(fx0, 0.0) < 0.05 or min(fy1, 1.0) - max(fy0, 0.0) < 0.05:
        return
    region = region_window(transform, width, height, (minx, miny, maxx, maxy))
    assert region.intersection(width, height) == region  # inside the raster
    centre = transform * (region.col_off + region.width / 2, region.row_off + region.height / 2)
    mx, my = pixel_size_m(transform, crs, centre)
    tile_m = tile_px * max(mx, my)
    grid = tile_grid_for(transform, crs, region, tile_m, tile_m * stride_fraction)
    # Tiles and cells have the requested size in metres, in x and in y.
    assert grid.tile_x * mx == pytest.approx(tile_m) and grid.tile_y * my == pytest.approx(tile_m)
    assert grid.step_x * mx == pytest.approx(tile_m * stride_fraction)
    assert grid.step_y * my == pytest.approx(tile_m * stride_fraction)
    assert_cells_cover_region(grid)
    if len(grid) > 400:
        return
    # Each output cell's centre is its tile's centre (to half a raster pixel).
    assert_centres_match(grid)
    for row, col in grid.cells():
        win = grid.tile_window(row, col)
        assert (win.width, win.height) == (max(1, round(grid.tile_x)), max(1, round(grid.tile_y)))
        # A cell overlapping the region by a pixel or more reads pixels of the raster (a
        # thinner sliver may not: its whole-pixel tile can round to just outside).
        if col * grid.step_x <= region.width - 1 and row * grid.step_y <= region.height - 1:
            assert win.intersection(width, height) is not None


@settings(max_examples=100, deadline=None)
@given(latitude=st.floats(-65.0, 65.0), pixel=st.sampled_from([0.0001, 0.0005, 0.001]))
def test_property_geographic_tiles_measure_their_size_in_metres_on_the_ground(latitude, pixel):
    """The tile of a cell, projected to the local UTM zone, spans the tile size in metres
    across and down, within 0.5 % (metres per degree from the WGS 84 ellipsoid; the rest is
    UTM's own scale error and the straight chord across the parallel)."""
    transform = from_origin(30.0, latitude + 50 * pixel, pixel, pixel)
    region = PixelWindow(0, 0, 100, 100)
    tile_m = 40 * pixel * 111_320.0 * max(0.25, math.cos(math.radians(latitude)))
    grid = tile_grid_for(transform, CRS.from_epsg(4326), region, tile_m)
    corners = [transform * (c, r) for c, r in ((0, 0), (grid.tile_x, 0), (0, grid.tile_y))]
    utm = f"EPSG:{32636 if latitude >= 0 else 32736}"  # 30 E lies in zone 36
    xs, ys = warp_transform("EPSG:4326", utm, *zip(*corners))
    assert math.hypot(xs[1] - xs[0], ys[1] - ys[0]) == pytest.approx(tile_m, rel=0.005)
    assert math.hypot(xs[2] - xs[0], ys[2] - ys[0]) == pytest.approx(tile_m, rel=0.005)
