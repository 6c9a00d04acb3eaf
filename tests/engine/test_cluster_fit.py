"""The survey fit's mechanics on GENERATED worlds (tests/generated_world.py): folds that
keep neighbours together, the coverage of each cluster's box, the nightlights baseline
on the same folds, and features that vary in almost no cluster. No score here is an
accuracy; the figures on real data come from `make eval`."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rasterio
import torch

from helpers import assert_folds_keep_groups_whole, fold_members, neighbour_groups
from poverty_mapper.core.errors import PovertyMapperError
from poverty_mapper.core.imagery.radiometry import REFLECTANCE
from poverty_mapper.core.imagery.tile_reader import ImageTiles
from poverty_mapper.core.imagery.tiling import PixelWindow
from poverty_mapper.core.regression.metrics import coefficient_of_determination, squared_pearson
from poverty_mapper.core.regression.ridge import PenaltySearch
from poverty_mapper.core.regression.cross_validation import nested_cv
from poverty_mapper.core.training import clusters as clusters_module
from poverty_mapper.core.models.model_file import load_model
from poverty_mapper.core.training.cluster_features import cluster_features
from poverty_mapper.core.training.cluster_report import fold_score
from poverty_mapper.core.training.clusters import CLUSTER_PENALTY, Cluster, ClusterFitConfig, fit_clusters
from poverty_mapper.core.training.survey_inputs import check_survey_fields, extractor_fields
from poverty_mapper.core.training.progress import PhasedProgress

BOX_M, TILE_M = 1500.0, 480.0


@pytest.fixture(scope="module")
def world(small_world):
    return small_world  # conftest's session-wide generated world


def _clusters(world):
    return tuple(Cluster(x, y, o, w, str(i)) for i, (x, y, o, w) in enumerate(world.clusters))


def _fit(world, tmp_path, image=None, **kw):
    kw.setdefault("box_size_m", BOX_M)
    kw.setdefault("tile_size_m", TILE_M)
    return fit_clusters(ClusterFitConfig(str(image or world.image_path), kw.pop("clusters", _clusters(world)),
                                         str(tmp_path / "m.povmodel"), device="cpu", **kw))


# --- folds ----------------------------------------------------------------------------


def test_clusters_closer_than_the_fold_distance_share_a_fold(world, tmp_path):
    result = _fit(world, tmp_path, fold_distance_m=1000.0, report_path=str(tmp_path / "cv.json"))
    xy = np.array([(c.x, c.y) for c in _clusters(world)])
    distance = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    neighbours = np.argwhere(distance < 1000.0)
    assert len(neighbours) > 2 * len(xy)  # the generated boxes do overlap
    assert all(result.fold[i] == result.fold[j] for i, j in neighbours)
    folds = json.loads((tmp_path / "cv.json").read_text())["folds"]
    assert folds["distance_m"] == 1000.0
    assert folds["sizes"] == np.bincount(result.fold, minlength=5).tolist() and sum(folds["sizes"]) == 40
    assert folds["groups"] == result.report.clusters.groups >= 5
    assert folds["largest_group"] == max(folds["sizes"])  # here the largest group fills a fold alone
    # Which clusters share a fold: whole groups of neighbours (found here, apart from the engine).
    groups = neighbour_groups(xy, 1000.0)
    assert len(groups) == folds["groups"]
    assert_folds_keep_groups_whole(result.fold, groups)
    assert max(groups, key=len) in fold_members(result.fold)


def test_the_fold_distance_defaults_to_the_box_size(world, tmp_path):
    result = _fit(world, tmp_path, box_size_m=750.0)
    assert result.report.folds.distance_m == 750.0
    assert "closer than 750 m" in result.report.cv.protocol
    with pytest.raises(PovertyMapperError, match=r"form only 2 groups of neighbours closer than 1500 m"):
        _fit(world, tmp_path)  # 1.5 km boxes: the 40 generated clusters chain into two groups


def test_the_baseline_uses_the_same_folds_and_gives_its_predictions(world, tmp_path):
    result = _fit(world, tmp_path, fold_distance_m=750.0, nightlights_path=str(world.lights_path))
    baseline = result.report.nightlights_baseline
    assert [f.n for f in baseline.folds] == [f.n for f in result.report.cv.folds]
    lights = result.baseline_predicted
    assert lights.shape == result.predicted.shape and np.all(np.isfinite(lights))
    assert baseline.pooled.r2 == round(squared_pearson(result.observed, lights), 4)
    assert baseline.pooled.R2 == round(coefficient_of_determination(result.observed, lights), 4)
    assert "predicted" not in baseline.to_json()  # the report holds scores, not per-cluster values


def _lights_like(world, path, values):
    """A copy of the generated night-lights raster's grid holding ``values`` (or, for a
    1 x 1 array, one pixel over the whole extent)."""
    with rasterio.open(world.lights_path) as src:
        profile, bounds = src.profile, src.bounds
    values = np.asarray(values, np.float32)
    if values.shape == (1, 1):
        profile.update(width=1, height=1, transform=rasterio.transform.from_bounds(*bounds, 1, 1))
    with rasterio.open(path, "w", **{**profile, "nodata": None}) as dst:
        dst.write(np.broadcast_to(values, (profile["height"], profile["width"])), 1)
    return str(path)


@pytest.mark.parametrize("kind", ["all zero", "one pixel"])
def test_lights_without_variation_give_no_baseline_score_but_say_why(world, tmp_path, kind):
    """All-zero lights scored r² 0.649 as 'Nightlights alone', above the image model: each
    fold was predicted by the other folds' mean, which runs against the outcome."""
    with rasterio.open(world.lights_path) as src:
        shape = (1, 1) if kind == "one pixel" else (src.height, src.width)
    lights = _lights_like(world, tmp_path / "flat_lights.tif", np.full(shape, 0.0 if kind == "all zero" else 7.5))
    result = _fit(world, tmp_path, fold_distance_m=750.0, nightlights_path=lights)
    assert result.report.nightlights_baseline is None
    assert any("do not vary" in n and "no nightlights baseline" in n for n in result.notes)


def test_predictions_that_run_against_the_outcome_score_a_negative_r2(world):
    """A constant feature: each fold is predicted by the other folds' mean, an anti-correlation
    that squaring alone turned into a good-looking r²."""
    y = np.array([o for _, _, o, _ in world.clusters])
    folds = np.arange(y.size) % 5
    pred, _, per_fold = nested_cv(np.ones((y.size, 1)), y, folds, 5, 0, search=CLUSTER_PENALTY, folds=folds)
    r = np.corrcoef(y, pred)[0, 1]
    assert r < 0
    assert squared_pearson(y, pred) == pytest.approx(-r * r)


def test_every_fold_reports_its_penalty_and_whether_it_lay_at_an_end(world, tmp_path):
    result = _fit(world, tmp_path, fold_distance_m=750.0)
    for fold in result.report.cv.folds:
        assert {"alpha", "alpha_edge", "alpha_range", "alpha_at_limit", "n", "r2", "R2"} <= set(fold.to_json())
        assert fold.alpha_range[0] <= fold.alpha <= fold.alpha_range[1]


def test_a_penalty_at_the_end_of_its_grid_is_searched_further_and_noted(world, tmp_path, monkeypatch):
    """A grid of two tiny penalties: the best lies at its upper end in every fold; the
    grid grows a decade at a time, and the report and notes say so."""
    short = PenaltySearch((1e-3, 1e-2), limits=(1e-6, 1e9), scaling=CLUSTER_PENALTY.scaling)
    monkeypatch.setattr(clusters_module, "CLUSTER_PENALTY", short)
    result = _fit(world, tmp_path, fold_distance_m=750.0)
    folds = result.report.cv.folds
    assert all(f.alpha_edge == "upper" and f.alpha_range[1] > 1e-2 for f in folds)
    assert all(f.alpha > 1e-2 or f.alpha_at_limit for f in folds)
    notes = [n for n in result.notes if n.startswith("Fold ") and "upper end of the grid" in n]
    assert len(notes) == 5 and notes[0].startswith("Fold 0: the best penalty lay at the upper end")


def test_the_nightlights_baseline_searches_past_its_grid_as_the_image_model_does_and_says_so(
        world, tmp_path, monkeypatch):
    """The baseline's penalty is chosen as the image model's: on a grid of two penalties its
    best lies at an end in every fold, the grid grows past it, and each fold says so in the
    notes the front ends print, not only in the report's JSON."""
    short = PenaltySearch((1e-3, 1e-2), limits=(1e-6, 1e9), scaling=CLUSTER_PENALTY.scaling)
    monkeypatch.setattr(clusters_module, "CLUSTER_PENALTY", short)
    result = _fit(world, tmp_path, fold_distance_m=750.0, nightlights_path=str(world.lights_path),
                  report_path=str(tmp_path / "cv.json"))
    folds = result.report.nightlights_baseline.folds
    assert all(f.alpha_edge in ("lower", "upper") for f in folds)
    assert all(f.alpha_range[0] < 1e-3 or f.alpha_range[1] > 1e-2 for f in folds)  # searched past the grid
    notes = [n for n in result.notes if n.startswith("Nightlights baseline, fold ")]
    assert len(notes) == len(folds) == 5
    for fold, note in zip(folds, notes):
        assert note.startswith(f"Nightlights baseline, fold {fold.fold}: the best penalty lay at the {fold.alpha_edge} end")
        assert f"alpha {fold.alpha:g} was chosen" in note
        assert ("still at the end of the extended grid" in note) == fold.alpha_at_limit
    assert set(notes) <= set(json.loads((tmp_path / "cv.json").read_text())["notes"])  # the report file's too


def test_baseline_folds_inside_the_grid_add_no_note(world, tmp_path):
    """With the fit's own grid every baseline fold of this world finds its penalty inside it: no note."""
    result = _fit(world, tmp_path, fold_distance_m=750.0, nightlights_path=str(world.lights_path))
    folds = result.report.nightlights_baseline.folds
    assert not any(f.alpha_edge for f in folds) and all(1e-3 < f.alpha < 1e5 for f in folds)
    assert not [n for n in result.notes if "Nightlights baseline" in n]


# --- coverage of each cluster's box ------------------------------------------------------


@pytest.fixture(scope="module")
def half_image(world, tmp_path_factory):
    """The generated image with its western 100 columns declared nodata."""
    path = tmp_path_factory.mktemp("half") / "generated_half_nodata.tif"
    with rasterio.open(world.image_path) as src:
        data, profile = src.read(), src.profile
    data[:, :, :100] = -1.0
    profile.update(nodata=-1.0)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def test_the_coverage_of_each_box_is_reported(world, half_image, tmp_path):
    result = _fit(world, tmp_path, image=half_image, fold_distance_m=500.0, report_path=str(tmp_path / "cv.json"))
    coverage = result.coverage
    col = np.array([(c.x - world.transform.c) / 30.0 for c in _clusters(world)])
    assert np.all(coverage.tiles_in_box == 16)  # 1.5 km box, 480 m tiles: a 4 x 4 grid
    row = np.array([(world.transform.f - c.y) / 30.0 for c in _clusters(world)])
    # The 4 x 4 tiles of 16 px reach about 32 px from the cluster.
    inside = (col > 100 + 34) & (col < 256 - 34) & (row > 34) & (row < 256 - 34)
    assert inside.any() and np.all(coverage.covered_share[inside] == 1.0)
    at_edge = (col > 100 + 34) & ((col > 256 - 30) | (row < 30) | (row > 256 - 30))
    assert at_edge.any() and np.all(coverage.covered_share[at_edge] < 1.0)  # tiles reach outside the image
    straddling = (col > 100 - 25) & (col < 100 + 25)
    assert straddling.any()
    assert np.all(coverage.covered_share[straddling] < 0.9) and np.all(coverage.tiles_used[straddling] < 16)
    report = json.loads((tmp_path / "cv.json").read_text())["coverage"]
    rows = {row["id"]: row for row in report["clusters"]}
    for i, c in enumerate(_clusters(world)):
        if c.id in rows:
            assert rows[c.id]["tiles_used"] == coverage.tiles_used[i]
            assert rows[c.id]["covered_share"] == pytest.approx(coverage.covered_share[i], abs=1e-4)
    assert report["minimum"] == {"tiles": 1, "covered_share": 0.0}
    assert 0 < report["median_covered_share"] <= 1


def test_clusters_under_the_coverage_minimum_are_left_out_and_counted(world, half_image, tmp_path):
    everything = _fit(world, tmp_path, image=half_image, fold_distance_m=500.0)
    cov = everything.coverage
    thin = everything.used & (cov.covered_share < 0.75)
    assert thin.any()
    by_share = _fit(world, tmp_path, image=half_image, fold_distance_m=500.0, min_covered_share=0.75)
    assert by_share.used.tolist() == (everything.used & ~thin).tolist()
    assert f"{int(thin.sum())} clusters under the coverage minimum (1 tiles, 75% of the box valid) left out." in by_share.notes
    few = everything.used & (cov.tiles_used < 12)
    by_tiles = _fit(world, tmp_path, image=half_image, fold_distance_m=500.0, min_tiles=12)
    assert by_tiles.used.tolist() == (everything.used & ~few).tolist()


def test_tiles_with_too_few_valid_pixels_never_reach_the_extractor(world, half_image):
    """The extractor sees only tiles with at least min_valid_fraction valid pixels; the
    others count for the coverage only."""
    seen = []

    class Recording:
        kind, n_features = "recording", 1

        def extract(self, pixels, valid):
            seen.extend(valid.flatten(1).float().mean(1).tolist())
            return torch.ones(len(pixels), 1)

    config = ClusterFitConfig(str(half_image), _clusters(world), "unused.povmodel", batch_size=8)
    windows = [(0, PixelWindow(c, 100, 16, 16)) for c in range(80, 120, 4)]  # from all nodata to all valid
    features, used, valid_pixels = cluster_features(
        Recording(), ImageTiles(str(half_image), (1, 2, 3), 16, REFLECTANCE), windows, 40, torch.device("cpu"), config,
        PhasedProgress({"f": 1.0})["f"],
    )
    assert seen and min(seen) >= 0.5
    assert used[0] == len(seen) < len(windows)
    expected = sum(min(16, max(0, c + 16 - 100)) * 16 for c in range(80, 120, 4))
    assert valid_pixels[0] == expected


# --- features that vary in almost no cluster ------------------------------------------


def _rare_bin_clusters(n=150, seed=0):
    """Generated histogram-like features: 40 ordinary bins (the outcome is linear in ten
    of them) and 10 rare bins, empty except for a few stray pixels in six clusters and
    many bright pixels in two 'desert' clusters (the first two)."""
    rng = np.random.default_rng(seed)
    common = rng.dirichlet(np.full(40, 2.0), size=n)
    y = 30 * (common[:, :5].sum(1) - common[:, 5:10].sum(1)) + rng.normal(0, 0.3, n)
    rare = np.zeros((n, 10))
    rare[rng.choice(np.arange(2, n), 6, replace=False)] = rng.uniform(0, 3e-5, (6, 10))
    rare[:2] = rng.uniform(0.02, 0.05, (2, 10))
    return np.column_stack([0.9 * common, rare]), y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rare_bins_no_longer_flatten_the_predictions(seed):
    x, y = _rare_bin_clusters(seed=seed)
    groups = np.arange(len(y))
    plain_pred, _, plain = nested_cv(x, y, groups, 5, search=PenaltySearch())
    # Plain standardization: the desert clusters' bins reach thousands of standard
    # deviations, the inner cross-validation flees to the largest penalty, and the
    # predictions are flat.
    assert sum(f.alpha_edge == "upper" for f in plain) >= 3
    assert coefficient_of_determination(y, plain_pred) < 0.3
    pred, _, chosen = nested_cv(x, y, groups, 5, search=CLUSTER_PENALTY)
    assert not any(f.alpha_edge == "upper" for f in chosen)
    assert coefficient_of_determination(y, pred) > 0.9 and min(f.R2 for f in chosen) > 0.85


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rare_bins_of_square_rooted_frequencies_are_left_out(seed):
    """Square roots lift the stray pixels' bins well above zero; those bins still vary in
    too few clusters to be kept, and no fold's predictions run wild."""
    x, y = _rare_bin_clusters(seed=seed)
    pred, _, chosen = nested_cv(np.sqrt(x), y, np.arange(len(y)), 5, search=CLUSTER_PENALTY)
    assert coefficient_of_determination(y, pred) > 0.8 and min(f.R2 for f in chosen) > 0.6


@pytest.mark.parametrize("bad", [{"fold_distance_m": -1.0}, {"min_tiles": 0}, {"min_covered_share": 1.5}])
def test_impossible_fold_and_coverage_settings_are_refused(world, tmp_path, bad):
    with pytest.raises(PovertyMapperError, match="fold distance must be 0 m or more|coverage minimum must be"):
        _fit(world, tmp_path, **bad)
    assert not (tmp_path / "m.povmodel").exists()


def test_too_few_clusters_left_by_the_log_outcome_says_which_were_left_out(world, tmp_path):
    """Clusters whose outcome has no logarithm were dropped without a word in the error that followed."""
    clusters = tuple(Cluster(x, y, -abs(o) if i >= 8 else abs(o) + 0.1, w, str(i))
                     for i, (x, y, o, w) in enumerate(world.clusters))
    with pytest.raises(PovertyMapperError, match=r"Only 8 clusters have imagery.*Left out: 32 clusters have an "
                                                 r"outcome of 0 or less, which has no logarithm"):
        _fit(world, tmp_path, clusters=clusters, log_outcome=True, fold_distance_m=750.0)
    assert not (tmp_path / "m.povmodel").exists()


# --- the extractor: a kind, or a model file -------------------------------------------


def test_an_unknown_extractor_kind_is_refused_with_the_choices(world, tmp_path):
    with pytest.raises(PovertyMapperError, match=r"must be 'histogram' or 'random', not 'histogramm'"):
        _fit(world, tmp_path, extractor_kind="histogramm")
    assert not (tmp_path / "m.povmodel").exists()


def test_one_extractor_value_is_a_kind_or_else_a_model_file():
    assert extractor_fields("random") == {"extractor_kind": "random"}
    assert extractor_fields("proxy.povmodel") == {"extractor_path": "proxy.povmodel"}


# --- the survey as the front ends read it ---------------------------------------------

def test_a_cluster_takes_the_values_a_front_end_read_as_they_are():
    """Text, numbers and None (a missing value), as a CSV, a vector file or a QGIS layer give them."""
    cluster = Cluster("500100.5", np.float32(1.5), " 2.25 ", None, 7, None)
    assert (cluster.x, cluster.y, cluster.outcome, cluster.id, cluster.group) == (500100.5, 1.5, 2.25, "7", "")
    assert math.isnan(cluster.weight)
    assert all(type(v) is float for v in (cluster.x, cluster.y, cluster.outcome, cluster.weight))
    assert math.isnan(Cluster(1.0, 2.0, "n/a").outcome) and Cluster(1.0, 2.0, 3.0).weight == 1.0
    assert Cluster(1.0, 2.0, 3.0, group=4).group == "4" and Cluster(1.0, 2.0, 3.0, group="").group == ""


def test_the_same_survey_as_text_or_as_numbers_gives_the_same_model(world, tmp_path):
    as_text = tuple(Cluster(f"{x!r}", str(y), f"{o!r}", f"{w:g}", i, "a" if i % 2 else None)
                    for i, (x, y, o, w) in enumerate(world.clusters))
    as_numbers = tuple(Cluster(x, y, o, w, str(i), "a" if i % 2 else "")
                       for i, (x, y, o, w) in enumerate(world.clusters))
    for name, clusters in (("text", as_text), ("numbers", as_numbers)):
        (tmp_path / name).mkdir()
        _fit(world, tmp_path / name, clusters=clusters, fold_distance_m=750.0, use_weights=True)
    assert (tmp_path / "text" / "m.povmodel").read_bytes() == (tmp_path / "numbers" / "m.povmodel").read_bytes()


def test_a_survey_field_the_source_lacks_is_named_with_those_it_has():
    check_survey_fields("'s.csv'", ["wealth", "hh"], "wealth", None, "hh")
    with pytest.raises(PovertyMapperError, match=r"^'s.csv' has no field 'region'; choose one of: wealth, hh\.$"):
        check_survey_fields("'s.csv'", ["wealth", "hh"], "wealth", "hh", "region")


# --- the report: typed, written once --------------------------------------------------


def test_the_report_file_is_the_typed_report_and_the_model_keeps_its_scores(world, tmp_path):
    result = _fit(world, tmp_path, fold_distance_m=750.0, nightlights_path=str(world.lights_path),
                  report_path=str(tmp_path / "cv.json"))
    report = result.report
    assert json.loads((tmp_path / "cv.json").read_text()) == json.loads(json.dumps(report.to_json()))
    assert report.cv.pooled.n == result.used.sum() and [f.fold for f in report.cv.folds] == list(range(5))
    scores = load_model(tmp_path / "m.povmodel").scores
    assert scores.pooled == report.cv.pooled
    assert scores.folds == {str(f.fold): fold_score(f) for f in report.cv.folds}
    assert scores.baselines == {"nightlights": report.nightlights_baseline.pooled}
