"""The whole transfer-learning chain on a GENERATED world (tests/generated_world.py):
train the nightlight proxy -> fit clusters -> predict recovers the planted relation,
and fails to find one when the outcomes are shuffled. Not an accuracy figure."""
from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from generated_world import density_on, make_world
from poverty_mapper.core.training.clusters import Cluster, ClusterFitConfig, fit_clusters
from poverty_mapper.core.training.survey_inputs import extractor_fields
from poverty_mapper.core.models.model_file import load_model
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.training.proxy import ProxyTrainingConfig, train_proxy

TILE_M = 480.0  # 16 px of 30 m
BOX_M = 1500.0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("generated_world"))


@pytest.fixture(scope="module")
def proxy(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("proxy")
    result = train_proxy(
        ProxyTrainingConfig(
            image_path=str(world.image_path),
            nightlights_path=str(world.lights_path),
            model_path=str(out / "proxy.povmodel"),
            report_path=str(out / "proxy.json"),
            plot_path=str(out / "proxy.png"),
            tile_size_m=TILE_M,
            architecture="small_cnn",
            epochs=6,
            batch_size=64,
        )
    )
    return result, out


def _clusters(world, outcomes=None):
    outcomes = [c[2] for c in world.clusters] if outcomes is None else outcomes
    return tuple(Cluster(x, y, o, w, str(i)) for i, ((x, y, _, w), o) in enumerate(zip(world.clusters, outcomes)))


def test_proxy_training_learns_light_classes(proxy):
    result, out = proxy
    report = result.report
    assert len(report["epochs"]) == 6
    assert report["epochs"][-1]["train_loss"] < report["epochs"][0]["train_loss"]
    # Three balanced classes: chance is 1/3 on the held-out spatial blocks.
    assert report["epochs"][-1]["val_accuracy"] > 0.7
    matrix = np.array(report["confusion_matrix_val"]["matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == report["tiles"]["val"]
    assert json.loads((out / "proxy.json").read_text())["tiles"] == report["tiles"]
    assert (out / "proxy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = load_model(out / "proxy.povmodel")
    assert model.extractor.kind == "cnn" and not model.can_predict


def test_cnn_features_recover_the_planted_relation(world, proxy, tmp_path):
    _, out = proxy
    result = fit_clusters(
        ClusterFitConfig(
            image_path=str(world.image_path),
            clusters=_clusters(world),
            model_path=str(tmp_path / "fit.povmodel"),
            outcome_name="generated wealth",
            extractor_path=str(out / "proxy.povmodel"),
            box_size_m=BOX_M,
            nightlights_path=str(world.lights_path),
            report_path=str(tmp_path / "cv.json"),
            scatter_path=str(tmp_path / "scatter.png"),
        )
    )
    pooled = result.report.cv.pooled
    assert pooled.n == len(world.clusters)
    assert pooled.r2 >= 0.8 and pooled.R2 >= 0.75
    assert result.report.nightlights_baseline.pooled.n == len(world.clusters)
    assert (tmp_path / "scatter.png").is_file()

    # The fitted model maps the world: estimates follow the planted density.
    predict_poverty_map(PredictRequest(str(world.image_path), str(tmp_path / "map.tif"), load_model(tmp_path / "fit.povmodel")))
    with rasterio.open(tmp_path / "map.tif") as ds:
        estimate = ds.read(1, masked=True)
        density = density_on(world, ds)
    ok = ~estimate.mask & np.isfinite(density)
    assert np.corrcoef(estimate[ok], density[ok])[0, 1] ** 2 > 0.7


def test_a_network_fit_chooses_its_columns_on_inner_folds(world, proxy, tmp_path):
    """A network's features: each outer fold chooses the regression's columns (features,
    principal components or the network's class scores) on its inner folds; the model file
    keeps a ridge on the features and names the final choice."""
    _, out = proxy
    base = dict(image_path=str(world.image_path), clusters=_clusters(world), outcome_name="generated wealth",
                extractor_path=str(out / "proxy.povmodel"), box_size_m=BOX_M)
    chosen = fit_clusters(ClusterFitConfig(model_path=str(tmp_path / "chosen.povmodel"), **base))
    plain = fit_clusters(ClusterFitConfig(model_path=str(tmp_path / "plain.povmodel"), choose_columns=False, **base))
    names = {"features", "pca k=2", "pca k=4", "pca k=8", "pca k=16", "head"}
    assert {f.columns for f in chosen.report.cv.folds} <= names and all(f.columns for f in chosen.report.cv.folds)
    assert not any(f.columns for f in plain.report.cv.folds)
    assert "principal components" in chosen.report.cv.protocol and "principal" not in plain.report.cv.protocol
    model = load_model(tmp_path / "chosen.povmodel")
    assert model.regressor.cv_scores["columns"]["chosen"] in names
    assert set(model.regressor.cv_scores["columns"]["R2_by_columns"]) == names
    assert model.regressor.n_features == model.extractor.n_features
    assert chosen.report.cv.pooled.r2 >= 0.8


def test_shuffled_outcomes_score_near_zero(world, proxy, tmp_path):
    _, out = proxy
    shuffled = np.random.default_rng(1).permutation([c[2] for c in world.clusters])
    result = fit_clusters(
        ClusterFitConfig(
            image_path=str(world.image_path),
            clusters=_clusters(world, shuffled),
            model_path=str(tmp_path / "shuffled.povmodel"),
            extractor_path=str(out / "proxy.povmodel"),
            box_size_m=BOX_M,
        )
    )
    pooled = result.report.cv.pooled
    assert pooled.r2 < 0.15
    assert pooled.R2 < 0.1


@pytest.mark.parametrize("extractor", ["histogram", "random"])
def test_untrained_extractors_recover_the_planted_relation(world, tmp_path, extractor):
    result = fit_clusters(
        ClusterFitConfig(
            image_path=str(world.image_path),
            clusters=_clusters(world),
            model_path=str(tmp_path / f"{extractor}.povmodel"),
            extractor_kind=extractor,
            tile_size_m=TILE_M,
            box_size_m=BOX_M,
            n_random_filters=64,
        )
    )
    assert result.report.cv.pooled.r2 >= 0.8
    # The histogram extractor of a cluster fit gives square-rooted frequencies.
    assert load_model(tmp_path / f"{extractor}.povmodel").extractor.kind == {"histogram": "histogram_sqrt"}.get(extractor, extractor)


# EfficientNet-Lite0 from ImageNet weights, the default network, on tiles of 32 pixels
# (at 16 its five stride-2 stages leave a single cell).
EFFICIENTNET_TILE_M = 960.0
EFFICIENTNET_BOX_M = 1920.0


@pytest.fixture(scope="module")
def imagenet_proxy(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("imagenet_proxy")
    result = train_proxy(
        ProxyTrainingConfig(image_path=str(world.image_path), nightlights_path=str(world.lights_path),
                            model_path=str(out / "proxy.povmodel"), tile_size_m=EFFICIENTNET_TILE_M,
                            epochs=8, batch_size=32, block_size_tiles=3, frozen_blocks=3, device="cpu")
    )
    return result, out / "proxy.povmodel"


def test_imagenet_started_network_learns_above_chance(world, imagenet_proxy, tmp_path):
    report = imagenet_proxy[0].report
    assert report["network"] == {**report["network"], "architecture": "efficientnet_lite0", "start": "ImageNet"}
    # One run is one draw: on this GENERATED world, 8 epochs held out balanced accuracy
    # 0.57-0.83 over seeds 0-4 here (AMD Zen 4), 0.42-0.91 with AVX2 kernels (0.47-0.89 with
    # gamma renders alone), so any one seed falls below chance + 0.2 now and then. The
    # median of three seeds stayed above 0.7 on both kinds of kernel.
    runs = [report["held_out"]]
    for seed in (1, 2):
        config = ProxyTrainingConfig(image_path=str(world.image_path), nightlights_path=str(world.lights_path),
                                     model_path=str(tmp_path / f"proxy{seed}.povmodel"), tile_size_m=EFFICIENTNET_TILE_M,
                                     epochs=8, batch_size=32, block_size_tiles=3, frozen_blocks=3, device="cpu", seed=seed)
        runs.append(train_proxy(config).report["held_out"])
    median = float(np.median([run["balanced_accuracy"] for run in runs]))
    assert median > runs[0]["chance"] + 0.2, runs


def test_imagenet_started_features_recover_the_planted_relation(world, imagenet_proxy, tmp_path):
    result = fit_clusters(
        ClusterFitConfig(image_path=str(world.image_path), clusters=_clusters(world),
                         model_path=str(tmp_path / "fit.povmodel"), outcome_name="generated wealth",
                         extractor_path=str(imagenet_proxy[1]), box_size_m=EFFICIENTNET_BOX_M)
    )
    pooled = result.report.cv.pooled
    assert pooled.n == len(world.clusters)
    assert pooled.r2 >= 0.7 and pooled.R2 >= 0.6, pooled


def _planted_truth(world, transform, shape, box_m):
    """2 x the mean density in a box of ``box_m`` around each cell centre: the relation
    the clusters' outcomes were generated with."""
    half = int(box_m / 30.0 / 2)
    size = world.density.shape[0]
    truth = np.full(shape, np.nan)
    for r in range(shape[0]):
        for c in range(shape[1]):
            x, y = transform * (c + 0.5, r + 0.5)
            col, row = ~world.transform * (x, y)
            r0, c0 = int(row) - half, int(col) - half
            if 0 <= r0 and 0 <= c0 and r0 + 2 * half <= size and c0 + 2 * half <= size:
                truth[r, c] = 2.0 * world.density[r0:r0 + 2 * half, c0:c0 + 2 * half].mean()
    return truth


@pytest.mark.parametrize("extractor", ["histogram", "random", "small_cnn", "efficientnet"])
def test_the_map_lives_on_the_training_outcomes_scale(world, proxy, imagenet_proxy, tmp_path, extractor):
    """Fit and map agree: a map cell is estimated from the same neighbourhood (the fit's
    box) as a cluster, so the map spreads like the outcomes and matches the planted truth
    in value, not only in rank."""
    source = {"small_cnn": str(proxy[1] / "proxy.povmodel"), "efficientnet": str(imagenet_proxy[1])}.get(extractor, extractor)
    box_m = 2880.0 if extractor == "efficientnet" else BOX_M  # three tiles of 960 m, or of 480 m
    result = fit_clusters(ClusterFitConfig(
        image_path=str(world.image_path), clusters=_clusters(world), model_path=str(tmp_path / "fit.povmodel"),
        **extractor_fields(source), tile_size_m=TILE_M, box_size_m=box_m, n_random_filters=64, fold_distance_m=BOX_M,
    ))
    predict_poverty_map(PredictRequest(str(world.image_path), str(tmp_path / "map.tif"), load_model(tmp_path / "fit.povmodel")))
    with rasterio.open(tmp_path / "map.tif") as ds:
        estimate = ds.read(1, masked=True)
        truth = _planted_truth(world, ds.transform, ds.shape, BOX_M)  # the box the outcomes were made with
    ok = ~estimate.mask & np.isfinite(truth)
    values, planted = np.asarray(estimate.data[ok], np.float64), truth[ok]
    # The map spreads like the planted truth of its cells, within a third of its span at
    # the 1st and 99th percentiles (single-tile estimates of the small CNN spread over
    # -4.7 to 3.9 on a truth of 0 to 2; EfficientNet's averaged map still overshoots most,
    # to 2.64 at its 99th percentile); the clusters' outcomes lie in that range too.
    span = planted.max() - planted.min()
    assert planted.min() - span / 3 < np.percentile(values, 1) and np.percentile(values, 99) < planted.max() + span / 3
    assert planted.min() - 0.1 * span < result.observed.min() and result.observed.max() < planted.max() + 0.1 * span
    r2 = np.corrcoef(values, planted)[0, 1] ** 2
    R2 = 1 - np.sum((planted - values) ** 2) / np.sum((planted - planted.mean()) ** 2)
    assert r2 > 0.8 and R2 > 0.75, (r2, R2)
