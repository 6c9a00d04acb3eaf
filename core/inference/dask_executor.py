"""Mapping on a Dask distributed cluster: the batches of a job run on the cluster's
workers (see :mod:`..imagery.dask_cluster`: the workers open the imagery themselves, the
job and its model go to each worker once, a dead worker's batches are redone), the
estimates come back to this process and go to the sink, the map's writer, once each.
The workers also screen their cells for water and cloud, from the tiles they read: this
process reads no imagery of the region."""
from __future__ import annotations

import dataclasses

import numpy as np

from ..imagery.dask_cluster import BATCHES_PER_THREAD, ClusterRun, WorkerImagery, scheduler_client, worker_path
from ..imagery.prefetch import PrefetchingReader
from .executors import (
    CancelCheck, Cell, EstimateSink, MappingJob, ProgressCallback, cell_batches, deliver, estimate_tiles,
)
from .plan import RunPlan, torch_threads


def _open_job_reader(payload: tuple[MappingJob, RunPlan]) -> PrefetchingReader:
    """On a worker: the job's own reader (imagery, and night lights where the model reads
    them), reading in the calling thread."""
    job, plan = payload
    return job.reader(plan)


def _estimate_cells(
    payload: tuple[MappingJob, RunPlan], reader: PrefetchingReader, cells: list[Cell]
) -> tuple[np.ndarray, np.ndarray | None]:
    """One batch of a mapping job, on a worker: read its tiles and screen its cells for
    water and cloud, estimate the tiles ([n, 1 + k]); the codes (or None without a screen)."""
    job, plan = payload
    dn, valid, codes = reader.read_cells(cells, job.windows(cells))
    with torch_threads(plan.torch_threads):
        return estimate_tiles(job, plan, dn, valid), codes


class DaskExecutor:
    """Runs a job's batches on the Dask cluster of ``scheduler`` (an address such as
    tcp://10.0.0.5:8786, or a connected ``distributed.Client``, which is left open)."""

    def __init__(self, scheduler, connect_timeout_s: float | None = None, batches_per_thread: int = BATCHES_PER_THREAD):
        self.scheduler = scheduler
        self.connect_timeout_s = connect_timeout_s
        self.batches_per_thread = batches_per_thread

    def run(
        self, job: MappingJob, plan: RunPlan, sink: EstimateSink,
        progress: ProgressCallback, is_canceled: CancelCheck,
    ) -> None:
        with scheduler_client(self.scheduler, self.connect_timeout_s) as client:
            self._run(client, job, plan, sink, progress, is_canceled)

    def _run(self, client, job: MappingJob, plan: RunPlan, sink, progress, is_canceled) -> None:
        lights = job.nightlights and dataclasses.replace(job.nightlights, path=worker_path(job.nightlights.path))
        job = dataclasses.replace(job, raster_path=worker_path(job.raster_path), nightlights=lights)
        imagery = WorkerImagery(job.raster_path, job.band_indexes, job.model.tile_size_px, job.radiometry)
        # The local pipeline's readers are threads of one process; a worker reads its own
        # batches in its task (the workers' threads are the cluster's parallelism).
        plan = dataclasses.replace(plan, read_workers=0)
        total, done = max(1, job.n_cells), 0
        with ClusterRun(client, imagery, (job, plan), self.batches_per_thread, open_reader=_open_job_reader,
                        more_paths=(lights.path,) if lights else ()) as run:
            for cells, (values, codes) in run.results(_estimate_cells, cell_batches(job.cell_mask, plan.batch_size),
                                                      is_canceled):
                deliver(sink, cells, values, codes)
                done += len(cells)
                progress(done / total)
        progress(1.0)
