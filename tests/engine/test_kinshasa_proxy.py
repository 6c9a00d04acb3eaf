"""The proxy task's data on REAL imagery: Landsat 8 over Kinshasa (2013 and 2015) with
Black Marble 2016 night lights (../shared/data/real), around the city, and the bundled
CNN model made from them. Sanity checks of the machinery on real data, not accuracy
figures (those come from `make eval`)."""
from __future__ import annotations

import json
import zipfile
from dataclasses import replace

import numpy as np
import pytest
import rasterio
from conftest import ROOT, SHARED_DATA

from poverty_mapper.evaluation import dhs, kinshasa
from poverty_mapper.core.imagery.nightlights import describe_lights, mean_lights_on_grid
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.models.model_file import load_model, read_model_info
from poverty_mapper.core.training.progress import PhasedProgress
from poverty_mapper.core.training.proxy import _light_classes, _open_scenes
from poverty_mapper.core.training.proxy_tiles import labelled_tiles

# About 50 x 50 km around central Kinshasa and Brazzaville, in EPSG:3857, and 100 x 100 km
# around them (the cities and the dark land around).
CITY = (1_680_000.0, -505_000.0, 1_730_000.0, -455_000.0)
REGION = (1_655_000.0, -530_000.0, 1_755_000.0, -430_000.0)
BUNDLED = ROOT / "resources" / "models" / "kinshasa_cnn.povmodel"


@pytest.fixture(scope="module")
def city_tiles(real_data):
    from contextlib import ExitStack

    config = replace(kinshasa.proxy_config(SHARED_DATA, "small_cnn", "unused.povmodel"), bounds=REGION)
    with ExitStack() as stack:
        scenes = _open_scenes(config, stack)
        phase = PhasedProgress({"tiles": 1.0})["tiles"]
        tiles = labelled_tiles(scenes, config.nightlights_path, REGION, config.tile_size_m, 1.0, phase)
    return config, tiles


def test_black_marble_is_read_as_luminance(real_data):
    assert "luminance" in describe_lights(str(SHARED_DATA / dhs.KINSHASA_LIGHTS))


def test_real_lights_get_a_dark_class_and_lit_classes(city_tiles):
    config, tiles = city_tiles
    assert set(np.unique(tiles.scene)) == {0, 1}  # both dates
    classes = _light_classes(config, tiles)
    assert classes.binning == "dark_then_quantiles"
    # The dark edge sits on the renderer's faint terrain (15-25 of 255), under the lit places.
    assert 15.0 < classes.edges[0] < 40.0
    assert classes.counts.min() >= 2 and classes.counts[0] > classes.counts[1:].sum()
    # The same place on both dates is on the same side of the split.
    side = {}
    for i in classes.train:
        side.setdefault((round(tiles.x[i]), round(tiles.y[i])), set()).add("train")
    for i in classes.val:
        side.setdefault((round(tiles.x[i]), round(tiles.y[i])), set()).add("val")
    assert all(len(s) == 1 for s in side.values())


def test_bundled_cnn_card_says_what_it_was_trained_on():
    info = read_model_info(BUNDLED)
    card = info.card()
    for words in ("EfficientNet-Lite0", "ImageNet", "Kinshasa", "44", "8 bit"):
        assert words in card, words
    assert info.scores.pooled is not None and info.scores.pooled.n == 44
    assert info.radiometry == "eight_bit" and info.extractor_kind == "cnn"


def test_bundled_cnn_holds_no_survey_coordinates(real_data):
    with zipfile.ZipFile(BUNDLED) as archive:
        names = archive.namelist()
        meta = archive.read("model.json").decode()
    assert all(n == "model.json" or n.startswith(("extractor/", "regressor/", "feature_domain/", "scene_domain/"))
               for n in names)
    survey = dhs.load_dhs_clusters(SHARED_DATA / dhs.KINSHASA_CLUSTERS, crs="EPSG:4326")
    # The feature domain keeps a mean and a few directions, nothing per cluster.
    domain = load_model(BUNDLED).feature_domain
    assert domain.components.shape[0] < survey.x.size // 4 and domain.mean.ndim == 1
    # The scene domain keeps quantiles and the centre and spread of region summaries,
    # nothing per tile: no array longer than a summary.
    scenes = load_model(BUNDLED).scene_domain
    summary = scenes.centre.size
    assert all(max(np.shape(a)) <= summary for a in scenes.to_spec()[1].values())
    text = json.dumps(json.loads(meta))
    assert not any(f"{v:.4f}" in text for v in np.concatenate([survey.x, survey.y]))


def test_bundled_cnn_maps_the_city_with_wealth_following_its_lights(real_data, tmp_path):
    model = load_model(BUNDLED)
    image = str(SHARED_DATA / dhs.KINSHASA_IMAGE)
    result = predict_poverty_map(PredictRequest(image, str(tmp_path / "city.tif"), model, bounds=CITY, device="cpu"))
    assert result.radiometry.key == "eight_bit" and result.band_indexes == (1, 2, 3)
    assert not any("standardized" in note for note in result.notes)
    with rasterio.open(tmp_path / "city.tif") as ds:
        estimate = ds.read(1, masked=True)
        lights = mean_lights_on_grid(str(SHARED_DATA / dhs.KINSHASA_LIGHTS), ds.transform, ds.shape, ds.crs)
    ok = ~estimate.mask & np.isfinite(lights)
    assert ok.sum() > 50
    # Wealthier where the city is lit: the network learnt lights, the survey fit wealth.
    assert np.corrcoef(estimate[ok], lights[ok])[0, 1] > 0.4
