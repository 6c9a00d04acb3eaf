"""Notes follow the model's own training imagery: an 8-bit render is no caveat for a
model trained on 8-bit renders (the bundled Kinshasa CNN on the real Kinshasa scene)."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, SHARED_DATA
from poverty_mapper.core.imagery.radiometry import EIGHT_BIT
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.models.model_file import load_model

KINSHASA_SCENE = SHARED_DATA / "kinshasa" / "kinshasa_landsat8_20130728_rgba_38m.tif"
CNN_MODEL = ROOT / "resources" / "models" / "kinshasa_cnn.povmodel"
# About 2 x 2 of the CNN's 4.28 km tiles in the city (EPSG:3857 metres).
CITY = (1_700_000.0, -490_000.0, 1_708_600.0, -481_400.0)


def _run(model, tmp_path: Path):
    result = predict_poverty_map(PredictRequest(
        raster_path=str(KINSHASA_SCENE), output_path=tmp_path / "map.tif", model=model, bounds=CITY,
        band_indexes=(1, 2, 3), radiometry="auto", device="cpu",
    ))
    assert result.n_estimated > 0
    return result


def test_the_kinshasa_cnn_on_the_8_bit_renders_it_was_trained_on_gets_no_display_stretch_note(real_data, tmp_path):
    model = load_model(CNN_MODEL)
    assert model.radiometry == EIGHT_BIT.key  # the model file records its training imagery
    result = _run(model, tmp_path)
    assert not [n for n in result.notes if "display stretch" in n or "indicative only" in n], result.notes
    # The run's summary (dock, Processing log, command line) says so instead of 'rough approximation'.
    assert result.radiometry.key == EIGHT_BIT.key
    assert result.radiometry.label == "8-bit display imagery (DN / 255), as the model was trained on"


def test_a_model_trained_on_reflectance_is_still_told_that_8_bit_imagery_is_a_display_stretch(
        real_data, tmp_path, default_model):
    assert default_model.radiometry != EIGHT_BIT.key
    result = _run(default_model, tmp_path)
    assert any("display stretch" in n for n in result.notes), result.notes
    assert result.radiometry == EIGHT_BIT  # its caveat in its label too
