"""The method with the night lights bundled with the plugin (NASA Black Marble 2016 over
Africa): proxy training labelled by them when no layer is given, refused for a scene
outside Africa; the survey fit's baseline on them by default; the image features and the
lights' features fitted together, recorded in the model file. Mechanics on the GENERATED
world (it lies in Africa, UTM 36N near 9 N 33 E), the bundled sample scene (Paraguay) and
the real Kinshasa data; no score here is an accuracy (those come from `make eval`)."""
from __future__ import annotations

import dataclasses
import json
import zipfile

import numpy as np
import pytest
import rasterio
from conftest import ROOT, SHARED_DATA
from rasterio.transform import from_origin

from helpers import assert_untouched, write_earlier
from poverty_mapper.core.errors import ModelFileError, PovertyMapperError
from poverty_mapper.core.imagery.bundled_lights import (
    BUNDLED_LIGHTS_PATH, FEATURE_NAMES, BundledLights, OutsideCoverage, luminance_features,
)
from poverty_mapper.core.imagery.nightlights import mean_lights_on_grid
from poverty_mapper.core.imagery.tiling import ground_positions_m
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.models.model_file import load_model, read_model_info, save_model
from poverty_mapper.core.regression.cross_validation import nested_cv
from poverty_mapper.core.regression.folds import linked_groups
from poverty_mapper.core.training.cluster_lights import LIGHTS_BLOCK_WEIGHTS
from poverty_mapper.core.training.clusters import CLUSTER_PENALTY, Cluster, ClusterFitConfig, fit_clusters
from poverty_mapper.core.training.proxy import ProxyTrainingConfig, train_proxy
from poverty_mapper.evaluation import dhs

SAMPLE_SCENE = ROOT / "resources" / "sample" / "parana_landsat8_l1_rgb_30m.tif"  # Paraguay / Brazil
BOX_M, TILE_M = 1500.0, 480.0
QUICK_PROXY = dict(architecture="small_cnn", tile_size_m=TILE_M, epochs=1, block_size_tiles=2, device="cpu")


@pytest.fixture(scope="module")
def world(small_world):
    return small_world


def _clusters(world):
    return tuple(Cluster(x, y, o, w, str(i)) for i, (x, y, o, w) in enumerate(world.clusters))


def _fit(world, path, **kw):
    return fit_clusters(ClusterFitConfig(str(world.image_path), kw.pop("clusters", _clusters(world)), str(path),
                                         box_size_m=BOX_M, tile_size_m=TILE_M, fold_distance_m=750.0, device="cpu", **kw))


def _bundled_features(clusters, crs) -> np.ndarray:
    """The bundled lights' features of each cluster, read here for the comparison."""
    with BundledLights() as lights:
        boxes = lights.boxes_around([c.x for c in clusters], [c.y for c in clusters], crs)
    return luminance_features(boxes)


# --- proxy training ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled_proxy(world, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundled_proxy")
    result = train_proxy(ProxyTrainingConfig(str(world.image_path), None, str(folder / "p.povmodel"), **QUICK_PROXY))
    return result, folder / "p.povmodel"


def test_proxy_training_without_a_layer_takes_its_labels_from_the_bundled_lights(world, bundled_proxy, tmp_path):
    result, path = bundled_proxy
    report = result.report
    assert report["nightlights"] == BUNDLED_LIGHTS_PATH.name
    assert report["labels"].startswith("labels from the bundled NASA Black Marble 2016 lights")
    assert "ordinal" in report["nightlights_kind"] and "not radiance" in report["nightlights_kind"]
    assert load_model(path).provenance["labels"] == "labels from the bundled NASA Black Marble 2016 lights"
    # The same classes as with the bundled raster given as the layer, and not those of the world's own lights.
    given = train_proxy(ProxyTrainingConfig(str(world.image_path), str(BUNDLED_LIGHTS_PATH),
                                            str(tmp_path / "given.povmodel"), **QUICK_PROXY)).report
    own = train_proxy(ProxyTrainingConfig(str(world.image_path), str(world.lights_path), str(tmp_path / "own.povmodel"),
                                          **QUICK_PROXY)).report
    assert report["classes"] == given["classes"] and report["tiles"] == given["tiles"]
    assert report["classes"]["edges"] != own["classes"]["edges"]
    assert "labels" not in given and "labels" not in own  # a layer given: the report as before
    # Quantile classes of the luminance: edges inside its range over the image, every class trained on.
    with BundledLights() as lights, rasterio.open(world.image_path) as ds:
        values = lights.read_box(tuple(ds.bounds), ds.crs).values
    assert all(values.min() <= e <= values.max() for e in report["classes"]["edges"])
    assert min(report["classes"]["train_counts"]) > 0


def test_proxy_training_refuses_the_sample_scene_outside_africa_before_reading_a_tile(tmp_path):
    out = write_earlier(tmp_path / "proxy.povmodel")
    with pytest.raises(OutsideCoverage) as caught:
        train_proxy(ProxyTrainingConfig(str(SAMPLE_SCENE), None, str(out), **QUICK_PROXY))
    message = str(caught.value)
    assert SAMPLE_SCENE.name in message and "outside the area the bundled night lights cover" in message
    assert "give a night-lights layer" in message
    assert_untouched(out)


def test_a_training_extent_inside_africa_of_a_scene_reaching_out_of_it_is_not_refused(world, tmp_path):
    """A scene across the covered area's edge (here moved to its north edge, 38.8 N) trains
    on an extent inside it; its whole extent is refused."""
    with rasterio.open(world.image_path) as src:
        data, profile = src.read(), src.profile
    north = 4_696_291.0  # the bundled raster's top, EPSG:3857
    profile.update(crs="EPSG:3857", transform=from_origin(3_000_000.0, north + 3_000.0, 30.0, 30.0))
    path = tmp_path / "across_the_edge.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    with pytest.raises(OutsideCoverage, match="across_the_edge.tif"):
        train_proxy(ProxyTrainingConfig(str(path), None, str(tmp_path / "a.povmodel"), **QUICK_PROXY))
    inside = (3_000_000.0, north + 3_000.0 - 256 * 30.0, 3_000_000.0 + 256 * 30.0, north - 1_000.0)
    result = train_proxy(ProxyTrainingConfig(str(path), None, str(tmp_path / "b.povmodel"), bounds=inside, **QUICK_PROXY))
    assert result.report["labels"].startswith("labels from the bundled")


def test_the_bundled_labels_are_the_kinshasa_crops_over_the_kinshasa_scene(real_data):
    """Over the real Kinshasa scene the bundled lights give each 4.3 km tile the mean
    luminance the shared Black Marble crop gives it (rounded to whole levels in the bundle)."""
    with rasterio.open(real_data / dhs.KINSHASA_IMAGE) as ds:
        crs = ds.crs
    transform, shape = from_origin(1_655_000.0, -430_000.0, 4280.0, 4280.0), (23, 23)
    bundled = mean_lights_on_grid(str(BUNDLED_LIGHTS_PATH), transform, shape, crs)
    crop = mean_lights_on_grid(str(SHARED_DATA / dhs.KINSHASA_LIGHTS), transform, shape, crs)
    assert np.isfinite(bundled).all() and np.isfinite(crop).all()
    assert np.ptp(crop) > 100  # lit city and dark land
    assert np.abs(bundled - crop).max() <= 1.5 and np.abs(bundled - crop).mean() < 0.55


# --- the survey fit's baseline ------------------------------------------------------------------


def test_the_baseline_uses_the_bundled_lights_without_a_layer_and_says_so(world, tmp_path):
    result = _fit(world, tmp_path / "m.povmodel", report_path=str(tmp_path / "cv.json"))
    baseline = result.report.nightlights_baseline
    assert "bundled NASA Black Marble 2016" in baseline.features
    assert any(n.startswith("Night-lights baseline: the bundled NASA Black Marble 2016 lights") for n in result.notes)
    report = json.loads((tmp_path / "cv.json").read_text())
    assert "bundled" in report["nightlights_baseline"]["features"]
    # The 35 luminance features of each cluster's box, on the image model's folds, as computed here.
    used = [c for c, u in zip(_clusters(world), result.used) if u]
    crs = rasterio.open(world.image_path).crs
    x = _bundled_features(used, crs)
    assert x.shape == (len(used), len(FEATURE_NAMES))
    groups = linked_groups(ground_positions_m(crs, np.array([c.x for c in used]), np.array([c.y for c in used])), 750.0)
    expected, _, _ = nested_cv(x, result.observed, groups, 5, search=CLUSTER_PENALTY, folds=result.fold)
    np.testing.assert_allclose(result.baseline_predicted, expected, rtol=1e-9, atol=1e-12)
    assert [f.n for f in baseline.folds] == [f.n for f in result.report.cv.folds]
    assert load_model(tmp_path / "m.povmodel").scores.baselines == {"bundled_lights": baseline.pooled}


def test_a_layer_given_keeps_the_layers_baseline(world, tmp_path):
    result = _fit(world, tmp_path / "m.povmodel", nightlights_path=str(world.lights_path))
    assert result.report.nightlights_baseline.features == "mean nightlights over each cluster's box, and its log1p"
    assert not any("bundled" in n for n in result.notes)
    assert set(load_model(tmp_path / "m.povmodel").scores.baselines) == {"nightlights"}


@pytest.fixture(scope="module")
def sample_clusters():
    """20 clusters on a grid over the sample scene (Paraguay), outcomes from their place."""
    with rasterio.open(SAMPLE_SCENE) as ds:
        west, south, east, north = ds.bounds
    xs, ys = np.meshgrid(np.linspace(west + 4000, east - 4000, 5), np.linspace(south + 4000, north - 4000, 4))
    return tuple(Cluster(x, y, (x - west) / 1000.0 + np.sin(y / 3000.0), 1.0, str(i))
                 for i, (x, y) in enumerate(zip(xs.ravel(), ys.ravel())))


def test_clusters_outside_africa_get_no_bundled_baseline_but_a_note(sample_clusters, tmp_path):
    result = fit_clusters(ClusterFitConfig(str(SAMPLE_SCENE), sample_clusters, str(tmp_path / "m.povmodel"),
                                           box_size_m=BOX_M, tile_size_m=TILE_M, device="cpu"))
    assert result.report.nightlights_baseline is None and result.baseline_predicted is None
    assert any(n.startswith("No night-lights baseline: None of the clusters lies inside the area the bundled")
               for n in result.notes)
    assert load_model(tmp_path / "m.povmodel").can_predict


def test_fitting_with_the_lights_outside_africa_is_refused(sample_clusters, tmp_path):
    out = write_earlier(tmp_path / "m.povmodel")
    with pytest.raises(OutsideCoverage, match="None of the clusters lies inside the area the bundled night lights"):
        fit_clusters(ClusterFitConfig(str(SAMPLE_SCENE), sample_clusters, str(out), box_size_m=BOX_M,
                                      tile_size_m=TILE_M, device="cpu", with_lights=True))
    assert_untouched(out)


# --- image and lights features together -------------------------------------------------------


@pytest.fixture(scope="module")
def with_lights(world, tmp_path_factory):
    folder = tmp_path_factory.mktemp("with_lights")
    result = _fit(world, folder / "m.povmodel", with_lights=True, report_path=str(folder / "cv.json"))
    return result, folder


def test_the_combined_fit_reads_the_35_lights_features_after_the_image_features(world, with_lights):
    result, folder = with_lights
    model = load_model(folder / "m.povmodel")
    n_image = model.extractor.n_features
    assert model.regressor.n_features == n_image + len(FEATURE_NAMES) == n_image + 35
    assert model.lights_features.n_features == 35 and model.lights_features.box_pixels == 11
    assert model.lights_features.year == 2016
    # The training features' mean: the image features', then the lights' of each cluster read here.
    used = [c for c, u in zip(_clusters(world), result.used) if u]
    lights = _bundled_features(used, rasterio.open(world.image_path).crs)
    np.testing.assert_allclose(model.feature_domain.mean[n_image:], lights.mean(axis=0), rtol=1e-9, atol=1e-12)
    alone = load_model(_fit(world, folder / "alone.povmodel").model_path)
    np.testing.assert_allclose(model.feature_domain.mean[:n_image], alone.feature_domain.mean, rtol=1e-9, atol=1e-12)


def test_the_combined_fit_chooses_the_lights_weight_inside_each_fold_and_says_so(with_lights):
    result, folder = with_lights
    assert all(f.block_weight in LIGHTS_BLOCK_WEIGHTS for f in result.report.cv.folds)
    report = json.loads((folder / "cv.json").read_text())
    assert all("block_weight" in f for f in report["cv"]["folds"])
    assert "weight of the bundled lights' features" in report["cv"]["protocol"]
    assert report["extractor"].endswith("and the bundled night lights")
    regressor = load_model(folder / "m.povmodel").regressor
    assert regressor.cv_scores["block"]["weight"] in LIGHTS_BLOCK_WEIGHTS
    assert regressor.cv_scores["block"]["start"] == regressor.n_features - 35


def test_the_combined_models_file_records_the_lights_and_refuses_to_map(world, with_lights, tmp_path):
    _, folder = with_lights
    path = folder / "m.povmodel"
    info = read_model_info(path)
    assert info.lights_features is not None and "Black Marble 2016" in info.card()
    out = write_earlier(tmp_path / "map.tif")
    with pytest.raises(PovertyMapperError, match="mapping with such a model is not supported yet"):
        predict_poverty_map(PredictRequest(str(world.image_path), str(out), load_model(path), device="cpu"))
    assert_untouched(out)
    # Without the record the regressor's 35 extra features make the file inconsistent.
    save_model(dataclasses.replace(load_model(path), lights_features=None), tmp_path / "cut.povmodel")
    with pytest.raises(ModelFileError, match="inconsistent"):
        load_model(tmp_path / "cut.povmodel")


def test_models_without_the_lights_keep_their_files_as_before(world, tmp_path):
    _fit(world, tmp_path / "m.povmodel", nightlights_path=str(world.lights_path))
    meta = json.loads(zipfile.ZipFile(tmp_path / "m.povmodel").read("model.json"))
    assert "lights_features" not in meta
    assert load_model(tmp_path / "m.povmodel").lights_features is None
