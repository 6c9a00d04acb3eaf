"""Predict with no model and no night-lights layer: the bundled Africa lights model maps a
region (an extent with its CRS, or mask polygons) with no image, or an image's extent; the
same map as the engine's, cell for cell; a clear message with no region, and outside the
lights."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from qgis.core import (
    QgsCoordinateReferenceSystem, QgsFeature, QgsGeometry, QgsProcessingException, QgsRectangle,
    QgsReferencedRectangle, QgsVectorLayer,
)

from conftest import ROOT
from helpers import assert_same_map
from poverty_mapper.core.inference.lights_map import LightsMapRequest, predict_lights_map
from poverty_mapper.core.models.defaults import AFRICA_LIGHTS_MODEL_PATH, default_model_path
from poverty_mapper.core.models.model_file import load_model

SAMPLE = ROOT / "resources" / "sample" / "parana_landsat8_l1_rgb_30m.tif"  # Paraná, Brazil: outside the lights
KINSHASA = (15.20, -4.45, 15.45, -4.25)  # west, south, east, north in EPSG:4326
FRANCE = (2.0, 46.0, 3.0, 47.0)
WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


@pytest.fixture()
def provider(poverty_provider):
    return poverty_provider


def _extent(bounds) -> QgsReferencedRectangle:
    return QgsReferencedRectangle(QgsRectangle(*bounds), WGS84)


def _refusal(parameters: dict) -> str:
    """The message of a refused run: the exception's and what went to the feedback (a run
    refused while preparing reports its reason there)."""
    import processing
    from poverty_mapper.ui.processing_run import CollectingFeedback

    feedback = CollectingFeedback()
    with pytest.raises(QgsProcessingException) as refused:
        processing.run("povertymapper:predict", parameters, feedback=feedback)
    return " ".join([str(refused.value), *feedback.errors])


def test_no_model_and_no_lights_layer_is_the_africa_lights_model():
    assert default_model_path(with_nightlights=False) == AFRICA_LIGHTS_MODEL_PATH
    assert default_model_path(with_nightlights=True).name == "africa_nightlights_viirs.povmodel"


def test_an_extent_alone_maps_with_the_africa_lights_model(provider, tmp_path):
    import processing

    out = tmp_path / "kinshasa.tif"
    result = processing.run("povertymapper:predict", {"EXTENT": _extent(KINSHASA), "OUTPUT": str(out)})
    assert result["OUTPUT"] == str(out)
    assert "night lights of 2016" in result["SUMMARY"]
    with rasterio.open(out) as ds:
        assert ds.count == 3
        assert ds.crs.to_epsg() == 4326
        assert ds.tags()["LIGHTS_YEAR"] == "2016"
        values = ds.read(1, masked=True)
    assert values.count() > 100 and values.std() > 0.05  # a city and its outskirts differ
    engine = tmp_path / "engine.tif"
    predict_lights_map(LightsMapRequest(load_model(AFRICA_LIGHTS_MODEL_PATH), str(engine), KINSHASA, "EPSG:4326"))
    assert_same_map(out, engine)


def test_mask_polygons_alone_are_a_region(provider, tmp_path):
    import processing

    mask = QgsVectorLayer("Polygon?crs=EPSG:4326", "district", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(15.25, -4.40, 15.35, -4.30)))
    mask.dataProvider().addFeatures([feature])
    out = tmp_path / "district.tif"
    processing.run("povertymapper:predict", {"MASK": mask, "OUTPUT": str(out)})
    with rasterio.open(out) as ds:
        b, values = ds.bounds, ds.read(1, masked=True)
    assert b.left <= 15.25 and b.right >= 15.35 and b.right - b.left < 0.12
    assert values.count() > 0


def test_no_image_and_no_region_says_what_to_give(provider, tmp_path):
    assert "Give the region to map: an image, or an extent" in _refusal({"OUTPUT": str(tmp_path / "none.tif")})
    assert not (tmp_path / "none.tif").exists()


def test_a_region_outside_the_lights_says_so(provider, tmp_path):
    message = _refusal({"EXTENT": _extent(FRANCE), "OUTPUT": str(tmp_path / "france.tif")})
    assert "outside the area the bundled night lights cover" in message
    assert not (tmp_path / "france.tif").exists()


def test_the_sample_scene_with_no_model_lies_outside_the_lights(provider, tmp_path):
    """The bundled sample scene is of Paraná (Brazil): the default model says it lies outside
    the lights (the RGB example maps it only when chosen)."""
    message = _refusal({"INPUT": str(SAMPLE), "OUTPUT": str(tmp_path / "parana.tif")})
    assert "outside the area the bundled night lights cover" in message


def test_an_image_in_africa_with_no_model_maps_its_extent(provider, tmp_path):
    """A GENERATED 3-band image over Kinshasa in UTM 33S: the map covers its extent, in its CRS,
    with the Africa lights model's values there."""
    import processing

    image = tmp_path / "kinshasa_utm.tif"
    transform = rasterio.transform.from_origin(520000.0, 9530000.0, 100.0, 100.0)  # about 15.18 E, 4.25 S
    with rasterio.open(image, "w", driver="GTiff", width=200, height=150, count=3, dtype="uint8",
                       crs="EPSG:32733", transform=transform) as ds:
        ds.write(np.random.default_rng(0).integers(0, 255, (3, 150, 200), dtype=np.uint8))
        bounds = tuple(ds.bounds)
    out = tmp_path / "image.tif"
    processing.run("povertymapper:predict", {"INPUT": str(image), "OUTPUT": str(out)})
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32733 and ds.tags()["LIGHTS_YEAR"] == "2016"
        b = ds.bounds
    assert b.left <= bounds[0] and b.right >= bounds[2] and b.right - b.left < (bounds[2] - bounds[0]) + 1300
    engine = tmp_path / "engine.tif"
    predict_lights_map(LightsMapRequest(load_model(AFRICA_LIGHTS_MODEL_PATH), str(engine), bounds, "EPSG:32733"))
    assert_same_map(out, engine)
