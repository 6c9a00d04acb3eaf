"""Estimate rasters over polygons (districts): what share of a polygon the map covers,
and the mean, the population-weighted mean, the people and the share of them below a
poverty line, on the cells with an estimate.

Each cell counts with the share of it that lies inside the polygon (exact cell-polygon
coverage from ``exactextract``), so a district smaller than a cell still gets the
estimate of the cells it lies on, and one that the map covers only in part says how
much. The estimate raster is read a block of rows at a time, within each polygon's
bounding box: memory depends on the block, not on the raster's size. Geometries are
GeoJSON-like dicts already in the estimate raster's CRS.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from exactextract import exact_extract
from exactextract.raster import NumPyRasterSource
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.features import bounds as geometry_bounds
from rasterio.warp import reproject
from rasterio.windows import Window

from ..errors import PovertyMapperError
from ..models.metadata import legend_from_tags, lights_from_tags

BLOCK_ROWS = 256  # rows of the estimate raster read at once for one polygon
BLOCK_COLS = 2048  # and columns: memory stays bounded however large the district
CACHE_BYTES = 64 * 2**20  # GDAL's block cache while reading (its default, 5 % of RAM, grew with the raster)
# Quality codes of band 2 of the plugin's maps (written by core/inference/writer.py, a stage
# beside this one; a test keeps the two in step): codes with an estimate, and two flags.
QUALITY_WITH_ESTIMATE = (0, 1, 3)  # within range, extrapolation, out of domain; 2, 4, 5: none
QUALITY_EXTRAPOLATED = 1
QUALITY_OUT_OF_DOMAIN = 3
SLIVER = 1e-6  # a cell covered less than this is not counted among a polygon's cells (edges after reprojection)


@dataclass(frozen=True)
class ZoneStats:
    """One polygon's numbers; None where there is nothing to base them on."""

    cells: int  # cells with an estimate that the polygon overlaps (slivers under SLIVER of a cell apart)
    coverage: float  # share of the polygon's area on cells with an estimate (0..1)
    mean: float | None  # mean estimate, each cell weighted by its share inside the polygon
    weighted_mean: float | None = None  # population-weighted mean (with a population raster)
    population: float | None = None  # people on the estimated part of the polygon
    below_line: float | None = None  # share of those people on cells estimated below the poverty line
    extrapolated: float | None = None  # share of the estimated part on cells flagged as extrapolation
    out_of_domain: float | None = None  # share of the estimated part on imagery unlike the model's training imagery


@dataclass
class _Sums:
    cells: int = 0
    area: float = 0.0  # in cells
    value: float = 0.0
    people: float = 0.0
    people_value: float = 0.0
    people_below: float = 0.0
    flagged: float = 0.0
    unlike: float = 0.0

    def add(self, coverage, values, people, quality, poverty_line) -> None:
        self.cells += int((coverage > SLIVER).sum())
        self.area += float(coverage.sum())
        self.value += float((coverage * values).sum())
        if quality is not None:
            self.flagged += float(coverage[quality == QUALITY_EXTRAPOLATED].sum())
            self.unlike += float(coverage[quality == QUALITY_OUT_OF_DOMAIN].sum())
        if people is not None:
            weight = coverage * people
            self.people += float(weight.sum())
            self.people_value += float((weight * values).sum())
            if poverty_line is not None:
                self.people_below += float(weight[values < poverty_line].sum())

    def stats(self, polygon_cells: float, with_people: bool, poverty_line: float | None) -> ZoneStats:
        coverage = min(1.0, self.area / polygon_cells) if polygon_cells > 0 else 0.0
        if self.area <= 0:
            return ZoneStats(0, coverage, None, population=0.0 if with_people else None)
        stats = ZoneStats(self.cells, coverage, self.value / self.area, extrapolated=self.flagged / self.area,
                          out_of_domain=self.unlike / self.area)
        if not with_people:
            return stats
        has_people = self.people > 0
        return ZoneStats(
            stats.cells, stats.coverage, stats.mean,
            weighted_mean=self.people_value / self.people if has_people else None,
            population=self.people,
            below_line=self.people_below / self.people if has_people and poverty_line is not None else None,
            extrapolated=stats.extrapolated, out_of_domain=stats.out_of_domain,
        )


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


def estimate_lights(raster_path: str) -> str | None:
    """The night lights an estimate raster was made from (``LIGHTS_YEAR`` tag), or None."""
    with _open(raster_path) as ds:
        return lights_from_tags(ds.tags())


def check_poverty_map(raster_path: str) -> tuple[str, str | None]:
    """What an estimate raster of this plugin holds: its QUANTITY and UNIT tags (the unit None
    when absent); a raster without a QUANTITY (e.g. the satellite image) is refused."""
    with _open(raster_path) as ds:
        tags = ds.tags()
    if not tags.get("QUANTITY"):
        raise PovertyMapperError(
            f"{raster_path} is not a poverty map: it lacks the QUANTITY tag that every map of "
            "'Predict poverty map' carries. Choose the estimate raster written by 'Predict poverty map', "
            "not the satellite image or another raster."
        )
    return tags["QUANTITY"], tags.get("UNIT") or None


def is_index(quantity: str | None, unit: str | None) -> bool:
    """A map of an index (e.g. asset wealth), whose values have no poverty line, unlike consumption."""
    return "index" in f"{quantity or ''} {unit or ''}".lower()


class EstimateMap:
    """An estimate raster (band 1 the estimate; the band described 'quality' its flags),
    with an optional population raster, opened for per-polygon statistics."""

    def __init__(self, raster_path: str, population_path: str | None = None, block_rows: int = BLOCK_ROWS):
        self._ds = _open(raster_path)
        self._population = None
        self._block_rows = block_rows
        descriptions = [d or "" for d in self._ds.descriptions]
        quality = [i + 1 for i, d in enumerate(descriptions) if d.lower().startswith("quality")]
        self._quality_band = quality[0] if quality and quality[0] != 1 else None
        if population_path is not None:
            self._population = _open(population_path)
            if self._population.crs is None:
                self.close()
                raise PovertyMapperError(
                    f"The population raster {population_path} has no coordinate reference system; assign one "
                    "(e.g. with 'Assign projection' in Processing) and save it, then use that file."
                )

    @property
    def crs(self) -> CRS:
        return self._ds.crs

    @property
    def crs_wkt(self) -> str | None:
        """The map's CRS as WKT (None when it has none)."""
        return self._ds.crs.to_wkt() if self._ds.crs else None

    @property
    def with_population(self) -> bool:
        return self._population is not None

    def close(self) -> None:
        self._ds.close()
        if self._population is not None:
            self._population.close()

    def __enter__(self) -> "EstimateMap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def stats(self, geometry: dict, poverty_line: float | None = None) -> ZoneStats:
        """The numbers of one polygon (GeoJSON geometry in the map's CRS)."""
        cell_area = abs(self._ds.transform.a * self._ds.transform.e - self._ds.transform.b * self._ds.transform.d)
        polygon_cells = polygon_area(geometry) / cell_area
        sums = _Sums()
        window = _geometry_window(self._ds.transform, (self._ds.height, self._ds.width), geometry)
        if window is not None:
            row0, row1, col0, col1 = window
            with rasterio.Env(GDAL_CACHEMAX=CACHE_BYTES):
                for top in range(row0, row1, self._block_rows):
                    for left in range(col0, col1, BLOCK_COLS):
                        block = Window(left, top, min(BLOCK_COLS, col1 - left), min(self._block_rows, row1 - top))
                        self._add_block(sums, block, geometry, poverty_line)
        return sums.stats(polygon_cells, self.with_population, poverty_line)

    def _add_block(self, sums: _Sums, block: Window, geometry: dict, poverty_line: float | None) -> None:
        transform = self._ds.window_transform(block)
        shape = (int(block.height), int(block.width))
        ids, coverage = _coverage(geometry, transform, shape)
        if ids.size == 0:
            return
        values = self._ds.read(1, window=block, masked=True)
        estimated = ~np.ma.getmaskarray(values) & np.isfinite(values.filled(np.nan))
        quality = None
        if self._quality_band is not None:
            quality = self._ds.read(self._quality_band, window=block)
            estimated &= np.isin(quality, QUALITY_WITH_ESTIMATE)  # 2 no estimate, 4 water, 5 cloud: left out
        keep = estimated.ravel()[ids]
        ids, coverage = ids[keep], coverage[keep]
        people = None
        if self._population is not None:
            people = self._people_on(transform, shape).ravel()[ids]
        sums.add(
            coverage, values.filled(np.nan).astype(np.float64).ravel()[ids], people,
            None if quality is None else quality.ravel()[ids], poverty_line,
        )

    def _people_on(self, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
        """People per cell of a block of the map: the population raster's cells summed into
        each (warped first when the CRS differs). Nodata, negative and non-finite counts,
        and cells the raster misses, count as 0."""
        summed = np.full(shape, np.nan, np.float64)
        reproject(
            rasterio.band(self._population, 1), summed, dst_transform=transform, dst_crs=self._ds.crs,
            resampling=Resampling.sum, dst_nodata=np.nan,
        )
        return np.where(np.isfinite(summed) & (summed > 0), summed, 0.0)


def zone_stats(estimate_map: EstimateMap, geometry: dict, poverty_line: float | None = None) -> ZoneStats:
    """The numbers of one polygon (GeoJSON geometry in the map's CRS)."""
    return estimate_map.stats(geometry, poverty_line)


def polygon_area(geometry: dict) -> float:
    """Area of a GeoJSON (multi)polygon in its CRS's units (rings: outer minus holes)."""
    kind = geometry.get("type")
    if kind == "Polygon":
        polygons = [geometry["coordinates"]]
    elif kind == "MultiPolygon":
        polygons = geometry["coordinates"]
    else:
        return 0.0
    total = 0.0
    for rings in polygons:
        for i, ring in enumerate(rings):
            area = abs(_ring_area(np.asarray(ring, dtype=np.float64)[:, :2]))
            total += area if i == 0 else -area
    return max(total, 0.0)


def _ring_area(xy: np.ndarray) -> float:
    x, y = xy[:, 0] - xy[:, 0].mean(), xy[:, 1] - xy[:, 1].mean()  # centred: no loss of digits in UTM
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _coverage(geometry: dict, transform: Affine, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Flat indexes of the cells of a block the geometry covers, and the share of each covered."""
    height, width = shape
    xmin, ymax = transform * (0, 0)
    xmax, ymin = transform * (width, height)
    grid = NumPyRasterSource(np.zeros(shape, np.float32), xmin, ymin, xmax, ymax)
    feature = {"type": "Feature", "properties": {}, "geometry": geometry}
    result = exact_extract(grid, [feature], ["cell_id", "coverage"], output="geojson")
    properties = result[0]["properties"] if result else {}
    ids = np.asarray(properties.get("cell_id", []), dtype=np.int64)
    coverage = np.asarray(properties.get("coverage", []), dtype=np.float64)
    return ids, coverage


def _geometry_window(transform: Affine, shape: tuple[int, int], geometry: dict) -> tuple[int, int, int, int] | None:
    """Rows and columns (half-open) of the grid under the geometry's bounding box."""
    try:
        xmin, ymin, xmax, ymax = geometry_bounds(geometry)
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    if not all(map(math.isfinite, (xmin, ymin, xmax, ymax))):
        return None
    inverse = ~transform
    corners = [inverse * (x, y) for x in (xmin, xmax) for y in (ymin, ymax)]
    cols, rows = [c for c, _ in corners], [r for _, r in corners]
    height, width = shape
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
