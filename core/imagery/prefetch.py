"""Reading ahead: a small pool of reader threads fills a bounded queue of tile batches
while the model works on the current one.

Each thread opens its own rasterio dataset (GDAL handles are not shared between
threads). At most ``depth`` batches are read ahead, so memory is bounded by
``depth x batch size x tile size`` whatever the raster's size.

With a water and cloud screen (:class:`.surface.SurfaceScreen`) each batch's cells are
screened as the batch is handed on, from the tiles just read (a cell whose tile does not
hold its samples unchanged, at the raster's edge, is read again for them).
"""
from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
import rasterio

from .lights_layer import ImageryWithLights, LightsInput, lights_on_grid, lights_radiometry, open_lights
from .radiometry import Radiometry
from .surface import SurfaceScreen, TileSource
from .tile_reader import TileReader, open_raster
from .tiling import PixelWindow

T = TypeVar("T")


class PrefetchingReader:
    def __init__(
        self,
        path: str,
        band_indexes: Sequence[int],
        size: int,
        radiometry: Radiometry,
        workers: int = 2,
        depth: int = 4,
        lights: LightsInput | None = None,
        screen: SurfaceScreen | None = None,
    ):
        self.path = path
        self.screen = screen
        self.lights = lights
        self.bands = tuple(band_indexes)
        self.size = size
        self.radiometry = radiometry
        self.workers = max(0, workers)
        self.depth = max(1, depth)
        self._local = threading.local()
        self._datasets: list[rasterio.io.DatasetReader] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="poverty-read") if self.workers else None

    def _reader(self) -> TileReader | ImageryWithLights:
        reader = getattr(self._local, "reader", None)
        if reader is None:
            ds = open_raster(self.path)
            with self._lock:
                self._datasets.append(ds)
            if self.lights is None:
                reader = TileReader(ds, self.bands, self.size, self.radiometry)
            else:
                reader = self._with_lights(ds)
            self._local.reader = reader
        return reader

    def _with_lights(self, ds: rasterio.io.DatasetReader) -> ImageryWithLights:
        lights = open_lights(self.lights.path)
        vrt = lights_on_grid(lights, ds)
        with self._lock:
            self._datasets += [vrt, lights]
        return ImageryWithLights(
            ds, vrt, self.bands, self.size, self.radiometry, lights_radiometry(lights), self.lights.position
        )

    @property
    def n_bands(self) -> int:
        """Bands of a tile: the imagery's, and the lights band where there is one."""
        return len(self.bands) + (self.lights is not None)

    def read(self, windows: Sequence[PixelWindow]) -> tuple[np.ndarray, np.ndarray]:
        """One batch: (digital numbers [N, bands, size, size] in the raster's type, valid [N, size, size]);
        with a lights layer, float32 values: the imagery's reflectance and the lights as read."""
        reader = self._reader()
        dn = np.empty((len(windows), self.n_bands, self.size, self.size), reader.dtype)
        valid = np.empty((len(windows), self.size, self.size), bool)
        for i, window in enumerate(windows):
            reader.read_dn_into(window, dn[i], valid[i])
        return dn, valid

    def read_cells(
        self, cells: Sequence[tuple[int, int]], windows: Sequence[PixelWindow]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """:meth:`read` of the tiles of ``cells`` (their ``windows``), and the cells' water
        and cloud codes (uint8 [N], 0: neither; None without a screen)."""
        dn, valid = self.read(windows)
        return dn, valid, self.screen_codes(cells, windows, dn)

    def screen_codes(
        self, cells: Sequence[tuple[int, int]], windows: Sequence[PixelWindow], dn: np.ndarray
    ) -> np.ndarray | None:
        """The water and cloud codes of ``cells`` (None without a screen), from their tiles'
        digital numbers ``dn`` where these hold the samples unchanged, else read in the
        calling thread."""
        if self.screen is None:
            return None
        reader = self._reader()
        if isinstance(reader, TileReader):
            raw = np.array([reader.reads_unchanged(w) for w in windows], bool)
            return self.screen.codes(reader.ds, cells, TileSource(dn, self.bands, windows, raw))
        return self.screen.codes(reader.image.ds, cells)

    def map(
        self, batches: Iterable[T], windows_of: Callable[[T], Sequence[PixelWindow]]
    ) -> Iterator[tuple[T, np.ndarray, np.ndarray, np.ndarray | None]]:
        """Yields (batch, dn, valid, codes) in order, reading up to ``depth`` batches ahead;
        a batch is a sequence of cells (see :meth:`read_cells`). The cells are screened in
        the calling thread, from the tiles read: the reader threads only read."""
        if self._pool is None:
            for batch in batches:
                yield (batch, *self.read_cells(batch, windows_of(batch)))
            return
        in_flight: deque[tuple[T, Sequence[PixelWindow], Future]] = deque()
        it = iter(batches)
        try:
            for batch in it:
                windows = windows_of(batch)
                in_flight.append((batch, windows, self._pool.submit(self.read, windows)))
                if len(in_flight) >= self.depth:
                    yield self._screened(*in_flight.popleft())
            while in_flight:
                yield self._screened(*in_flight.popleft())
        finally:
            for _, _, future in in_flight:
                future.cancel()

    def _screened(self, batch, windows: Sequence[PixelWindow], future: Future) -> tuple:
        dn, valid = future.result()
        return batch, dn, valid, self.screen_codes(batch, windows, dn)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for ds in self._datasets:
                ds.close()
            self._datasets.clear()

    def __enter__(self) -> "PrefetchingReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
