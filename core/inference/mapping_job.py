"""A mapping run's job: which cells to estimate (:class:`MappingJob`), how a batch of
them is estimated with :func:`estimate_batch` (:class:`MappingWork`), and where the
estimates go (an :class:`EstimateSink`, the map's writer).

How the batches run is an executor's (:mod:`..imagery.executors`): here, the tiles read
ahead in threads, or on a Dask cluster's workers, which open the imagery and screen
their cells for water and cloud themselves (this process then reads no imagery of the
region). :func:`run_mapping` takes either and feeds the sink, each cell once.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np

from ..imagery.tile_work import Executor, TileWork
from ..imagery.lights_layer import LightsInput
from ..imagery.prefetch import PrefetchingReader
from ..imagery.radiometry import REFLECTANCE, Radiometry
from ..imagery.surface import SurfaceScreen
from ..imagery.tiling import PixelWindow, TileGrid
from ..models.model_file import PovertyModel
from .estimate import estimate_batch
from .plan import RunPlan, torch_threads

Cell = tuple[int, int]  # (row, col) in the grid of output cells
ProgressCallback = Callable[[float], None]
CancelCheck = Callable[[], bool]


@dataclass(frozen=True)
class MappingJob:
    """What to estimate: ``model`` on the tiles of ``grid`` in the raster, for the cells
    where ``cell_mask`` is True. Plain data, so that it can be sent to other processes."""

    raster_path: str
    band_indexes: tuple[int, ...]  # 1-based, one per model band
    radiometry: Radiometry
    model: PovertyModel
    grid: TileGrid
    cell_mask: np.ndarray  # bool, grid.shape
    min_valid_fraction: float  # a tile with fewer valid pixels gets no estimate
    notes: tuple[str, ...] = ()  # what the user should know about how the tiles are read
    nightlights: LightsInput | None = None  # the lights layer of a model with a NIGHTLIGHTS band
    screen: SurfaceScreen | None = None  # water and cloud tests of the cells, as their tiles are read

    @property
    def pixel_radiometry(self) -> Radiometry:
        """How the values the reader delivers become the model's: with a lights layer they
        arrive converted already (the imagery's reflectance, the lights as read)."""
        return REFLECTANCE if self.nightlights is not None else self.radiometry

    def reader(self, plan: RunPlan) -> PrefetchingReader:
        """A reader of the job's tiles (imagery, and lights where the model reads them)."""
        return PrefetchingReader(
            self.raster_path, self.band_indexes, self.model.tile_size_px, self.radiometry,
            plan.read_workers, plan.prefetch_batches, self.nightlights, self.screen,
        )

    @property
    def n_cells(self) -> int:
        """The cells to estimate."""
        return int(self.cell_mask.sum())

    def windows(self, cells: Sequence[Cell]) -> list[PixelWindow]:
        """The tiles' pixel windows of ``cells``."""
        return [self.grid.tile_window(r, c) for r, c in cells]


class EstimateSink(Protocol):
    """Where estimates go (the map being written)."""

    def add(self, cells: Sequence[Cell], values: np.ndarray) -> None:
        """Estimates for ``cells`` ([len(cells), 1 + k]: the estimate, then the domain
        coordinates), in any order; NaN where a tile has no estimate."""

    def screened(self, cells: Sequence[Cell], codes: np.ndarray) -> None:
        """Quality codes (water, cloud) of ``cells`` that get no estimate, before their
        (NaN) values come to :meth:`add`."""


def cell_batches(cell_mask: np.ndarray, batch_size: int) -> Iterator[list[Cell]]:
    """Cells inside the mask, row-major, in batches."""
    rows, cols = np.nonzero(cell_mask)
    for start in range(0, rows.size, batch_size):
        yield list(zip(rows[start : start + batch_size].tolist(), cols[start : start + batch_size].tolist()))


def estimate_tiles(job: MappingJob, plan: RunPlan, dn: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Estimates for one batch of the job's tiles, [N, 1 + k] (estimate, domain
    coordinates: see :func:`estimate_batch`); NaN where too few pixels are valid."""
    values = estimate_batch(job.model, dn, valid, job.pixel_radiometry, plan)
    enough = valid.reshape(len(valid), -1).sum(1) >= job.min_valid_fraction * job.model.tile_size_px**2
    return np.where(enough[:, None], values, np.nan)


def deliver(sink: EstimateSink, cells: Sequence[Cell], values: np.ndarray, codes: np.ndarray | None) -> None:
    """A batch's outputs to ``sink``: cells the screen found mostly water or cloud get
    their code and no estimate (whatever their tile gave)."""
    if codes is not None and codes.any():
        found = np.flatnonzero(codes)
        sink.screened([cells[i] for i in found], codes[found])
        values = values.copy()
        values[found] = np.nan
    sink.add(cells, values)


@dataclass(frozen=True)
class MappingWork(TileWork):
    """The estimates of batches of a job's cells, as an executor runs them: the tiles read
    (ahead, where the reader may) and the cells screened for water and cloud, the tiles
    estimated with ``plan``'s threads; each batch's result is (estimates [n, 1 + k], the
    cells' quality codes or None without a screen)."""

    job: MappingJob
    plan: RunPlan

    def paths(self) -> tuple[str, ...]:
        lights = self.job.nightlights
        return (self.job.raster_path,) + ((lights.path,) if lights else ())

    def at_paths(self, where: Callable[[str], str]) -> "MappingWork":
        lights = self.job.nightlights and dataclasses.replace(self.job.nightlights, path=where(self.job.nightlights.path))
        job = dataclasses.replace(self.job, raster_path=where(self.job.raster_path), nightlights=lights)
        return dataclasses.replace(self, job=job)

    def for_workers(self) -> "MappingWork":
        """No reader threads, and PyTorch's threads left as the worker set them (Dask: one per
        worker thread): the plan's threads are the client's cores' (two workers of two
        network threads each on 2 cores ran the small CNN at a quarter of the local speed)."""
        return dataclasses.replace(self, plan=dataclasses.replace(self.plan, read_workers=0, torch_threads=None))

    def open_reader(self, read_ahead: bool) -> PrefetchingReader:
        """The job's reader of imagery, and night lights where the model reads them; on a
        worker it reads in the calling thread (the workers' threads are the cluster's parallelism)."""
        return self.job.reader(self.plan if read_ahead else dataclasses.replace(self.plan, read_workers=0))

    def run(
        self, reader: PrefetchingReader, batches: Iterable[list[Cell]]
    ) -> Iterator[tuple[list[Cell], tuple[np.ndarray, np.ndarray | None]]]:
        job, plan = self.job, self.plan
        with torch_threads(plan.torch_threads):
            for cells, dn, valid, codes in reader.map(batches, job.windows):
                yield cells, (estimate_tiles(job, plan, dn, valid), codes)


def run_mapping(
    executor: Executor, job: MappingJob, plan: RunPlan, sink: EstimateSink,
    progress: ProgressCallback, is_canceled: CancelCheck,
) -> None:
    """Every cell of ``job`` to ``sink`` once, in batches of ``plan.batch_size`` tiles run on
    ``executor``; ``progress`` gets the fraction of cells done after each batch."""
    total, done = max(1, job.n_cells), 0
    work = MappingWork(job, plan)
    for cells, (values, codes) in executor.results(work, cell_batches(job.cell_mask, plan.batch_size), is_canceled):
        deliver(sink, cells, values, codes)
        done += len(cells)
        progress(done / total)
    progress(1.0)
