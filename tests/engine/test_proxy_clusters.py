"""Details of proxy training and the cluster fit, on small GENERATED inputs."""
from __future__ import annotations

import numpy as np
import pytest

from poverty_mapper.core.regression.cross_validation import nested_cv
from poverty_mapper.core.training.clusters import Cluster, ClusterFitConfig, fit_clusters
from poverty_mapper.core.errors import PovertyMapperError
from poverty_mapper.core.models.model_file import load_model
from poverty_mapper.core.training.proxy import (
    ProxyTrainingConfig,
    train_proxy,
)
from poverty_mapper.core.training.proxy_tiles import class_edges, light_classes, spatial_block_split
from poverty_mapper.core.regression.folds import group_folds


def test_quantile_classes_are_balanced():
    lights = np.arange(300, dtype=float)
    edges = class_edges(lights, 3, "quantiles")
    assert np.bincount(light_classes(lights, edges)).tolist() == [100, 100, 100]


def test_dark_ties_merge_classes_instead_of_leaving_one_empty():
    lights = np.array([0.0] * 80 + list(np.linspace(1, 50, 20)))
    edges = class_edges(lights, 3, "quantiles")
    counts = np.bincount(light_classes(lights, edges))
    assert counts.min() > 0
    assert counts[0] == 80  # all dark tiles in the lowest class


def test_constant_lights_are_a_clear_error():
    with pytest.raises(PovertyMapperError, match="same over all training tiles"):
        class_edges(np.ones(50), 3)


def test_spatial_split_keeps_neighbours_apart():
    rows, cols = np.divmod(np.arange(40 * 40), 40)
    train, val = spatial_block_split(rows, cols, block=4, val_fraction=0.2, seed=0)
    assert set(train).isdisjoint(val)
    assert 0.15 <= val.size / rows.size <= 0.3
    val_cells = set(zip(rows[val], cols[val]))
    for i in train:
        neighbours = {(rows[i] + dr, cols[i] + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)}
        assert not neighbours & val_cells


def test_groups_never_straddle_folds():
    groups = np.repeat(np.arange(30), 3)[:, None]  # each location surveyed three times
    folds = group_folds(groups, 5, seed=0)
    for g in range(30):
        assert len(set(folds[groups[:, 0] == g])) == 1


def test_nested_cv_chooses_alpha_per_fold_and_scores_out_of_fold():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 0.0]) + rng.normal(0, 0.1, 120)
    groups = np.arange(120)[:, None]
    pred, folds, per_fold = nested_cv(x, y, groups, n_folds=5)
    assert np.all(np.isfinite(pred)) and len(per_fold) == 5
    assert np.corrcoef(pred, y)[0, 1] ** 2 > 0.95
    assert all(f.alpha < 10 for f in per_fold)


# The small generated world packs 40 clusters with 1.5 km boxes into 7.7 km: linked at
# the box size they form two groups. Tests about other things link them at 750 m.
SMALL_WORLD_FOLD_M = 750.0


def test_transfer_reuses_lower_layers(small_world, tmp_path):
    common = dict(image_path=str(small_world.image_path), nightlights_path=str(small_world.lights_path),
                  tile_size_m=480.0, epochs=1, batch_size=32, block_size_tiles=2,
                  architecture="small_cnn", binning="quantiles")
    first = train_proxy(ProxyTrainingConfig(model_path=str(tmp_path / "a.povmodel"), **common))
    assert first.report["reused_layers"] == 0
    second = train_proxy(
        ProxyTrainingConfig(model_path=str(tmp_path / "b.povmodel"), start_model_path=str(tmp_path / "a.povmodel"),
                            n_classes=4, **common)
    )
    assert second.report["reused_layers"] > 10  # conv, batch-norm and feature-layer tensors
    assert load_model(tmp_path / "a.povmodel").extractor.network.config["n_classes"] == 3
    assert load_model(tmp_path / "b.povmodel").extractor.network.config["n_classes"] == 4


def test_a_start_model_without_a_network_is_refused(small_world, tmp_path):
    from poverty_mapper.core.models.defaults import DEFAULT_MODEL_PATH

    start = DEFAULT_MODEL_PATH  # the bundled RGB histogram model
    assert not load_model(start).extractor.is_network
    with pytest.raises(PovertyMapperError, match="no CNN to reuse"):
        train_proxy(ProxyTrainingConfig(
            image_path=str(small_world.image_path), nightlights_path=str(small_world.lights_path),
            model_path=str(tmp_path / "m.povmodel"), start_model_path=str(start), tile_size_m=480.0, epochs=1,
            block_size_tiles=2, architecture="small_cnn", binning="quantiles"))
    assert not (tmp_path / "m.povmodel").exists()


def test_fixed_thresholds_and_class_weights(small_world, tmp_path):
    result = train_proxy(
        ProxyTrainingConfig(image_path=str(small_world.image_path), nightlights_path=str(small_world.lights_path),
                            model_path=str(tmp_path / "m.povmodel"), tile_size_m=480.0, epochs=1,
                            thresholds=(5.0,), block_size_tiles=2)
    )
    classes = result.report["classes"]
    assert classes["edges"] == [5.0] and classes["binning"] == "fixed"
    counts, weights = classes["train_counts"], classes["loss_weights"]
    assert len(counts) == 2 and min(counts) > 0 and counts[0] != counts[1]
    # The rarer class weighs more.
    assert (weights[0] > weights[1]) == (counts[0] < counts[1])


def test_log_outcome_and_dropped_clusters(small_world, tmp_path):
    clusters = [Cluster(x, y, np.exp(o), w) for x, y, o, w in small_world.clusters]
    clusters[0] = Cluster(clusters[0].x, clusters[0].y, -1.0)  # not loggable
    clusters[1] = Cluster(clusters[1].x, clusters[1].y, float("nan"))  # missing
    clusters[2] = Cluster(10.0, 10.0, 1.0)  # far outside the image
    result = fit_clusters(
        ClusterFitConfig(image_path=str(small_world.image_path), clusters=tuple(clusters),
                         model_path=str(tmp_path / "log.povmodel"), outcome_name="consumption",
                         outcome_unit="USD/day", log_outcome=True, box_size_m=1500, tile_size_m=480,
                         fold_distance_m=SMALL_WORLD_FOLD_M)
    )
    assert result.report.clusters.used == len(clusters) - 3
    assert result.report.unit == "log of USD/day"
    assert any("outside the image" in n for n in result.notes)
    assert any("log transform" in n for n in result.notes)
    model = load_model(tmp_path / "log.povmodel")
    assert model.target.unit == "log of USD/day"


def test_too_few_clusters_for_the_folds(small_world, tmp_path):
    clusters = tuple(Cluster(x, y, o) for x, y, o, _ in small_world.clusters[:6])
    with pytest.raises(PovertyMapperError, match="cross-validation"):
        fit_clusters(ClusterFitConfig(image_path=str(small_world.image_path), clusters=clusters,
                                      model_path=str(tmp_path / "x.povmodel"), box_size_m=1500, tile_size_m=480))
    assert not (tmp_path / "x.povmodel").exists()


def test_thresholds_outside_the_lights_are_a_clear_error(small_world, tmp_path):
    with pytest.raises(PovertyMapperError, match="no training tile"):
        train_proxy(
            ProxyTrainingConfig(image_path=str(small_world.image_path), nightlights_path=str(small_world.lights_path),
                                model_path=str(tmp_path / "m.povmodel"), tile_size_m=480.0, epochs=1,
                                thresholds=(1e6,), block_size_tiles=2)
        )
    assert not (tmp_path / "m.povmodel").exists()
