"""The bundled night-lights model (the dock's default) is what
scripts/train_nightlights_model.py makes from the real LSMS data, its out-of-country
figures are reproduced here, its card says its input product, units and scores, and it
maps a GENERATED VIIRS-like lights raster (tests/generated_world.py)."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio

from conftest import LSMS_DIR
from generated_world import make_world
from helpers import SCORE_ABS, assert_same_domain, assert_same_fit, assert_scores_close, without_figures
from poverty_mapper.evaluation import lsms
from poverty_mapper.evaluation.across_countries import country_years
from poverty_mapper.core.regression.leave_group_out import leave_one_country_out, out_of_country_alpha
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.models.defaults import DEFAULT_MODEL_KEY, NIGHTLIGHTS_MODEL_PATH, bundled_models
from poverty_mapper.core.models.model_file import load_model, read_model_info, save_model
from poverty_mapper.core.regression.metrics import interval_half_width, within_r2

@pytest.fixture(scope="module")
def shipped():
    return load_model(NIGHTLIGHTS_MODEL_PATH)


@pytest.fixture(scope="module")
def lsms_set(real_data):
    return lsms.load_lsms(LSMS_DIR)


def test_it_is_the_default_with_a_night_lights_layer_and_only_then():
    """The VIIRS model is the default where a radiance layer is given; without one the Africa
    lights model is (first of the bundled models); the RGB example is on neither path."""
    from poverty_mapper.core.models.defaults import AFRICA_LIGHTS_MODEL_PATH, DEFAULT_MODEL_PATH, default_model_path

    keys = list(bundled_models())
    assert keys[0] == DEFAULT_MODEL_KEY and bundled_models()[DEFAULT_MODEL_KEY] == AFRICA_LIGHTS_MODEL_PATH
    assert bundled_models()["africa_nightlights_viirs"] == NIGHTLIGHTS_MODEL_PATH
    assert {"rgb_histogram", "kinshasa_cnn"} <= set(keys)
    assert default_model_path(with_nightlights=True) == NIGHTLIGHTS_MODEL_PATH
    assert default_model_path(with_nightlights=False) == AFRICA_LIGHTS_MODEL_PATH
    assert DEFAULT_MODEL_PATH not in {default_model_path(with_nightlights=w) for w in (True, False)}


def _loco_score(lsms_set):
    """The pooled R2 of a penalty's leave-one-country-out predictions (how the model's
    penalty is chosen)."""
    x, y = lsms_set.frequencies(("NIGHTLIGHTS",)), lsms_set.labels

    def score(alpha: float) -> float:
        _, residuals = out_of_country_alpha(x, y, lsms_set.countries, [alpha])
        return 1.0 - float(residuals @ residuals) / float(((y - y.mean()) ** 2).sum())

    return score


def test_rebuilding_gives_the_shipped_model(shipped, lsms_set):
    """The shipped file was built on another CPU: the same description, scores within
    what another CPU's sums move (a penalty may flip on a near tie: its score is compared)."""
    import train_nightlights_model  # scripts/ is on sys.path (conftest)

    rebuilt = train_nightlights_model.build_nightlights_model(LSMS_DIR)
    for attr in ("name", "target", "bands", "input_scaling", "nightlights"):
        assert getattr(rebuilt, attr) == getattr(shipped, attr), attr
    assert_same_domain(rebuilt.domain, shipped.domain)
    assert {k: without_figures(v) for k, v in rebuilt.provenance.items()} == {
        k: without_figures(v) for k, v in shipped.provenance.items()
    }
    assert_scores_close(rebuilt.scores.to_json(), shipped.scores.to_json())
    assert_same_fit(rebuilt.regressor, shipped.regressor, _loco_score(lsms_set))
    np.testing.assert_allclose(rebuilt.extractor.band_means, shipped.extractor.band_means, rtol=1e-6)
    np.testing.assert_allclose(rebuilt.extractor.band_stds, shipped.extractor.band_stds, rtol=1e-6)


def test_rebuilding_twice_here_gives_identical_bytes(tmp_path, real_data):
    import train_nightlights_model

    first = save_model(train_nightlights_model.build_nightlights_model(LSMS_DIR), tmp_path / "a.povmodel")
    second = save_model(train_nightlights_model.build_nightlights_model(LSMS_DIR), tmp_path / "b.povmodel")
    assert first.read_bytes() == second.read_bytes()


def test_out_of_country_figures_reproduced(shipped, lsms_set):
    """Leave one country out on the NIGHTLIGHTS histograms (penalty by inner leave-one-country-out):
    within country-year r2 0.387, the figure `make eval` prints as variant=nightlights r2_loco."""
    x = lsms_set.frequencies(("NIGHTLIGHTS",))
    loco = leave_one_country_out(x, lsms_set.labels, lsms_set.countries)
    r2 = within_r2(lsms_set.labels, loco.pred, country_years(lsms_set.countries, lsms_set.years))
    assert r2 == pytest.approx(shipped.scores.out_of_country_r2, abs=SCORE_ABS)
    assert 0.37 < r2 < 0.40
    assert interval_half_width(lsms_set.labels - loco.pred) == pytest.approx(shipped.scores.interval_80, abs=SCORE_ABS)


def test_it_beats_the_rgb_model_out_of_country(shipped):
    rgb = read_model_info(bundled_models()["rgb_histogram"])
    assert shipped.scores.out_of_country_r2 > rgb.scores.out_of_country_r2 + 0.3


def test_the_card_says_product_units_and_out_of_country_score(shipped):
    card = shipped.card()
    assert shipped.bands == ("NIGHTLIGHTS",)
    assert shipped.nightlights.units == "nW/cm²/sr"
    assert "VIIRS" in card and "VNP46A4" in card and "nW/cm²/sr" in card
    assert "Out of country (fitted on the other countries): r² 0.39" in card
    assert "±1.15 of their estimate (out of country" in card
    assert "levels are less reliable than its rankings" in card
    np.testing.assert_allclose(shipped.extractor.band_means, [0.557793])
    np.testing.assert_allclose(shipped.extractor.band_stds, [6.421816])


def test_it_maps_a_generated_viirs_like_raster(shipped, tmp_path):
    """A generated world of 2 x 2 tiles of 6.72 km: lights 0..60 'nW/cm²/sr' in EPSG:4326."""
    world = make_world(tmp_path / "world", size=448, n_settlements=30, n_clusters=5)
    result = predict_poverty_map(PredictRequest(
        str(world.image_path), str(tmp_path / "map.tif"), shipped, device="cpu",
        nightlights_path=str(world.lights_path), stride_m=3360.0, read_workers=0,
    ))
    assert result.n_estimated >= 4
    with rasterio.open(result.output_path) as dst:
        estimate = dst.read(1, masked=True)
        assert dst.tags()["SOURCE_NIGHTLIGHTS"] == world.lights_path.name
    values = estimate.compressed()
    assert np.all(np.isfinite(values)) and values.std() > 0
