"""The set-up and wrap-up both trainers share, and the tile options shared with mapping."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from poverty_mapper.core.errors import PovertyMapperError
from poverty_mapper.core.extractors.histogram import HistogramExtractor
from poverty_mapper.core.inference.predict import PredictRequest
from poverty_mapper.core.models.model_file import PovertyModel, load_model, save_model
from poverty_mapper.core.options import TileOptions
from poverty_mapper.core.training.clusters import ClusterFitConfig
from poverty_mapper.core.training.outputs import write_training_outputs
from poverty_mapper.core.training.proxy import ProxyTrainingConfig
from poverty_mapper.core.training.setup import middle_pixel, open_imagery, region_centre

PIXEL_M = 30.0
X0, Y0 = 500_000.0, 1_000_000.0


@pytest.fixture
def image(tmp_path):
    """A generated 4-band, 40 x 64 px reflectance GeoTIFF in UTM, bands 1-3 named."""
    path = tmp_path / "image.tif"
    data = np.random.default_rng(0).uniform(0.02, 0.2, size=(4, 40, 64)).astype(np.float32)
    with rasterio.open(
        path, "w", driver="GTiff", width=64, height=40, count=4, dtype="float32",
        crs="EPSG:32636", transform=from_origin(X0, Y0, PIXEL_M, PIXEL_M),
    ) as dst:
        dst.write(data)
        dst.descriptions = ("blue", "green", "red", None)
    return path


def _histogram_model(**changes) -> PovertyModel:
    model = PovertyModel(
        name="generated histogram extractor", target=None, bands=("BLUE", "GREEN"),
        input_scaling="reflectance 0-1", pixel_size_m=PIXEL_M, tile_size_px=12,
        extractor=HistogramExtractor(np.array([0.1, 0.1]), np.array([0.05, 0.05])), regressor=None,
        radiometry="reflectance", band_indexes=(3, 1),
    )
    return dataclasses.replace(model, **changes)


def test_the_image_is_opened_with_all_its_bands_and_tiles_sized_from_its_pixels(image):
    with open_imagery(str(image), TileOptions(device="cpu"), 480.0) as imagery:
        assert not imagery.dataset.closed
        assert imagery.bands == (1, 2, 3, 4)
        assert imagery.band_names == ("blue", "green", "red", "band 4")
        assert imagery.radiometry.key == "reflectance"  # float32 pixels
        assert (imagery.tile_px, imagery.tile_m) == (16, 480.0)
        assert imagery.device.type == "cpu" and imagery.model is None
        assert imagery.tile_reader().size == 16
    assert imagery.dataset.closed


def test_a_model_file_sets_the_bands_scaling_and_tile_size(image, tmp_path):
    """The model's bands are found by name, as a map finds them: the band numbers of the
    imagery the model was made on (3, 1) say nothing about this image's."""
    save_model(_histogram_model(), tmp_path / "h.povmodel")
    with open_imagery(str(image), TileOptions(device="cpu"), 480.0, model_path=str(tmp_path / "h.povmodel")) as imagery:
        assert imagery.bands == (1, 2)
        assert imagery.band_names == ("blue", "green")
        assert (imagery.tile_px, imagery.tile_m) == (12, 360.0)
        assert imagery.model.bands == ("BLUE", "GREEN")
        assert imagery.notes == ()  # reflectance, as the model was made on
    with open_imagery(str(image), TileOptions(device="cpu", band_indexes=(3, 1)), 480.0,
                      model_path=str(tmp_path / "h.povmodel")) as imagery:
        assert imagery.bands == (3, 1)  # band numbers given are followed


def test_band_numbers_are_checked_with_the_message_of_each_trainer(image, tmp_path):
    with pytest.raises(PovertyMapperError, match=r"Band numbers \(1, 5\) do not fit the image's 4 bands"):
        with open_imagery(str(image), TileOptions(band_indexes=(1, 5)), 480.0, new_network=True):
            pass
    with pytest.raises(PovertyMapperError, match=r"extractor needs 2 bands but the band numbers are \[1, 5\] for an image of 4"):
        with open_imagery(str(image), TileOptions(band_indexes=(1, 5)), 480.0):
            pass
    save_model(_histogram_model(), tmp_path / "h.povmodel")
    # With a model file, the same checks and message as a map's.
    with pytest.raises(PovertyMapperError, match=r"model needs 2 bands \(BLUE, GREEN\) but 3 band numbers were given"):
        with open_imagery(str(image), TileOptions(band_indexes=(1, 2, 3)), 480.0, model_path=str(tmp_path / "h.povmodel")):
            pass
    with pytest.raises(PovertyMapperError, match=r"bands BLUE and GREEN would all read band 2"):
        with open_imagery(str(image), TileOptions(band_indexes=(2, 2)), 480.0, model_path=str(tmp_path / "h.povmodel")):
            pass


def test_a_model_that_reads_night_lights_is_refused_as_the_extractor(image, tmp_path):
    save_model(_histogram_model(bands=("BLUE", "NIGHTLIGHTS")), tmp_path / "lights.povmodel")
    with pytest.raises(PovertyMapperError, match=r"reads night lights beside the imagery \(BLUE, NIGHTLIGHTS\)"):
        with open_imagery(str(image), TileOptions(device="cpu"), 480.0, model_path=str(tmp_path / "lights.povmodel")):
            pass


def test_the_pixel_size_is_measured_where_each_trainer_measured_it(image):
    with rasterio.open(image) as ds:
        # An even number of pixels: the middle pixel's centre is half a pixel past the image's centre.
        assert middle_pixel(ds) == (X0 + 32.5 * PIXEL_M, Y0 - 20.5 * PIXEL_M)
        assert region_centre(None)(ds) == (X0 + 32 * PIXEL_M, Y0 - 20 * PIXEL_M)
        bounds = (X0 + 300, Y0 - 900, X0 + 900, Y0 - 300)
        assert region_centre(bounds)(ds) == (X0 + 600, Y0 - 600)
        with pytest.raises(PovertyMapperError, match="does not overlap the raster"):
            region_centre((0.0, 0.0, 1.0, 1.0))(ds)


def test_the_wrap_up_writes_what_was_asked_for(tmp_path):
    drawn = []
    report = {"r2": 0.5}
    write_training_outputs(_histogram_model(), str(tmp_path / "m.povmodel"), report)
    assert load_model(tmp_path / "m.povmodel").tile_size_px == 12
    write_training_outputs(
        _histogram_model(tile_size_px=8), str(tmp_path / "m.povmodel"), report,
        str(tmp_path / "report.json"), str(tmp_path / "figure.png"), drawn.append,
    )
    assert load_model(tmp_path / "m.povmodel").tile_size_px == 8  # replaced whole
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert drawn == [str(tmp_path / "figure.png")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.povmodel", "report.json"]


def test_the_three_configurations_share_the_tile_options():
    proxy = ProxyTrainingConfig("image.tif", "lights.tif", "proxy.povmodel", device="cpu")
    fit = ClusterFitConfig("image.tif", (), "fit.povmodel", band_indexes=(3, 2, 1))
    request = PredictRequest("image.tif", "map.tif", None, radiometry="eight_bit")
    assert all(isinstance(c, TileOptions) for c in (proxy, fit, request))
    assert (proxy.batch_size, fit.batch_size, request.batch_size) == (32, 64, 0)  # each its own default
    assert (proxy.device, fit.band_indexes, request.radiometry) == ("cpu", (3, 2, 1), "eight_bit")
    assert proxy.min_valid_fraction == fit.min_valid_fraction == request.min_valid_fraction == 0.5
    shared = [f.name for f in dataclasses.fields(TileOptions)]
    for config in (proxy, fit, request):  # each configuration's required inputs come first, then the options
        names = [f.name for f in dataclasses.fields(config)]
        required = [f.name for f in dataclasses.fields(config) if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        assert names[: len(required)] == required and names[len(required): len(required) + len(shared)] == shared
    with pytest.raises(dataclasses.FrozenInstanceError):
        proxy.device = "cuda"
