"""Mapping on a Dask cluster gives the map of the local pipeline: on a LocalCluster of 2
worker processes, also when a worker dies in the middle of a batch (its batches are
redone elsewhere; every cell reaches the writer once); canceling stops the cluster's work;
a scheduler that cannot be reached, or imagery the workers cannot open, is refused with
what to do."""
from __future__ import annotations

import copy
import dataclasses
import os
import sys
import time

import numpy as np
import pytest
import rasterio
import torch
from distributed import Client, LocalCluster

from poverty_mapper.core.errors import Canceled, PovertyMapperError
from poverty_mapper.core.extractors.cnn import CnnExtractor
from poverty_mapper.core.extractors.histogram import HistogramExtractor
from poverty_mapper.core.imagery.dask_run import DaskExecutor
from poverty_mapper.core.imagery.executors import LocalExecutor
from poverty_mapper.core.imagery.tile_work import TileWork
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.inference.writer import NODATA
from helpers import CNN_SCENE_SIZE, cnn_model, cnn_scene, scene_model, raster  # noqa: F401 (raster: fixtures)


class DyingHistogram(HistogramExtractor):
    """A histogram extractor whose worker process dies in the middle of a batch, once in
    the whole run: the first process to run its ``after``-th batch and to create
    ``marker`` (an exclusive create, so only one can) exits at once, its batch unfinished."""

    def __init__(self, means, stds, marker: str, after: int):
        super().__init__(means, stds)
        self.marker, self.after = marker, after

    def extract_dn(self, dn, valid, radiometry):
        calls = DyingHistogram.calls = getattr(DyingHistogram, "calls", 0) + 1
        if calls >= self.after:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os._exit(1)
        return super().extract_dn(dn, valid, radiometry)


class Counting:
    """An executor that counts how often each cell's result comes back."""

    def __init__(self, executor):
        self.executor, self.counts = executor, {}

    def results(self, work, batches, is_canceled):
        for cells, result in self.executor.results(work, batches, is_canceled):
            for cell in cells:
                self.counts[cell] = self.counts.get(cell, 0) + 1
            yield cells, result


@pytest.fixture(scope="module")
def client(package_path):
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(2, timeout=120)
        # The workers run this checkout's code (conftest's package_path).
        assert set(client.run(lambda: __import__("poverty_mapper").__path__[0]).values()) == {str(package_path / "poverty_mapper")}
        yield client


MEANS, STDS = np.array([0.1, 0.1, 0.1]), np.array([0.05, 0.05, 0.05])


def _map(raster_path, out, model, executor=None, **options):
    progress: list[float] = []
    request = PredictRequest(str(raster_path), str(out), model, device="cpu", mixed_precision=False, **options)
    result = predict_poverty_map(request, progress=progress.append, executor=executor)
    with rasterio.open(out) as ds:
        return result, ds.read(), progress


def _assert_same_map(values, local_values):
    np.testing.assert_array_equal(values == NODATA, local_values == NODATA)
    assert 0 < (local_values[0] == NODATA).sum() < local_values[0].size
    scale = np.abs(local_values[local_values != NODATA]).max()
    np.testing.assert_allclose(values, local_values, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("extractor", ["histogram", "cnn"])
def test_a_local_cluster_gives_the_map_of_the_local_pipeline(raster, tmp_path, client, extractor):
    if extractor == "histogram":
        model = scene_model(HistogramExtractor(MEANS, STDS))
    else:
        from poverty_mapper.core.extractors.cnn import CnnExtractor, ProxyCNN

        torch.manual_seed(0)
        model = scene_model(CnnExtractor(ProxyCNN(3, 3, width=8, feature_dim=16).eval(), MEANS, STDS))
    local, local_values, _ = _map(raster, tmp_path / "local.tif", model, LocalExecutor(), batch_size=4)
    dask, dask_values, progress = _map(raster, tmp_path / "dask.tif", model, DaskExecutor(client), batch_size=4)
    _assert_same_map(dask_values, local_values)
    assert (dask.n_cells, dask.n_estimated) == (local.n_cells, local.n_estimated)
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dask.tif", "generated_scene.tif", "local.tif"]  # no temporary left


def test_a_worker_killed_mid_run_leaves_no_hole_and_no_cell_twice(raster, tmp_path, client):
    marker = tmp_path / "a worker died"
    local_model = scene_model(HistogramExtractor(MEANS, STDS))
    dying_model = scene_model(DyingHistogram(MEANS, STDS, str(marker), after=3))
    local, dask = Counting(LocalExecutor()), Counting(DaskExecutor(client))
    _, local_values, _ = _map(raster, tmp_path / "local.tif", local_model, local, batch_size=2)
    pids_before = set(client.run(os.getpid).values())
    result, dask_values, progress = _map(raster, tmp_path / "dask.tif", dying_model, dask, batch_size=2)
    assert marker.exists()  # a worker process did die in a batch ...
    client.wait_for_workers(2, timeout=120)
    assert set(client.run(os.getpid).values()) != pids_before  # ... and its nanny started another
    _assert_same_map(dask_values, local_values)
    assert result.n_estimated > 0
    assert dask.counts.keys() == local.counts.keys() and set(dask.counts.values()) == {1}  # each cell once
    assert progress[-1] == 1.0


def test_the_job_goes_to_each_worker_once_and_is_removed_after_the_run(raster, tmp_path, client):
    model = scene_model(HistogramExtractor(MEANS, STDS))
    seen: list[dict] = []

    def progress(_fraction):
        if not seen:
            seen.append(client.run(lambda dask_worker: sorted(n for n in dask_worker.plugins if "poverty-mapper-job" in n)))

    request = PredictRequest(str(raster), str(tmp_path / "map.tif"), model, device="cpu", batch_size=4)
    predict_poverty_map(request, progress=progress, executor=DaskExecutor(client))
    during = seen[0]
    assert len(during) == 2 and all(len(names) == 1 for names in during.values())
    assert len({names[0] for names in during.values()}) == 1  # the same job on both workers
    after = client.run(lambda dask_worker: [n for n in dask_worker.plugins if "poverty-mapper-job" in n])
    assert all(names == [] for names in after.values())


def test_cancel_stops_the_work_on_the_cluster_and_writes_nothing(raster, tmp_path, client):
    """Canceled as the first batch's estimates arrive: no further batch reaches the map,
    and the batches still queued or running on the cluster are dropped."""
    import threading

    model = scene_model(HistogramExtractor(MEANS, STDS))
    done: list[float] = []
    first_batch = threading.Event()

    def progress(fraction: float) -> None:
        done.append(fraction)
        first_batch.set()

    request = PredictRequest(str(raster), str(tmp_path / "map.tif"), model, device="cpu", batch_size=1)
    with pytest.raises(Canceled):
        predict_poverty_map(request, progress=progress, is_canceled=first_batch.is_set, executor=DaskExecutor(client))
    assert len(done) == 1 and done[0] < 0.1  # one cell of the job's cells, then nothing more
    assert list(tmp_path.iterdir()) == [tmp_path / "generated_scene.tif"]

    async def batches_left(dask_scheduler):
        """Waits on the scheduler until it holds no batch of a run (it drops canceled ones as
        their cancel message arrives), then names those it holds (none; some only if they
        were never dropped, after a bound far beyond any machine's pace)."""
        import asyncio

        def left():
            return [str(k) for k in dask_scheduler.tasks if "poverty-mapper-batch" in str(k)]

        async def drained():
            while left():
                await asyncio.sleep(0.05)

        try:
            await asyncio.wait_for(drained(), timeout=300)
        except asyncio.TimeoutError:
            pass
        return left()

    assert client.run_on_scheduler(batches_left) == []


def test_imagery_the_workers_cannot_open_is_refused(raster, tmp_path, client):
    model = scene_model(HistogramExtractor(MEANS, STDS))
    request = PredictRequest(str(raster), str(tmp_path / "map.tif"), model, device="cpu")
    import poverty_mapper.core.imagery.dask_run as dask_run

    class Elsewhere(DaskExecutor):
        def results(self, work, batches, is_canceled):
            moved = work.at_paths(lambda path: "/vsicurl/http://127.0.0.1:9/scene.tif")
            return super().results(moved, batches, is_canceled)

    with pytest.raises(PovertyMapperError, match=r"2 of the cluster's Dask workers cannot open the imagery "
                                                 r"'/vsicurl/http://127.0.0.1:9/scene.tif'.*cloud-optimised GeoTIFF"):
        predict_poverty_map(request, executor=Elsewhere(client))
    assert dask_run.worker_path("scene.tif") == os.path.abspath("scene.tif")
    assert dask_run.worker_path("/vsis3/bucket/scene.tif") == "/vsis3/bucket/scene.tif"


def test_an_unreachable_scheduler_is_refused_with_what_to_do(raster, tmp_path):
    model = scene_model(HistogramExtractor(MEANS, STDS))
    request = PredictRequest(str(raster), str(tmp_path / "map.tif"), model, device="cpu")
    with pytest.raises(PovertyMapperError, match=r"Cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'.*dask scheduler"):
        predict_poverty_map(request, executor=DaskExecutor("tcp://127.0.0.1:9", connect_timeout_s=2))
    assert list(tmp_path.iterdir()) == [tmp_path / "generated_scene.tif"]


@pytest.mark.parametrize("extractor", ["histogram", "random"])
def test_a_fit_on_the_cluster_gives_the_local_fit(small_world, tmp_path, client, extractor):
    from poverty_mapper.core.models.model_file import load_model
    from poverty_mapper.core.training.clusters import Cluster, ClusterFitConfig, fit_clusters

    clusters = tuple(Cluster(x, y, o, w, str(i)) for i, (x, y, o, w) in enumerate(small_world.clusters))

    def fit(name, **options):
        progress: list[float] = []
        config = ClusterFitConfig(str(small_world.image_path), clusters, str(tmp_path / f"{name}.povmodel"),
                                  extractor_kind=extractor, box_size_m=1500.0, tile_size_m=480.0, fold_distance_m=750.0, device="cpu",
                                  batch_size=8, n_random_filters=16, **options)
        return fit_clusters(config, progress.append), progress

    local, _ = fit("local")
    dask, progress = fit("dask", scheduler=client.scheduler.address)  # by address, as the command line gives it
    np.testing.assert_array_equal(dask.used, local.used)
    np.testing.assert_array_equal(dask.coverage.tiles_used, local.coverage.tiles_used)
    np.testing.assert_allclose(dask.coverage.covered_share, local.coverage.covered_share, rtol=1e-12)
    # Chunks come back in another order: features summed in another order, equal to rounding.
    np.testing.assert_allclose(dask.predicted, local.predicted, rtol=1e-6, atol=1e-9)
    assert dask.report.cv.pooled.r2 == pytest.approx(local.report.cv.pooled.r2, rel=1e-6)
    assert load_model(tmp_path / "dask.povmodel").card() == load_model(tmp_path / "local.povmodel").card()
    assert progress == sorted(progress) and progress[-1] == 1.0


def test_the_command_line_maps_on_the_cluster_by_its_address(raster, tmp_path, client, capsys):
    from poverty_mapper import cli
    from poverty_mapper.core.models.model_file import save_model

    model = scene_model(HistogramExtractor(MEANS, STDS))
    save_model(model, tmp_path / "m.povmodel")
    common = ["--model", str(tmp_path / "m.povmodel"), "--device", "cpu", "--batch-size", "4"]
    assert cli.main(["predict", str(raster), str(tmp_path / "local.tif"), *common]) == 0
    assert cli.main(["predict", str(raster), str(tmp_path / "dask.tif"), *common,
                     "--scheduler", client.scheduler.address]) == 0
    with rasterio.open(tmp_path / "local.tif") as local, rasterio.open(tmp_path / "dask.tif") as dask:
        _assert_same_map(dask.read(), local.read())
    assert "predict: 100 %" in capsys.readouterr().err


def test_without_distributed_a_cluster_run_says_what_to_install(raster, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as where it is not installed
    model = scene_model(HistogramExtractor(MEANS, STDS))
    request = PredictRequest(str(raster), str(tmp_path / "map.tif"), model, device="cpu")
    with pytest.raises(PovertyMapperError, match=r"needs the Python packages 'distributed'.*pip install distributed"):
        predict_poverty_map(request, executor=DaskExecutor("tcp://127.0.0.1:9"))
    assert list(tmp_path.iterdir()) == [tmp_path / "generated_scene.tif"]


def test_a_model_that_reads_night_lights_maps_on_the_cluster_as_locally(tmp_path, client):
    """The bundled night-lights model: the workers read the lights layer beside the imagery."""
    from generated_world import make_world

    from poverty_mapper.core.models.defaults import default_model_path
    from poverty_mapper.core.models.model_file import load_model

    world = make_world(tmp_path / "world", size=448, n_settlements=30, n_clusters=5)
    model = load_model(default_model_path(with_nightlights=True))
    maps = []
    for name, executor in (("local", LocalExecutor()), ("dask", DaskExecutor(client))):
        request = PredictRequest(str(world.image_path), str(tmp_path / f"{name}.tif"), model, device="cpu",
                                 nightlights_path=str(world.lights_path), stride_m=3360.0)
        predict_poverty_map(request, executor=executor)
        with rasterio.open(tmp_path / f"{name}.tif") as ds:
            maps.append(ds.read())
    assert (maps[0][0] != NODATA).sum() >= 4
    np.testing.assert_allclose(maps[1], maps[0], rtol=1e-5, atol=1e-6)


class _SlowReader:
    """A worker thread's reader whose read takes a while and fails if closed meanwhile."""

    def __init__(self):
        self.closed = False
        self.reading = __import__("threading").Event()

    def read(self) -> str:
        self.reading.set()
        time.sleep(0.5)
        return "closed under the read" if self.closed else "read whole"

    def close(self) -> None:
        self.closed = True


class _SlowWork(TileWork):
    """A work whose every batch is one slow read."""

    def open_reader(self, read_ahead):
        return _SlowReader()

    def run(self, reader, batches):
        for batch in batches:
            yield batch, reader.read()


def test_the_worker_teardown_waits_for_a_running_batch_before_closing_its_imagery(monkeypatch):
    """On leaving, the run cancels its batches and removes the payload at once; a batch a
    worker thread was still running then read a closed dataset (a worker died of signal
    11 after 'Dataset is closed', about once in ten cancels)."""
    import threading

    import distributed

    from poverty_mapper.core.imagery.dask_run import _JobPlugin, _run_task

    plugin = _JobPlugin("job", _SlowWork())
    monkeypatch.setattr(distributed, "get_worker", lambda: type("Worker", (), {"plugins": {"job": plugin}})())
    outcome = []
    batch = threading.Thread(target=lambda: outcome.append(_run_task("job", 0)))
    batch.start()
    while not plugin._readers or not plugin._readers[0].reading.is_set():
        time.sleep(0.01)
    plugin.teardown(worker=None)  # as unregistering the plugin does, with the batch still reading
    batch.join()
    assert outcome == ["read whole"]
    assert plugin._readers == []  # closed after the batch


class SlowHistogram(HistogramExtractor):
    """A histogram extractor that takes a while per batch, so that a run can be cut short."""

    def extract_dn(self, dn, valid, radiometry):
        time.sleep(0.2)
        return super().extract_dn(dn, valid, radiometry)


def test_a_scheduler_killed_mid_run_is_a_message_and_leaves_no_file(raster, tmp_path, package_path):
    """A real fault: the scheduler process killed (SIGKILL) while batches run. It ended in a
    traceback from the exit path unregistering the worker plugin."""
    import signal
    import socket
    import subprocess
    import threading
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    bin_dir = Path(sys.executable).parent
    here = Path(__file__).resolve().parent  # the workers unpickle this module's extractor, which imports tests/helpers
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_path), str(here), str(here.parent)])}
    scheduler = subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--no-dashboard"], env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    worker = subprocess.Popen([str(bin_dir / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard"],
                              env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    killed = threading.Event()

    def progress(fraction):
        if fraction > 0 and not killed.is_set():
            killed.set()
            scheduler.send_signal(signal.SIGKILL)

    try:
        model = scene_model(SlowHistogram(MEANS, STDS))
        request = PredictRequest(str(raster), str(tmp_path / "map.tif"), model, device="cpu", batch_size=2)
        started = time.monotonic()
        with pytest.raises(PovertyMapperError, match=r"Dask cluster stopped answering during the run|Cannot reach"):
            predict_poverty_map(request, progress=progress, executor=DaskExecutor(address, connect_timeout_s=60))
        assert killed.is_set() and time.monotonic() - started < 240
    finally:
        for process in (worker, scheduler):
            process.kill()
            process.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generated_scene.tif"]


def test_the_workers_screen_water_and_cloud_and_the_map_is_the_local_one(tmp_path, client, monkeypatch):
    """The client reads no imagery of the region for the screening: it screens at most
    the scene statistics' few tiles; the workers screen every cell of their batches."""
    from poverty_mapper.core.imagery.surface import SurfaceScreen
    from poverty_mapper.core.models.scene_statistics import SAMPLE_TILES
    from poverty_mapper.core.models.defaults import DEFAULT_MODEL_PATH
    from poverty_mapper.core.models.model_file import load_model
    from helpers import write_screening_scene

    path = write_screening_scene(tmp_path / "scene.tif", alpha=True)
    here = []
    real_codes = SurfaceScreen.codes
    monkeypatch.setattr(SurfaceScreen, "codes", lambda self, ds, cells, tiles=None: here.append(len(cells))
                        or real_codes(self, ds, cells, tiles))
    model = load_model(DEFAULT_MODEL_PATH)
    kwargs = dict(radiometry="eight_bit", band_indexes=(1, 2, 3), stride_m=2240.0, device="cpu")
    dask = predict_poverty_map(PredictRequest(path, str(tmp_path / "dask.tif"), model, **kwargs),
                               executor=DaskExecutor(client))
    on_client = sum(here)
    local = predict_poverty_map(PredictRequest(path, str(tmp_path / "local.tif"), model, **kwargs))
    assert on_client <= SAMPLE_TILES < dask.n_cells <= sum(here) - on_client
    assert (dask.n_water, dask.n_cloud, dask.n_estimated) == (local.n_water, local.n_cloud, local.n_estimated)
    assert dask.n_water > 0 and dask.n_cloud > 0
    with rasterio.open(tmp_path / "dask.tif") as a, rasterio.open(tmp_path / "local.tif") as b:
        assert np.array_equal(a.read(2), b.read(2))
        _assert_same_map(a.read(), b.read())


class ThreadCountingCnn(CnnExtractor):
    """A CNN extractor that notes PyTorch's thread count at each batch, a file per batch in ``folder``."""

    folder = ""

    def extract_dn(self, dn, valid, radiometry):
        note = os.path.join(self.folder, f"{os.getpid()}-{time.monotonic_ns()}")
        with open(note, "w", encoding="utf-8") as f:
            f.write(str(torch.get_num_threads()))
        return super().extract_dn(dn, valid, radiometry)


def test_a_worker_runs_the_network_in_its_own_threads_not_the_clients_plan(tmp_path, client):
    """The client's plan gives a network every core of the client's machine (2 threads on
    2 cores); run so in each of 2 single-threaded workers on the same 2 cores, the small CNN
    mapped at a quarter of the local speed. A worker keeps the one PyTorch thread per worker
    thread that Dask gives it."""
    model = cnn_model()
    counting = copy.copy(model.extractor)
    counting.__class__, counting.folder = ThreadCountingCnn, str(tmp_path)
    model = dataclasses.replace(model, extractor=counting)
    rng = np.random.default_rng(3)
    scene = cnn_scene(tmp_path / "scene.tif", rng.integers(0, 255, (3, CNN_SCENE_SIZE, CNN_SCENE_SIZE), dtype=np.uint8))
    result, _, _ = _map(scene, tmp_path / "dask.tif", model, DaskExecutor(client), batch_size=4)
    notes = [p.read_text() for p in tmp_path.iterdir() if p.suffix == ""]
    assert result.n_estimated > 0 and len(notes) >= 2
    assert set(notes) == {str(client.run(torch.get_num_threads)[next(iter(client.nthreads()))])} == {"1"}
