"""Estimates outside the range of the survey outcomes are counted and said, never passed
off as values (GENERATED raster and weights)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import rasterio

from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.models.model_file import TrainingDomain
from helpers import CNN_SCENE_SIZE, cnn_model, cnn_scene


def _map(tmp_path, domain):
    rng = np.random.default_rng(2)
    image = cnn_scene(tmp_path / "image.tif", np.clip(rng.normal(110, 40, (3, CNN_SCENE_SIZE, CNN_SCENE_SIZE)), 1, 255).astype(np.uint8))
    model = replace(cnn_model(), domain=domain)
    result = predict_poverty_map(PredictRequest(image, str(tmp_path / "map.tif"), model, device="cpu"))
    with rasterio.open(tmp_path / "map.tif") as ds:
        return result, ds.read(1, masked=True).compressed()


def test_estimates_outside_the_outcomes_are_counted_and_said(tmp_path):
    _, values = _map(tmp_path, None)
    lo, hi = np.percentile(values, [25, 75])
    result, again = _map(tmp_path, TrainingDomain(30, float(lo), float(hi), float((lo + hi) / 2), 0.1))
    outside = int(np.sum((again < lo) | (again > hi)))
    assert result.n_outside_range == outside > 0
    with rasterio.open(tmp_path / "map.tif") as ds:  # band 2 flags each cell: 0 inside, 1 outside
        estimate, quality = ds.read(1, masked=True), ds.read(2, masked=True)
        assert "extrapolation" in ds.descriptions[1]
    assert np.array_equal(quality.mask, estimate.mask)
    expected = np.where((estimate < lo) | (estimate > hi), 1.0, 0.0)
    assert np.array_equal(quality.compressed(), expected[~estimate.mask])
    assert any(f"{outside} of {values.size} estimated cells" in note and "extrapolations" in note for note in result.notes)


def test_a_map_within_the_outcomes_says_nothing_of_it(tmp_path):
    _, values = _map(tmp_path, None)
    result, _ = _map(tmp_path, TrainingDomain(30, float(values.min()) - 1, float(values.max()) + 1, 0.0, 1.0))
    assert result.n_outside_range == 0 and not any("extrapolations" in note for note in result.notes)


def test_a_map_of_one_value_says_so(tmp_path):
    """A model that cannot tell places apart (zero coefficients) gives a constant map: the
    run must say so rather than finish silently."""
    from poverty_mapper.core.regression.ridge import RidgeRegressor

    model = cnn_model()
    n = model.extractor.n_features
    flat = replace(model, regressor=RidgeRegressor(np.zeros(n), 0.5, np.zeros(n), np.ones(n), 1.0))
    rng = np.random.default_rng(3)
    image = cnn_scene(tmp_path / "image.tif", np.clip(rng.normal(110, 40, (3, CNN_SCENE_SIZE, CNN_SCENE_SIZE)), 1, 255).astype(np.uint8))
    result = predict_poverty_map(PredictRequest(image, str(tmp_path / "flat.tif"), flat, device="cpu"))
    assert result.value_min == result.value_max == 0.5
    assert any("hold the same value" in note for note in result.notes)


def test_a_fitted_model_records_its_80_percent_interval(small_world, tmp_path):
    """GENERATED world: the half-width is the 80 % quantile of the out-of-fold residuals,
    so it holds 80 % of the held-out clusters; the card and the map's tags carry it."""
    from poverty_mapper.core.models.model_file import load_model
    from poverty_mapper.core.training.clusters import Cluster, ClusterFitConfig, fit_clusters

    clusters = tuple(Cluster(x, y, o, w) for x, y, o, w in small_world.clusters)
    fit = fit_clusters(ClusterFitConfig(image_path=str(small_world.image_path), clusters=clusters,
                                        model_path=str(tmp_path / "fit.povmodel"), box_size_m=1500, tile_size_m=480,
                                        fold_distance_m=750.0))
    model = load_model(tmp_path / "fit.povmodel")
    q = model.scores.interval_80
    inside = np.mean(np.abs(fit.observed - fit.predicted) <= q + 1e-9)
    assert 0.78 <= inside <= 0.85
    assert f"±{q:.2f}" in model.card()
    predict_poverty_map(PredictRequest(str(small_world.image_path), str(tmp_path / "map.tif"), model))
    with rasterio.open(tmp_path / "map.tif") as ds:
        assert float(ds.tags()["INTERVAL_80"]) == pytest.approx(q, rel=1e-5)


def test_scores_within_groups_are_reported_and_carded(small_world, tmp_path):
    """GENERATED world split into two 'countries' (west, east) whose survey values differ
    by a constant the imagery cannot see: the pooled r2 suffers from the unexplained
    step, the within-group r2 measures the ranking inside each."""
    from poverty_mapper.core.models.model_file import load_model
    from poverty_mapper.core.regression.metrics import within_r2
    from poverty_mapper.core.training.clusters import Cluster, ClusterFitConfig, fit_clusters

    xs = np.array([c[0] for c in small_world.clusters])
    west = xs < np.median(xs)
    # A step of 1: with a step of 3 the pooled fit broke down, its
    # within-group predictions ran against the survey values, and only the unsigned r2 made
    # the assertions below hold.
    clusters = tuple(Cluster(x, y, o + (1.0 if w_ else 0.0), w, str(i), "west" if w_ else "east")
                     for i, ((x, y, o, w), w_) in enumerate(zip(small_world.clusters, west)))
    fit = fit_clusters(ClusterFitConfig(image_path=str(small_world.image_path), clusters=clusters,
                                        model_path=str(tmp_path / "fit.povmodel"), box_size_m=1500, tile_size_m=480,
                                        fold_distance_m=750.0))
    within = fit.report.cv.within_groups
    groups = np.where(west, "west", "east")[fit.used]
    assert len(within.per_group) == 2 and within.r2 == round(within_r2(fit.observed, fit.predicted, groups), 4)
    assert set(within.per_group) == {"west", "east"}
    assert within.r2 > fit.report.cv.pooled.r2 > 0
    assert "Within groups" in load_model(tmp_path / "fit.povmodel").card()
    assert within.out_of_group_r2 is None and "out_of_group_r2" not in within.to_json()  # two groups: no model fitted on 'the others' can choose a penalty


def test_with_three_groups_each_is_also_predicted_from_the_others(small_world, tmp_path):
    """GENERATED world cut into three 'countries' with the same planted relation: each
    predicted by a model fitted on the other two ranks its places too (the out-of-country
    figure of the report and the card)."""
    from poverty_mapper.core.models.model_file import load_model
    from poverty_mapper.core.training.clusters import Cluster, ClusterFitConfig, fit_clusters

    xs = np.array([c[0] for c in small_world.clusters])
    third = np.digitize(xs, np.quantile(xs, [1 / 3, 2 / 3]))
    clusters = tuple(Cluster(x, y, o, w, str(i), f"country{t}")
                     for i, ((x, y, o, w), t) in enumerate(zip(small_world.clusters, third)))
    fit = fit_clusters(ClusterFitConfig(image_path=str(small_world.image_path), clusters=clusters,
                                        model_path=str(tmp_path / "fit.povmodel"), box_size_m=1500, tile_size_m=480,
                                        fold_distance_m=750.0))
    within = fit.report.cv.within_groups
    assert len(within.per_group) == 3 and 0.5 < within.out_of_group_r2 <= 1.0
    model = load_model(tmp_path / "fit.povmodel")
    assert model.scores.out_of_country_r2 == within.out_of_group_r2
    assert f"Out of country (fitted on the other countries): r² {within.out_of_group_r2:.2f}" in model.card()


def test_band_names_are_short_and_each_quality_code_is_named_in_the_band_tags(tmp_path):
    _map(tmp_path, None)
    with rasterio.open(tmp_path / "map.tif") as ds:
        names, quality_tags, interval_tags = ds.descriptions, ds.tags(2), ds.tags(3)
    # Short enough to read whole in QGIS's Identify ("Band 2: quality (…)"), and still found by their words.
    assert all(len(name) <= 45 for name in names[1:]), names
    assert names[1].startswith("quality") and "3 out of domain" in names[1]
    assert names[2].startswith("interval80") and "interval half-width" in names[2]
    assert "out of domain" in quality_tags["CODE_3"] and "extrapolation" in quality_tags["CODE_1"]
    assert {f"CODE_{code}" for code in range(6)} <= set(quality_tags)
    assert "80 %" in interval_tags["MEANING"]
