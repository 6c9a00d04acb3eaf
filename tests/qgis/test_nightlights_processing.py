"""Processing refuses the real Black Marble colour composite as the night-lights layer of the
bundled night-lights model, with the engine's message (the dock runs the same algorithm)."""
from __future__ import annotations

import pytest
from qgis.core import QgsProcessingException, QgsRasterLayer

from conftest import SHARED_DATA


def test_processing_refuses_a_night_lights_colour_composite(poverty_provider, real_data, tmp_path):
    import processing

    image = QgsRasterLayer(str(SHARED_DATA / "kinshasa" / "kinshasa_landsat8_20130728_rgba_38m.tif"), "Kinshasa")
    lights = QgsRasterLayer(str(SHARED_DATA / "kinshasa" / "blackmarble2016_kinshasa_rgb_611m.tif"), "Black Marble")
    assert image.isValid() and lights.isValid()
    with pytest.raises(QgsProcessingException, match=r"colour composite .* not radiance.*nW/cm²/sr"):
        processing.run("povertymapper:predict", {
            "INPUT": image, "NIGHTLIGHTS": lights, "EXTENT": "1700000,1720000,-490000,-470000 [EPSG:3857]",
            "OUTPUT": str(tmp_path / "refused.tif"),
        })
    assert not (tmp_path / "refused.tif").exists()
