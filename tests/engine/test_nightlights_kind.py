"""What a night-lights layer is, decided by one rule for every reader: a colour composite
(the real Black Marble RGB image of Kinshasa) is read by cluster fits as luminance and
refused by the models that read radiance; a layer of only negative values is refused."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from conftest import ROOT, SHARED_DATA
from poverty_mapper.core.errors import PovertyMapperError
from poverty_mapper.core.imagery import nightlights
from poverty_mapper.core.imagery.nightlights import LUMINANCE_WEIGHTS, describe_lights, is_colour_composite, light_bands
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.models.model_file import load_model

BLACK_MARBLE_RGB = SHARED_DATA / "kinshasa" / "blackmarble2016_kinshasa_rgb_611m.tif"
KINSHASA_SCENE = SHARED_DATA / "kinshasa" / "kinshasa_landsat8_20130728_rgba_38m.tif"
LIGHTS_MODEL = ROOT / "resources" / "models" / "africa_nightlights_viirs.povmodel"
CITY = (1_700_000.0, -490_000.0, 1_720_000.0, -470_000.0)  # EPSG:3857 metres


def _predict(lights_path, tmp_path):
    return predict_poverty_map(PredictRequest(
        raster_path=str(KINSHASA_SCENE), output_path=tmp_path / "map.tif", model=load_model(LIGHTS_MODEL),
        bounds=CITY, nightlights_path=str(lights_path), device="cpu",
    ))


def test_the_black_marble_colour_composite_is_refused_as_radiance_with_what_to_give(real_data, tmp_path):
    with pytest.raises(PovertyMapperError) as refused:
        _predict(BLACK_MARBLE_RGB, tmp_path)
    message = str(refused.value)
    assert "colour composite" in message and "not radiance" in message
    assert "nW/cm²/sr" in message and "VNP46A4" in message  # what to give instead
    assert not (tmp_path / "map.tif").exists()


def test_cluster_fits_read_the_same_layer_as_luminance_by_the_same_rule(real_data, monkeypatch):
    with rasterio.open(BLACK_MARBLE_RGB) as src:
        assert is_colour_composite(src)
        assert light_bands(src) == dict(zip((1, 2, 3), LUMINANCE_WEIGHTS))
    assert "luminance" in describe_lights(str(BLACK_MARBLE_RGB))
    # One rule: the fits' reading follows is_colour_composite, not a copy of it.
    monkeypatch.setattr(nightlights, "is_colour_composite", lambda src: False)
    with rasterio.open(BLACK_MARBLE_RGB) as src:
        assert light_bands(src) == {1: 1.0}


def _lights(path, data, dtype="float32", **extra):
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[-1], height=data.shape[-2], count=data.shape[0],
                       dtype=dtype, crs="EPSG:4326", transform=from_origin(15.0, -4.0, 0.01, 0.01), **extra) as dst:
        dst.write(data.astype(dtype))
    return path


def test_a_single_band_layer_is_not_a_composite(tmp_path):
    single = _lights(tmp_path / "generated_radiance.tif", np.ones((1, 8, 8)))
    with rasterio.open(single) as src:
        assert not is_colour_composite(src)


def test_night_lights_all_negative_over_the_image_are_refused(real_data, tmp_path):
    # GENERATED lights over Kinshasa (15-16.5 E, 4-5.5 S): a standardized product, below zero everywhere.
    values = -np.linspace(0.2, 3.0, 150 * 150).reshape(1, 150, 150)
    path = _lights(tmp_path / "generated_negative_lights.tif", values, nodata=-9999.0)
    with pytest.raises(PovertyMapperError, match=r"only negative values over the image .*Give VIIRS"):
        _predict(path, tmp_path)
    values[0, 75, 75] = 0.5  # one lit pixel is radiance enough to run
    ok = _lights(tmp_path / "generated_mostly_negative_lights.tif", values, nodata=-9999.0)
    assert _predict(ok, tmp_path).n_estimated > 0
