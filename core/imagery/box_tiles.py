"""The tiles of square boxes around points (e.g. surveyed clusters) that touch a raster,
never listed whole: memory stays flat whatever the box size."""
from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import Iterable, Iterator, Sequence

import numpy as np
from affine import Affine

from ..errors import PovertyMapperError
from .nightlights import mean_lights_on_grid
from .tiling import PixelWindow, TileGrid, bounds_window, pixel_size_m, tile_grid_for


@dataclass(frozen=True)
class BoxTiles:
    """The tiles of one cluster's box that touch the raster, never listed: a tile's
    columns do not depend on its row, so they are the on-raster rows x the on-raster
    columns, in row-major order (a 100 km box of 240 m tiles holds 174,000)."""

    cluster: int
    grid: TileGrid
    rows: tuple[int, ...]
    cols: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def window(self, k: int) -> PixelWindow:
        """The ``k``-th tile (row-major) that touches the raster."""
        return self.grid.tile_window(self.rows[k // len(self.cols)], self.cols[k % len(self.cols)])

    def __iter__(self) -> Iterator[PixelWindow]:
        return (self.grid.tile_window(r, c) for r in self.rows for c in self.cols)


@dataclass(frozen=True)
class ClusterTiles:
    """The tiles of every cluster's box that touch the raster, one at a time, as
    (cluster index, window): memory stays flat whatever the box size."""

    boxes: tuple[BoxTiles, ...]

    def __len__(self) -> int:
        return sum(len(b) for b in self.boxes)

    def __iter__(self) -> Iterator[tuple[int, PixelWindow]]:
        return ((b.cluster, w) for b in self.boxes for w in b)

    def picked(self, indices: Sequence[int]) -> list[tuple[int, PixelWindow]]:
        """The tiles at ``indices`` (sorted) of the row-major sequence of all boxes."""
        starts = np.cumsum([0] + [len(b) for b in self.boxes])
        out = []
        for k in indices:
            box = int(np.searchsorted(starts, k, side="right")) - 1
            out.append((self.boxes[box].cluster, self.boxes[box].window(int(k - starts[box]))))
        return out


def batches(items: Iterable, size: int) -> Iterator[list]:
    """``items`` in lists of ``size`` (the last shorter), taken one at a time."""
    items = iter(items)
    while chunk := list(islice(items, size)):
        yield chunk


def box_tiles(ds, i: int, x: float, y: float, box_size_m: float, tile_m: float) -> tuple[BoxTiles, int] | None:
    """The tiles of the ``box_size_m`` square centred on (x, y) that touch the raster, and
    how many tiles the box has in all; None when the box misses the raster."""
    try:
        box = bounds_window(ds.transform, box_bounds(ds, x, y, box_size_m))
    except PovertyMapperError:
        return None
    if box.intersection(ds.width, ds.height) is None:
        return None
    grid = tile_grid_for(ds.transform, ds.crs, box, tile_m)
    cols = tuple(c for c in range(grid.width) if _overlaps(grid.tile_window(0, c), ds.width, ds.height, "x"))
    rows = tuple(r for r in range(grid.height) if _overlaps(grid.tile_window(r, 0), ds.width, ds.height, "y"))
    return BoxTiles(i, grid, rows, cols), len(grid)


def _overlaps(window: PixelWindow, width: int, height: int, axis: str) -> bool:
    if axis == "x":
        return window.col_off < width and window.col_off + window.width > 0
    return window.row_off < height and window.row_off + window.height > 0


def box_bounds(ds, x: float, y: float, box_size_m: float) -> tuple[float, float, float, float]:
    """The ``box_size_m`` square centred on (x, y), in the raster's CRS units."""
    mx, my = pixel_size_m(ds.transform, ds.crs, (x, y))
    half_x = box_size_m / 2 * abs(ds.transform.a) / mx
    half_y = box_size_m / 2 * abs(ds.transform.e) / my
    return x - half_x, y - half_y, x + half_x, y + half_y


def box_lights(path: str, ds, x: float, y: float, box_size_m: float) -> float:
    minx, miny, maxx, maxy = box_bounds(ds, x, y, box_size_m)
    transform = Affine(maxx - minx, 0, minx, 0, -(maxy - miny), maxy)
    return float(mean_lights_on_grid(path, transform, (1, 1), ds.crs)[0, 0])
