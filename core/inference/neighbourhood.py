"""Map cells estimated the way survey clusters were: from the features of a neighbourhood.

The survey fit averages the features of the tiles in a box around each cluster (10 km by
default) and regresses the outcome on that average. A map whose cells were estimated
from their single tile would apply the regression to features it was never fitted on:
single tiles vary far more than box averages, and the map's values spread well beyond
the training outcomes (on a generated world -4.7 to 3.9 against outcomes of 0.1 to 2.0).

The regression is linear, so the estimate of a box's mean feature vector is the mean of
its tiles' estimates: each cell's value is the mean of the tile estimates of the cells
whose tiles lie within the fit's box around it (those with an estimate of their own).
A cell without an estimate of its own (fill, too few valid pixels) stays without one.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .mapping_job import EstimateSink

CHUNK = 4096


def neighbourhood_radius(box_size_m: float | None, tile_size_m: float, step_m: float) -> int:
    """How many cells on each side of a cell the fit's box reaches: the cells whose tiles
    lie within a ``box_size_m`` box centred on the cell (0: the tile alone)."""
    if not box_size_m or box_size_m <= tile_size_m:
        return 0
    return max(0, int(np.floor((box_size_m - tile_size_m) / (2.0 * step_m) + 0.5)))


def box_mean(values: np.ndarray, radius: int) -> np.ndarray:
    """The mean of the finite values within ``radius`` cells (a square window) of each
    cell; NaN where the window holds none."""
    finite = np.isfinite(values)
    padded = np.pad(np.where(finite, values, 0.0), radius + 1)[:-1, :-1]
    counts = np.pad(finite.astype(np.float64), radius + 1)[:-1, :-1]
    sums, ns = padded.cumsum(0).cumsum(1), counts.cumsum(0).cumsum(1)
    k = 2 * radius + 1
    h, w = values.shape

    def window(table: np.ndarray) -> np.ndarray:
        return table[k:k + h, k:k + w] - table[:h, k:k + w] - table[k:k + h, :w] + table[:h, :w]

    total, n = window(sums), window(ns)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


class NeighbourhoodMean:
    """A sink in front of the map's writer: keeps every cell's tile outputs (the estimate
    and the domain coordinates), and on :meth:`flush` hands the writer each cell's
    neighbourhood means (its own estimate must exist). Holds 1 + k floats per cell."""

    def __init__(self, sink: EstimateSink, shape: tuple[int, int], radius: int):
        self.sink, self.radius, self.shape = sink, radius, shape
        self.values: np.ndarray | None = None  # [rows, cols, 1 + k], allocated with the first batch
        self.seen = np.zeros(shape, bool)

    def add(self, cells: Sequence[tuple[int, int]], values: np.ndarray) -> None:
        values = np.asarray(values, np.float64).reshape(len(cells), -1)
        if self.values is None:
            self.values = np.full((*self.shape, values.shape[1]), np.nan)
        if len(cells):
            rows, cols = np.asarray(cells).T
            self.values[rows, cols] = values
            self.seen[rows, cols] = True

    def screened(self, cells: Sequence[tuple[int, int]], codes: np.ndarray) -> None:
        """Cells without an estimate (water, cloud) go to the writer at once; their NaN
        values take no part in their neighbours' means."""
        self.sink.screened(cells, codes)

    def flush(self) -> None:
        """Every cell received, in row order, to the writer."""
        if self.values is None:
            return
        own = np.isfinite(self.values[..., 0])
        means = np.stack([box_mean(self.values[..., i], self.radius) for i in range(self.values.shape[2])], axis=-1)
        means[~own] = np.nan
        cells = np.argwhere(self.seen)
        for start in range(0, len(cells), CHUNK):
            chunk = cells[start:start + CHUNK]
            self.sink.add([tuple(map(int, cell)) for cell in chunk], means[chunk[:, 0], chunk[:, 1]])
