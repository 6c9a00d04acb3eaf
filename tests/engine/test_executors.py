"""The executor seam (mapping and the survey fit run on it): another executor plugged
into predict_poverty_map gives the map of the local one; the writer takes cells in any
order and refuses a map with cells missing; the run plan decides batch size, threads and
bf16 in one place."""
from __future__ import annotations

from contextlib import closing

import numpy as np
import pytest
import rasterio
import torch

from poverty_mapper.core.errors import Canceled
from poverty_mapper.core.extractors.cnn import CnnExtractor, ProxyCNN
from poverty_mapper.core.extractors.histogram import HistogramExtractor
from poverty_mapper.core.imagery.executors import LocalExecutor
from poverty_mapper.core.inference.plan import plan_run
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.inference.writer import NODATA
from poverty_mapper.core.models.model_file import PovertyModel
from helpers import extractor_of, raster, scene_model  # noqa: F401 (raster: a fixture)


@pytest.fixture(scope="module", params=["histogram", "cnn"])
def model(request) -> PovertyModel:
    means, stds = np.array([0.1, 0.1, 0.1]), np.array([0.05, 0.05, 0.05])
    if request.param == "histogram":
        return scene_model(HistogramExtractor(means, stds))
    torch.manual_seed(0)
    network = ProxyCNN(3, 3, width=8, feature_dim=16)
    network.train()
    with torch.no_grad():
        network(torch.randn(16, 3, 16, 16) * 0.05 + 0.1)
    network.eval()
    return scene_model(CnnExtractor(network, means, stds))


class SequentialExecutor:
    """A second executor: no reading ahead, one batch per reader (as a Dask worker thread
    runs them), the last batch first."""

    def results(self, work, batches, is_canceled):
        for batch in list(batches)[::-1]:
            if is_canceled():
                raise Canceled()
            with closing(work.open_reader(read_ahead=False)) as reader, closing(work.run(reader, [batch])) as results:
                yield from results


def _map(raster, out, model, executor=None, **options):
    progress: list[float] = []
    request = PredictRequest(str(raster), str(out), model, device="cpu", mixed_precision=False, **options)
    result = predict_poverty_map(request, progress=progress.append, executor=executor)
    with rasterio.open(out) as ds:
        return result, ds.read(1), ds.profile, ds.tags(), progress


@pytest.mark.parametrize("batch_size", [0, 5])
def test_another_executor_gives_the_map_of_the_local_one(raster, tmp_path, model, batch_size):
    mask = ({"type": "Polygon", "coordinates": [[(480_000.0, 7_200_000.0), (482_160.0, 7_200_000.0),
                                                 (482_160.0, 7_198_320.0), (480_000.0, 7_200_000.0)]]},)
    local, local_values, local_profile, local_tags, _ = _map(
        raster, tmp_path / "local.tif", model, LocalExecutor(), batch_size=batch_size, mask_geometries=mask)
    other, other_values, other_profile, other_tags, progress = _map(
        raster, tmp_path / "sequential.tif", model, SequentialExecutor(), batch_size=batch_size, mask_geometries=mask)
    # Nodata where a tile is too empty or outside the mask, and nowhere else, in both.
    np.testing.assert_array_equal(other_values == NODATA, local_values == NODATA)
    assert 0 < (local_values == NODATA).sum() < local_values.size
    # Batches of other sizes may sum in another order (the CNN's kernels also differ by
    # batch size): equal up to float32 rounding, relative to each value and, for values
    # near 0, to the map's largest (the rounding of the features, not of the result).
    scale = np.abs(local_values[local_values != NODATA]).max()
    np.testing.assert_allclose(other_values, local_values, rtol=1e-5, atol=1e-5 * scale)
    assert other_profile == local_profile and other_tags == local_tags
    assert (other.n_cells, other.n_estimated) == (local.n_cells, local.n_estimated)
    assert other.value_mean == pytest.approx(local.value_mean, rel=1e-5)
    assert progress == sorted(progress) and progress[-1] == 1.0


def test_the_default_executor_is_the_local_one(raster, tmp_path, model):
    _, default_values, *_ = _map(raster, tmp_path / "default.tif", model, batch_size=4)
    _, local_values, *_ = _map(raster, tmp_path / "local.tif", model, LocalExecutor(), batch_size=4)
    np.testing.assert_array_equal(default_values, local_values)  # same batches, same machine


def test_an_executor_that_leaves_cells_out_fails_and_writes_nothing(raster, tmp_path, model):
    class DroppingExecutor(SequentialExecutor):
        def results(self, work, batches, is_canceled):
            batches = list(batches)
            batches[-1] = batches[-1][:-1]  # the last cell is never estimated
            return super().results(work, batches, is_canceled)

    with pytest.raises(RuntimeError, match="1 cells of the map were never estimated"):
        _map(raster, tmp_path / "map.tif", model, DroppingExecutor())
    assert list(tmp_path.glob("*.tif")) == [raster]


def test_a_canceled_executor_leaves_no_output(raster, tmp_path, model):
    answers = iter([False] * 3)
    with pytest.raises(Canceled):
        predict_poverty_map(PredictRequest(str(raster), str(tmp_path / "map.tif"), model, device="cpu"),
                            is_canceled=lambda: next(answers, True), executor=SequentialExecutor())
    assert list(tmp_path.glob("*.tif")) == [raster]


def test_the_survey_fit_runs_on_the_same_seam_and_another_executor_gives_its_fit(small_world, tmp_path, monkeypatch):
    from poverty_mapper.core.models.model_file import load_model
    from poverty_mapper.core.training import cluster_features
    from poverty_mapper.core.training.clusters import Cluster, ClusterFitConfig, fit_clusters

    clusters = tuple(Cluster(x, y, o, w, str(i)) for i, (x, y, o, w) in enumerate(small_world.clusters))

    def fit(name):
        return fit_clusters(ClusterFitConfig(str(small_world.image_path), clusters, str(tmp_path / f"{name}.povmodel"),
                                             box_size_m=1500.0, tile_size_m=480.0, fold_distance_m=750.0, device="cpu",
                                             batch_size=8))

    local = fit("local")
    asked = []
    monkeypatch.setattr(cluster_features, "executor_for", lambda scheduler: asked.append(scheduler) or SequentialExecutor())
    other = fit("sequential")
    assert asked == [None]
    np.testing.assert_array_equal(other.used, local.used)
    np.testing.assert_array_equal(other.coverage.tiles_used, local.coverage.tiles_used)
    # The chunks came back last first: each cluster's features summed in another order.
    np.testing.assert_allclose(other.predicted, local.predicted, rtol=1e-6, atol=1e-9)
    assert load_model(tmp_path / "sequential.povmodel").card() == load_model(tmp_path / "local.povmodel").card()


@pytest.mark.parametrize("mixed, fast, kind, expected", [
    (True, True, "small cnn", True), (True, True, "random", False), (True, True, "histogram", False),
    (True, False, "small cnn", False), (False, True, "small cnn", False),
])
def test_the_plan_takes_bf16_only_where_it_pays(monkeypatch, mixed, fast, kind, expected):
    monkeypatch.setattr("poverty_mapper.core.inference.plan.fast_bf16", lambda device: fast)
    extractor = extractor_of(kind)
    plan = plan_run(torch.device("cpu"), extractor, mixed_precision=mixed)
    assert plan.bf16 is expected
    assert plan.batch_size == (8 if kind == "small cnn" else 16)  # automatic
    assert plan_run(torch.device("cpu"), extractor, batch_size=3).batch_size == 3
