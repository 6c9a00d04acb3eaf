"""The survey fit with a model file's extractor (the bundled Kinshasa CNN) reads the image
as a map does: the model's bands by name, the same radiometry, and the same scene
standardization (with its note, for a network of the older reading, which standardizes a
scene by its own statistics only where its radiometry differs; the bundled network reads
every scene so). On a GENERATED raster made from the bundled Parana sample
(Landsat 8 Level-1 DN, bands blue, green, red): a crop converted to reflectance, its bands
stored as SR_B3, SR_B2, SR_B4 (green, blue, red), so that band numbers 1, 2, 3 would feed
GREEN as RED. The outcome is random: no score here means anything."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import rasterio
import torch
from conftest import ROOT
from rasterio.windows import Window

from poverty_mapper.core.imagery.box_tiles import box_tiles
from poverty_mapper.core.imagery.radiometry import LANDSAT_C1_L1
from poverty_mapper.core.imagery.scene_moments import whole_image_moments
from poverty_mapper.core.imagery.tile_reader import TileReader
from poverty_mapper.core.inference.estimate import tile_features
from poverty_mapper.core.imagery.executors import LocalExecutor
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.extractors.cnn import CnnExtractor
from poverty_mapper.core.models.model_file import load_model, save_model
from poverty_mapper.core.training import clusters as clusters_module
from poverty_mapper.core.training.clusters import Cluster, ClusterFitConfig, fit_clusters

SAMPLE = ROOT / "resources" / "sample" / "parana_landsat8_l1_rgb_30m.tif"  # bands blue, green, red
CNN = ROOT / "resources" / "models" / "kinshasa_cnn.povmodel"  # expects RED, GREEN, BLUE, trained on 8-bit renders
CROP = Window(200, 200, 640, 640)  # 19.2 km a side
# (sample band, name) in the generated file's order: green, blue, red.
STORED = ((2, "SR_B3"), (1, "SR_B2"), (3, "SR_B4"))
BY_NAME = (3, 1, 2)  # RED, GREEN, BLUE of the generated file
BOX_M = 4_300.0
FEATURES_OF = clusters_module.features_of  # the fit's own, kept by the fixtures' wrapper


@pytest.fixture(scope="module")
def reflectance_image(tmp_path_factory):
    """GENERATED: the sample's crop as reflectance (float32), bands reordered and renamed."""
    path = tmp_path_factory.mktemp("fit_cnn") / "generated_parana_reflectance_b3_b2_b4.tif"
    with rasterio.open(SAMPLE) as src:
        dn = src.read([b for b, _ in STORED], window=CROP)
        profile = src.profile
        transform = src.window_transform(CROP)
    profile.update(dtype="float32", width=CROP.width, height=CROP.height, transform=transform, nodata=None)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(LANDSAT_C1_L1.apply(dn))
        dst.descriptions = tuple(name for _, name in STORED)
    return path


def _clusters(path) -> tuple[Cluster, ...]:
    """Twelve clusters on a 4 x 3 grid over the image, random outcomes."""
    with rasterio.open(path) as ds:
        left, top = ds.bounds.left, ds.bounds.top
    outcomes = np.random.default_rng(0).normal(size=12)
    return tuple(
        Cluster(left + 2_400.0 + 4_800.0 * (k % 4), top - 3_000.0 - 6_000.0 * (k // 4), float(outcomes[k]), 1.0, str(k))
        for k in range(12)
    )


class _KeepsTheJob(LocalExecutor):
    """The local executor, keeping the mapping job it ran: the bands, radiometry and model
    (scene-standardized where predict standardized it) with which predict read the tiles."""

    job = None

    def results(self, work, *args):
        self.job = work.job
        return super().results(work, *args)


def _box_features(job, path, cluster: Cluster, i: int, band_indexes=None, extractor=None) -> np.ndarray:
    """Predict's features of the tiles of ``cluster``'s box, averaged over the tiles with
    enough valid pixels: read and run as a map reads and runs them (``job``)."""
    extractor = extractor or job.model.extractor
    with rasterio.open(path) as ds:
        box, _ = box_tiles(ds, i, cluster.x, cluster.y, BOX_M, job.model.tile_size_m)
        reader = TileReader(ds, band_indexes or job.band_indexes, job.model.tile_size_px, job.radiometry)
        features = []
        for window in box:
            dn, valid = reader.read_dn(window)
            if valid.sum() >= job.min_valid_fraction * reader.size**2:
                with torch.inference_mode():
                    f = tile_features(extractor, torch.from_numpy(dn[None]), torch.from_numpy(valid[None]),
                                      job.pixel_radiometry)
                features.append(f[0].double().numpy())
    return np.mean(features, axis=0)


@pytest.fixture(scope="module")
def older_cnn(tmp_path_factory):
    """The bundled network as a model file of the older reading (training-tile statistics,
    the scene's own only for another radiometry), as model files made before it are."""
    model = load_model(CNN)
    e = model.extractor
    older = dataclasses.replace(model, extractor=CnnExtractor(e.network, e.band_means, e.band_stds, input_std=e.input_std))
    return save_model(older, tmp_path_factory.mktemp("older") / "older_cnn.povmodel")


def _fit_and_map(model_path, image, folder, monkeypatch_module):
    """The fit with ``model_path``'s extractor (its features of each cluster kept), and a
    map of the whole image with the same model (its job kept)."""
    kept = []

    def features_of(*args, **kw):
        kept.append(FEATURES_OF(*args, **kw))
        return kept[-1]

    monkeypatch_module.setattr(clusters_module, "features_of", features_of)
    result = fit_clusters(ClusterFitConfig(
        str(image), _clusters(image), str(folder / "fit.povmodel"), extractor_path=str(model_path),
        box_size_m=BOX_M, fold_distance_m=0.0, n_folds=3, device="cpu", report_path=str(folder / "fit.json"),
    ))
    executor = _KeepsTheJob()
    mapped = predict_poverty_map(
        PredictRequest(str(image), str(folder / "map.tif"), load_model(model_path), device="cpu"), executor=executor,
    )
    return result, kept[0], executor.job, mapped, folder


@pytest.fixture(scope="module")
def fit_and_map(reflectance_image, older_cnn, tmp_path_factory, monkeypatch_module):
    """The older reading's fit and map."""
    return _fit_and_map(older_cnn, reflectance_image, tmp_path_factory.mktemp("fit_cnn_out"), monkeypatch_module)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_the_fit_reads_the_model_bands_by_name_as_the_map_does(fit_and_map):
    result, features, job, _, folder = fit_and_map
    assert job.band_indexes == BY_NAME
    fitted = load_model(folder / "fit.povmodel")
    assert fitted.band_indexes == BY_NAME and fitted.bands == ("RED", "GREEN", "BLUE")
    assert result.report.extractor.startswith("cnn from older_cnn.povmodel")


def test_the_fit_features_of_each_cluster_are_the_map_features_of_its_box(fit_and_map, reflectance_image):
    result, features, job, _, _ = fit_and_map
    clusters = _clusters(reflectance_image)
    assert result.used.all()
    for i in (0, 5, 11):
        from_map = _box_features(job, reflectance_image, clusters[i], i)
        np.testing.assert_allclose(features.features[i], from_map, rtol=1e-4, atol=1e-4)
    # What the comparison can tell apart: the bands by number (GREEN read as RED), or the
    # training tiles' standardization on reflectance, give other features by far.
    from_map = _box_features(job, reflectance_image, clusters[0], 0)
    by_number = _box_features(job, reflectance_image, clusters[0], 0, band_indexes=(1, 2, 3))
    unstandardized = _box_features(job, reflectance_image, clusters[0], 0, extractor=load_model(CNN).extractor)
    for other in (by_number, unstandardized):
        assert np.abs(other - from_map).max() > 100 * (1e-4 + 1e-4 * np.abs(from_map).max())


def test_the_scene_standardization_and_its_note_are_the_map_s(fit_and_map):
    result, features, job, mapped, folder = fit_and_map
    trained = load_model(CNN).extractor
    assert not np.allclose(job.model.extractor.band_means, trained.band_means)  # the map standardized the scene
    np.testing.assert_array_equal(features.extractor.band_means, job.model.extractor.band_means)
    np.testing.assert_array_equal(features.extractor.band_stds, job.model.extractor.band_stds)
    scene_notes = [n for n in mapped.notes if "standardized with this scene's own mean and spread" in n]
    assert len(scene_notes) == 1
    assert scene_notes[0] in result.notes  # the notes every front end prints
    assert scene_notes[0] in json.loads((folder / "fit.json").read_text())["notes"]
    # The fitted model reads reflectance with the standardization it was fitted with.
    fitted = load_model(folder / "fit.povmodel")
    assert fitted.radiometry == "reflectance"
    np.testing.assert_array_equal(fitted.extractor.band_means, job.model.extractor.band_means)


@pytest.fixture(scope="module")
def bundled_fit_and_map(reflectance_image, tmp_path_factory, monkeypatch_module):
    return _fit_and_map(CNN, reflectance_image, tmp_path_factory.mktemp("fit_bundled_cnn"), monkeypatch_module)


def test_the_bundled_network_reads_every_scene_by_the_whole_image_s_moments(bundled_fit_and_map, reflectance_image):
    """The bundled network standardizes any scene by the whole image's mean and spread,
    in the fit as in the map, with no note (it is how the network reads every scene)."""
    result, features, job, mapped, _ = bundled_fit_and_map
    trained = load_model(CNN)
    assert trained.extractor.reads_scene_moments
    with rasterio.open(reflectance_image) as ds:
        mean, std = whole_image_moments(ds, BY_NAME, job.radiometry, trained.tile_size_px, trained.tile_size_m)
    np.testing.assert_allclose(job.model.extractor.band_means, mean)
    np.testing.assert_allclose(job.model.extractor.band_stds, std / trained.extractor.input_std)
    np.testing.assert_array_equal(features.extractor.band_means, job.model.extractor.band_means)
    assert not any("standardized" in n for n in list(mapped.notes) + list(result.notes))
    clusters = _clusters(reflectance_image)
    for i in (0, 11):
        np.testing.assert_allclose(features.features[i], _box_features(job, reflectance_image, clusters[i], i),
                                   rtol=1e-4, atol=1e-4)
