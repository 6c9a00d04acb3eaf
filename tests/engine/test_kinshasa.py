"""The survey fit on REAL data: the 44 DR Congo 2013 DHS clusters on the 2013 Landsat 8
scene over Kinshasa, night lights from Black Marble 2016 (../shared/data/real), as
`make eval` runs it. Only a few seconds: histogram features, 36 tiles per cluster."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_DATA
from helpers import assert_folds_keep_groups_whole, fold_members, neighbour_groups
from rasterio.crs import CRS

from poverty_mapper.evaluation import dhs, kinshasa
from poverty_mapper.core.imagery.tiling import ground_positions_m


@pytest.fixture(scope="module")
def survey(real_data):
    return dhs.load_dhs_clusters(SHARED_DATA / dhs.KINSHASA_CLUSTERS)


@pytest.fixture(scope="module")
def fit(real_data, tmp_path_factory):
    from poverty_mapper.core.training.clusters import fit_clusters

    model = tmp_path_factory.mktemp("kinshasa") / "kinshasa_histogram.povmodel"
    return fit_clusters(kinshasa.cluster_config(SHARED_DATA, "histogram", model))


def test_the_clusters_are_read_and_placed_in_web_mercator(survey):
    assert len(survey) == 44 and int(survey.urban.sum()) == 37
    assert survey.wealth.min() == pytest.approx(-0.847, abs=1e-3) and survey.wealth.max() == pytest.approx(2.08, abs=0.01)
    # Kinshasa lies around 15.3 E, 4.3 S: about 1.70e6 m east, -4.8e5 m north in EPSG:3857.
    assert np.all((survey.x > 1.55e6) & (survey.x < 1.74e6)) and np.all((survey.y > -5.9e5) & (survey.y < -4.5e5))


def test_kinshasa_folds_keep_the_city_together(fit):
    folds = fit.report.folds
    assert fit.used.all() and fit.report.cv.pooled.n == 44
    assert folds.distance_m == 10_000.0
    # Within 10 km the city's clusters chain into one group of 35: one fold holds it alone.
    assert folds.groups == 9 and folds.largest_group == 35 and max(folds.sizes) == 35
    assert sum(folds.sizes) == 44
    # Which clusters: the linked groups found here from their ground positions.
    survey = dhs.load_dhs_clusters(SHARED_DATA / dhs.KINSHASA_CLUSTERS, crs="EPSG:3857")
    groups = neighbour_groups(ground_positions_m(CRS.from_epsg(3857), survey.x, survey.y), 10_000.0)
    assert sorted(len(g) for g in groups) == [1, 1, 1, 1, 1, 1, 1, 2, 35]
    assert_folds_keep_groups_whole(fit.fold, groups)
    city = max(groups, key=len)
    assert city in fold_members(fit.fold)  # the city's fold holds the city alone


def test_kinshasa_boxes_are_fully_covered(fit):
    assert np.all(fit.coverage.tiles_in_box == 36) and np.all(fit.coverage.tiles_used == 36)
    assert fit.report.coverage.median_covered_share == 1.0


def test_kinshasa_night_lights_baseline_on_the_same_folds(fit):
    baseline = fit.report.nightlights_baseline
    assert [f.n for f in baseline.folds] == [f.n for f in fit.report.cv.folds]
    assert np.all(np.isfinite(fit.baseline_predicted))
    # Brighter boxes are wealthier even when the whole city is held out at once.
    assert baseline.pooled.r2 > 0.5
    assert fit.report.extractor == "histogram_sqrt"


@pytest.fixture(scope="module")
def lights_fit(real_data, tmp_path_factory):
    """``make eval``'s ``cnn_lights`` and ``lights`` fit, with histogram features (seconds, not minutes)."""
    from poverty_mapper.core.training.clusters import fit_clusters

    model = tmp_path_factory.mktemp("kinshasa_lights") / "kinshasa_histogram_lights.povmodel"
    return fit_clusters(kinshasa.lights_config(SHARED_DATA, "histogram", model))


def test_kinshasa_with_the_bundled_lights_keeps_the_folds_and_scores_the_lights_alone_on_them(fit, lights_fit):
    """The same 44 clusters in the same folds; the baseline is the bundled lights, whose
    35 features the combined fit reads beside the histogram's."""
    assert lights_fit.used.all() and np.array_equal(lights_fit.fold, fit.fold)
    baseline = lights_fit.report.nightlights_baseline
    assert "bundled NASA Black Marble 2016" in baseline.features
    assert [f.n for f in baseline.folds] == [f.n for f in lights_fit.report.cv.folds]
    assert np.all(np.isfinite(lights_fit.baseline_predicted))
    assert baseline.pooled.r2 > 0.5  # the bundled lights rank the held-out city's clusters too
    assert lights_fit.report.extractor == "histogram_sqrt and the bundled night lights"
    assert not np.allclose(lights_fit.predicted, fit.predicted)
