"""The bundled model of the Africa night lights (resources/models/africa_lights.povmodel),
made by scripts/train_africa_lights_model.py from the real DHS clusters: it builds to the
same bytes twice, its file holds plain arrays that the plugin's reader (no pickle) loads,
it is its variant fitted on all clusters, its card says what it is, it estimates lit
places wealthier than unlit ones, and it maps a region and a CRS with no image."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform as warp_points

from helpers import COEF_REL
from poverty_mapper.core.errors import PovertyMapperError
from poverty_mapper.evaluation import africa_lights as al
from poverty_mapper.core.imagery.bundled_lights import BundledLights, OutsideCoverage
from poverty_mapper.core.inference.lights_map import LightsMapRequest, lights_map_grid, predict_lights_map
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.models.defaults import AFRICA_LIGHTS_MODEL_PATH
from poverty_mapper.core.models.model_file import load_model, read_model_info, save_model
from poverty_mapper.core.regression.within_groups import fit_ridge_within

SUBSET = ("guinea", "togo", "sierra_leone")
LIT = {"Kinshasa (Gombe)": (15.3136, -4.3033), "Lagos (Ikeja)": (3.3515, 6.6018)}
UNLIT = {"Cuvette centrale, DR Congo": (22.0, -1.0), "Central African Republic": (21.5, 7.0)}
UTM_33S = "EPSG:32733"


@pytest.fixture(scope="module")
def shipped():
    return load_model(AFRICA_LIGHTS_MODEL_PATH)


def test_building_twice_gives_identical_bytes(tmp_path, real_data):
    import train_africa_lights_model as train  # scripts/ is on sys.path (conftest)

    dhs = real_data / al.DHS_CLUSTERS
    first = save_model(train.build_africa_lights_model(dhs, SUBSET), tmp_path / "a.povmodel")
    second = save_model(train.build_africa_lights_model(dhs, SUBSET), tmp_path / "b.povmodel")
    assert first.read_bytes() == second.read_bytes()
    model = load_model(first)
    assert model.extractor.kind == "bundled_lights" and "of 3 African countries" in model.provenance["data"]
    assert set(model.provenance["out_of_country_by_country"]) == set(SUBSET)


def test_the_file_holds_plain_arrays_and_loads_without_pickle(shipped):
    with zipfile.ZipFile(AFRICA_LIGHTS_MODEL_PATH) as zf:
        names = set(zf.namelist())
        arrays = {n: np.load(io.BytesIO(zf.read(n)), allow_pickle=False) for n in names if n.endswith(".npy")}
    assert names == {"model.json", *arrays}
    assert all(a.dtype.kind == "f" and np.all(np.isfinite(a)) for a in arrays.values())
    assert {n.split("/")[0] for n in arrays} == {"regressor", "feature_domain"}  # the extractor has no arrays
    info = read_model_info(AFRICA_LIGHTS_MODEL_PATH)
    assert info.extractor_kind == "bundled_lights" and info.n_features == shipped.regressor.n_features
    assert shipped.extractor.reads_imagery is False and shipped.feature_domain is not None


def test_it_is_its_variant_fitted_on_all_clusters(shipped, real_data):
    """The shipped coefficients are those of its variant, with its penalty, on all the DHS
    clusters (the choice of both is make model-lights's: scores in make eval)."""
    variant = next(v for v in al.candidates() if shipped.provenance["features"].startswith(v.name + ":"))
    assert (variant.sides, variant.thresholds) == (shipped.extractor.sides, shipped.extractor.thresholds)
    survey = al.load_dhs_survey(real_data / al.DHS_CLUSTERS)
    with BundledLights() as lights:
        x = variant.features(survey, lights)
    fit = fit_ridge_within(x, survey.wealth, survey.groups if variant.within else None, shipped.regressor.alpha)
    size = float(np.abs(shipped.regressor.coef).max())
    np.testing.assert_allclose(fit.coef, shipped.regressor.coef, rtol=0, atol=COEF_REL * size)
    np.testing.assert_allclose(fit.x_mean, shipped.regressor.x_mean, rtol=COEF_REL)
    np.testing.assert_allclose(fit.x_scale, shipped.regressor.x_scale, rtol=COEF_REL)
    assert fit.intercept == pytest.approx(shipped.regressor.intercept, rel=COEF_REL)
    assert shipped.domain.n_clusters == len(survey) == 18814


def test_the_card_says_lights_year_surveys_and_out_of_country_scores(shipped):
    card = shipped.card()
    assert "NASA Black Marble 2016" in card and "the lights of 2016" in card
    assert "18814 DHS cluster-years of 22 African countries" in card
    assert shipped.scores.out_of_country_r2 >= 0.65
    assert f"Out of country (fitted on the other countries): r² {shipped.scores.out_of_country_r2:.2f}" in card
    by_country = shipped.provenance["out_of_country_by_country"]
    assert len(by_country) == 22 and all(0 < c["coverage_80"] <= 1 and c["n"] > 0 for c in by_country.values())
    missed = sorted(k for k, c in by_country.items() if not 0.75 <= c["coverage_80"] <= 0.85)
    assert (", ".join(missed) or "none") in shipped.provenance["use"]


def test_lit_places_are_estimated_wealthier_than_unlit_ones(shipped):
    lon, lat = np.array([*LIT.values(), *UNLIT.values()], np.float64).T
    with BundledLights() as lights:
        estimate = shipped.regressor.predict(shipped.extractor.features_at(lights, lon, lat, "EPSG:4326"))
    assert estimate[:2].min() > estimate[2:].max() + 1.0, dict(zip([*LIT, *UNLIT], estimate.round(2)))


def test_a_region_maps_with_no_image(shipped, tmp_path):
    """40 x 40 km around Kinshasa's centre in UTM 33S, 2 km cells (20 x 20): the estimate of each cell
    is the model's estimate of the features at its centre, and the city stands out."""
    (x,), (y,) = warp_points("EPSG:4326", UTM_33S, [LIT["Kinshasa (Gombe)"][0]], [LIT["Kinshasa (Gombe)"][1]])
    x, y = round(x / 2000) * 2000, round(y / 2000) * 2000  # on whole cells: the grid starts on multiples of 2 km
    bounds = (x - 20_000, y - 20_000, x + 20_000, y + 20_000)
    result = predict_lights_map(LightsMapRequest(shipped, str(tmp_path / "map.tif"), bounds, UTM_33S, cell_size_m=2000))
    assert result.n_estimated == result.n_cells == 400 and result.lights_year == 2016
    grid = lights_map_grid(bounds, rasterio.crs.CRS.from_user_input(UTM_33S), 2000)
    with rasterio.open(result.output_path) as ds:
        estimate, quality, interval = ds.read()
        assert ds.tags()["LIGHTS_YEAR"] == "2016" and ds.tags()["SOURCE_NIGHTLIGHTS"].endswith("luminance.tif")
        assert ds.transform == grid.transform and ds.crs.to_string() == UTM_33S
    rows, cols = np.array([0, 10, 19]), np.array([0, 10, 19])
    cx, cy = grid.transform * (cols + 0.5, rows + 0.5)
    with BundledLights() as lights:
        expected = shipped.regressor.predict(shipped.extractor.features_at(lights, cx, cy, UTM_33S))
    np.testing.assert_allclose(estimate[rows, cols], expected, rtol=1e-6, atol=1e-6)
    assert estimate[8:12, 8:12].mean() > estimate[[0, 0, -1, -1], [0, -1, 0, -1]].mean()
    assert np.all(interval >= shipped.scores.interval_80 * (1 - 1e-6)) and set(np.unique(quality)) <= {0, 1, 3}


def test_a_region_outside_the_lights_is_refused_and_leaves_no_file(shipped, tmp_path):
    out = tmp_path / "paris.tif"
    with pytest.raises(OutsideCoverage, match="outside the area the bundled night lights cover"):
        predict_lights_map(LightsMapRequest(shipped, str(out), (2.2, 48.8, 2.5, 48.9), "EPSG:4326"))
    assert not out.exists() and not list(tmp_path.iterdir())


def test_the_image_mapping_refuses_it_and_says_how(shipped, tmp_path):
    with pytest.raises(PovertyMapperError, match="region and a CRS"):
        predict_poverty_map(PredictRequest(str(tmp_path / "absent.tif"), str(tmp_path / "m.tif"), shipped))
