"""Estimate rasters over polygons (districts): how many estimated cells a polygon
holds, their plain mean and their population-weighted mean.

A cell belongs to a polygon when its centre lies inside it (GDAL's rasterize rule),
the same rule for all three numbers. Geometries are GeoJSON-like dicts already in
the estimate raster's CRS.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.features import bounds as geometry_bounds
from rasterio.features import rasterize
from rasterio.warp import reproject

from ..errors import PovertyMapperError
from ..models.metadata import legend_from_tags


@dataclass(frozen=True)
class EstimateGrid:
    """An estimate raster in memory (estimate rasters are coarse: one cell per tile)."""

    values: np.ndarray  # [H, W] float64; meaningful where ``estimated``
    estimated: np.ndarray  # [H, W] bool: the cell holds an estimate (not nodata, finite)
    transform: Affine
    crs: CRS
    population: np.ndarray | None = None  # [H, W] people per cell (0 where unknown)


@dataclass(frozen=True)
class ZoneStats:
    cells: int  # estimated cells whose centre is inside the polygon
    mean: float | None  # None when no estimated cell is inside
    weighted_mean: float | None  # None without population, or with no people on those cells


def estimate_quantity(raster_path: str) -> tuple[str | None, str | None]:
    """What an estimate raster holds: its QUANTITY and UNIT tags (None when absent)."""
    with _open(raster_path) as ds:
        tags = ds.tags()
    return tags.get("QUANTITY") or None, tags.get("UNIT") or None


# Bands 2 and 3 of the plugin's maps, found by their descriptions: the quality code (0
# within the survey outcomes' range, 1 extrapolation, 3 out of the model's domain) and the
# half-width of the 80 % interval.
CELL_BANDS = {"quality": "quality", "interval80": "interval half-width"}


def cell_bands_at(raster_path: str, xs, ys) -> dict[str, np.ndarray]:
    """The values of the map's quality and interval bands at points in the raster's CRS,
    by field name (:data:`CELL_BANDS`); only the bands the raster has (none for a raster
    not written by this plugin)."""
    out = {}
    with _open(raster_path) as ds:
        rows, cols = rasterio.transform.rowcol(ds.transform, xs, ys)
        rows = np.clip(np.asarray(rows), 0, ds.height - 1)
        cols = np.clip(np.asarray(cols), 0, ds.width - 1)
        for field, words in CELL_BANDS.items():
            band = next((i + 1 for i, d in enumerate(ds.descriptions) if i and words in (d or "")), None)
            if band is not None:
                out[field] = ds.read(band)[rows, cols]
    return out


def estimate_scale(raster_path: str) -> tuple[float, float, float] | None:
    """The model's fixed colour scale of an estimate raster (low, high, survey mean), or None."""
    with _open(raster_path) as ds:
        return legend_from_tags(ds.tags())


def read_estimate_grid(raster_path: str, population_path: str | None = None) -> EstimateGrid:
    """Band 1 of the estimate raster; with ``population_path``, the population raster
    summed onto the estimate grid (any CRS and resolution; nodata counts as nobody)."""
    with _open(raster_path) as ds:
        values = ds.read(1, masked=True)
        transform, crs, shape = ds.transform, ds.crs, (ds.height, ds.width)
    data = np.asarray(values.filled(np.nan), dtype=np.float64)
    estimated = ~np.ma.getmaskarray(values) & np.isfinite(data)
    population = None
    if population_path is not None:
        population = population_on_grid(population_path, shape, transform, crs)
    return EstimateGrid(data, estimated, transform, crs, population)


def population_on_grid(population_path: str, shape: tuple[int, int], transform: Affine, crs: CRS) -> np.ndarray:
    """People per cell of the grid ``shape``/``transform``/``crs``: the population
    raster's cells summed into each grid cell (warped first when the CRS differs).
    Nodata, negative and non-finite counts, and cells the raster misses, count as 0."""
    summed = np.full(shape, np.nan, np.float64)
    with _open(population_path) as src:
        if src.crs is None:
            raise PovertyMapperError(
                f"The population raster {population_path} has no coordinate reference system; assign one first."
            )
        reproject(
            rasterio.band(src, 1), summed, dst_transform=transform, dst_crs=crs,
            resampling=Resampling.sum, dst_nodata=np.nan,
        )
    return np.where(np.isfinite(summed) & (summed > 0), summed, 0.0)


def zone_stats(grid: EstimateGrid, geometry: dict) -> ZoneStats:
    """Cells, mean and population-weighted mean of the estimates inside ``geometry``."""
    window = _geometry_window(grid, geometry)
    if window is None:
        return ZoneStats(0, None, None)
    row0, row1, col0, col1 = window
    inside = rasterize(
        [(geometry, 1)], out_shape=(row1 - row0, col1 - col0),
        transform=grid.transform * Affine.translation(col0, row0), fill=0, dtype="uint8",
    ).astype(bool)
    cells = inside & grid.estimated[row0:row1, col0:col1]
    n = int(cells.sum())
    if n == 0:
        return ZoneStats(0, None, None)
    estimates = grid.values[row0:row1, col0:col1][cells]
    weighted = None
    if grid.population is not None:
        people = grid.population[row0:row1, col0:col1][cells]
        total = float(people.sum())
        if total > 0:
            weighted = float((people * estimates).sum() / total)
    return ZoneStats(n, float(estimates.mean()), weighted)


def _geometry_window(grid: EstimateGrid, geometry: dict) -> tuple[int, int, int, int] | None:
    """Rows and columns (half-open) of the grid under the geometry's bounding box."""
    try:
        xmin, ymin, xmax, ymax = geometry_bounds(geometry)
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    if not all(map(math.isfinite, (xmin, ymin, xmax, ymax))):
        return None
    inverse = ~grid.transform
    corners = [inverse * (x, y) for x in (xmin, xmax) for y in (ymin, ymax)]
    cols, rows = [c for c, _ in corners], [r for _, r in corners]
    height, width = grid.values.shape
    col0, col1 = max(0, math.floor(min(cols))), min(width, math.ceil(max(cols)))
    row0, row1 = max(0, math.floor(min(rows))), min(height, math.ceil(max(rows)))
    if col0 >= col1 or row0 >= row1:
        return None
    return row0, row1, col0, col1


def _open(path: str):
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise PovertyMapperError(f"Cannot open the raster {path}: {exc}") from exc
