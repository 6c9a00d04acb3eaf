"""Generated renders of the shared Kinshasa Landsat 8 scenes (named so; not real imagery),
and the cell-by-cell comparison of two maps.

Each render remaps the shared render band by band through a lookup table of its 8-bit
values: linear stretches with other limits, gamma 0.7-1.4, per-band gains 0.8-1.25,
histogram equalization, and a linear stretch to the band statistics of a later render of
the place (means 144/161/161, spreads 54/46/47 against 136/155/139 and 32/27/31 on 2013).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import rasterio

LEVELS = np.arange(256, dtype=np.float64)
# 2013's band means and spreads, and a later render's (the same place, a stronger stretch)
SHARED_2013 = ((136, 32), (155, 27), (139, 31))
LATER = ((144, 54), (161, 46), (161, 47))


def _table(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def renders(histograms: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Lookup tables per band of every generated render; ``histograms`` [3, 256]: the
    shared render's pixel counts (for the histogram equalization)."""
    same = lambda table: [table] * 3  # noqa: E731
    cdf = np.cumsum(histograms, axis=1) / histograms.sum(axis=1, keepdims=True)
    return {
        "original": same(_table(LEVELS)),
        "linear_20_235": same(_table((LEVELS - 20) / 215 * 255)),
        "linear_-40_290": same(_table((LEVELS + 40) / 330 * 255)),
        "stretch_to_later": [_table(m2 + (LEVELS - m) * s2 / s) for (m, s), (m2, s2) in zip(SHARED_2013, LATER)],
        **{f"gamma_{g}": same(_table(255 * (LEVELS / 255) ** g)) for g in (0.7, 0.85, 1.2, 1.4)},
        **{f"gain_{'_'.join(map(str, gains))}": [_table(LEVELS * g) for g in gains]
           for gains in ((0.8, 1, 1.25), (1.25, 1, 0.8), (1.1, 1.25, 0.9), (0.8, 0.8, 0.8), (1.25, 1.25, 1.25))},
        "histogram_equalization": [_table(255 * cdf[b]) for b in range(3)],
    }


def apply_tables(tables: list[np.ndarray]):
    """A function of DN bands [bands, ...] (uint8) to the render's DN bands."""
    return lambda dn: np.stack([tables[b][dn[b]] for b in range(len(tables))])


def band_histograms(ds: rasterio.io.DatasetReader) -> np.ndarray:
    """Pixel counts per band of the valid pixels (read at a quarter of the resolution)."""
    shape = (ds.height // 4, ds.width // 4)
    data = ds.read(out_shape=(ds.count, *shape))
    valid = ds.read_masks(1, out_shape=shape) > 0
    return np.stack([np.bincount(data[b][valid], minlength=256) for b in range(3)]).astype(np.float64)


@dataclass(frozen=True)
class MapComparison:
    """One map against another, over the cells both estimated."""

    mean_shift: float  # mean of (map - reference); NaN without common cells
    r: float  # Pearson correlation of the cells; NaN with fewer than two or a constant map
    n: int  # cells both estimated


def compare_maps(values: np.ndarray, reference: np.ndarray, where: np.ndarray | None = None) -> MapComparison:
    """``values`` against ``reference`` (same grid; NaN where a map has no estimate), over
    the cells both estimated (and ``where``, when given)."""
    if values.shape != reference.shape:
        raise ValueError(f"the maps' grids differ: {values.shape} and {reference.shape}")
    both = np.isfinite(values) & np.isfinite(reference)
    if where is not None:
        both &= where
    a, b = values[both].astype(np.float64), reference[both].astype(np.float64)
    n = int(a.size)
    shift = float(np.mean(a - b)) if n else float("nan")
    r = float("nan")
    if n >= 2 and a.std() > 0 and b.std() > 0:
        r = float(np.corrcoef(a, b)[0, 1])
    return MapComparison(shift, r, n)


def cells_within(transform, shape: tuple[int, int], x: float, y: float, radius_m: float) -> np.ndarray:
    """True for the cells of a grid (``transform``, ``shape``) whose centre lies within
    ``radius_m`` of (x, y), in the grid's CRS units."""
    rows, cols = np.indices(shape)
    cx, cy = transform * (cols + 0.5, rows + 0.5)
    return (np.asarray(cx) - x) ** 2 + (np.asarray(cy) - y) ** 2 <= radius_m ** 2
