"""Mapping a model of the bundled night lights: a region and a CRS, no image.

A model whose extractor reads no imagery (``extractor.reads_imagery`` False: the bundled
NASA Black Marble 2016 lights, :mod:`..extractors.bundled_lights`) maps any region the
lights cover. The map's cells are squares of the model's cell size (one lights pixel,
611.5 m, unless asked otherwise) in the region's CRS, on multiples of the cell size from
the CRS's origin (maps of overlapping regions line up); each cell gets the estimate of
the features at its centre, made by the same code as the survey clusters' the model was
fitted on, and the same three bands as every map (estimate, quality, 80 % interval),
written row by row. Cells are read in bands of rows, one lights read per block, so a
whole country maps in memory of a few rows.

    request = LightsMapRequest(model, "map.tif", bounds=(west, south, east, north), crs="EPSG:32735")
    result = predict_lights_map(request, progress=print)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import rasterize

from ..errors import Canceled, PovertyMapperError
from ..imagery.bundled_lights import BUNDLED_LIGHTS_PATH, LIGHTS_YEAR, BundledLights
from ..imagery.tiling import PixelWindow, TileGrid, pixel_size_m
from ..models.model_file import PovertyModel
from ..resources import check_memory
from .mapping_job import CancelCheck, ProgressCallback
from .writer import CellReading, check_output_path, estimate_raster

ROWS_PER_BAND = 32  # rows of cells whose features are computed together
BYTES_PER_CELL = 64  # the cell mask and the writer's pending rows, per cell of the grid


@dataclass(frozen=True)
class LightsMapRequest:
    """A map of ``bounds`` (west, south, east, north in ``crs``) with ``model``, whose
    extractor reads the bundled lights; optionally only the cells whose centre lies in
    ``mask_geometries`` (GeoJSON-like polygons in ``crs``)."""

    model: PovertyModel
    output_path: str
    bounds: tuple[float, float, float, float]
    crs: str
    cell_size_m: float | None = None  # None: the model's (one lights pixel)
    mask_geometries: tuple[dict, ...] | None = None
    mask_name: str | None = None


@dataclass(frozen=True)
class LightsMapResult:
    output_path: str
    n_cells: int
    n_estimated: int
    value_min: float | None
    value_max: float | None
    value_mean: float | None
    n_outside_range: int = 0
    n_out_of_domain: int = 0
    lights_year: int = LIGHTS_YEAR


def lights_map_grid(bounds, crs: CRS, cell_size_m: float) -> TileGrid:
    """Cells of ``cell_size_m`` over ``bounds`` in ``crs``, starting on whole cells from
    the CRS's origin (in a geographic CRS: degrees of that size at the region's centre)."""
    west, south, east, north = (float(v) for v in bounds)
    if not (east > west and north > south) or not all(math.isfinite(v) for v in (west, south, east, north)):
        raise PovertyMapperError(f"The region {tuple(bounds)} has no area; give west < east and south < north.")
    if not (math.isfinite(cell_size_m) and cell_size_m > 0):
        raise PovertyMapperError(f"The cell size must be more than 0 m, not {cell_size_m:g}.")
    unit_x, unit_y = pixel_size_m(Affine(1.0, 0.0, 0.0, 0.0, -1.0, 0.0), crs, ((west + east) / 2, (south + north) / 2))
    step_x, step_y = cell_size_m / unit_x, cell_size_m / unit_y
    x0, y0 = math.floor(west / step_x + 1e-9) * step_x, math.ceil(north / step_y - 1e-9) * step_y
    width = max(1, math.ceil((east - x0) / step_x - 1e-9))
    height = max(1, math.ceil((y0 - south) / step_y - 1e-9))
    return TileGrid(Affine(step_x, 0.0, x0, 0.0, -step_y, y0), PixelWindow(0, 0, width, height), 1.0, 1.0, 1.0, 1.0)


def _cell_mask(grid: TileGrid, request: LightsMapRequest) -> np.ndarray:
    if request.mask_geometries is None:
        return np.ones(grid.shape, bool)
    mask = f"'{request.mask_name}'" if request.mask_name else "the mask layer"
    if not request.mask_geometries:
        raise PovertyMapperError(f"The mask {mask} has no polygons (or none selected); choose polygons to map.")
    burned = rasterize(((g, 1) for g in request.mask_geometries), out_shape=grid.shape, transform=grid.transform,
                       fill=0, dtype="uint8").astype(bool)
    if not burned.any():
        raise PovertyMapperError(f"The mask polygons of {mask} hold no cell centre of the region: they lie outside "
                                 "it or are smaller than one cell. Check the mask's CRS and extent.")
    return burned


def _check_model(model: PovertyModel) -> None:
    if model.extractor.reads_imagery:
        raise PovertyMapperError(f"The model '{model.name}' reads imagery: map it with an image (predict_poverty_map).")
    if model.extractor.lights_file != BUNDLED_LIGHTS_PATH.name:
        raise PovertyMapperError(f"The model '{model.name}' reads the night lights {model.extractor.lights_file}, "
                                 f"not the bundled {BUNDLED_LIGHTS_PATH.name}.")
    if not model.can_predict:
        raise PovertyMapperError(f"The model '{model.name}' holds only a feature extractor; it writes no estimates.")


def _tags(model: PovertyModel, cell_size_m: float) -> dict[str, str]:
    tags = {} if model.domain is None else model.domain.legend_tags()
    if model.scores.interval_80 is not None:
        tags["INTERVAL_80"] = f"{model.scores.interval_80:.6g}"
    return {
        **tags, "QUANTITY": model.target.name, "UNIT": model.target.unit, "MODEL": model.name,
        "MODEL_EXTRACTOR": model.extractor.kind, "SOURCE_NIGHTLIGHTS": model.extractor.lights_file,
        "LIGHTS_YEAR": str(model.extractor.lights_year), "CELL_SIZE_M": f"{cell_size_m:g}", "SOFTWARE": "QGIS plugin Poverty Mapper",
    }


def predict_lights_map(
    request: LightsMapRequest, progress: ProgressCallback | None = None, is_canceled: CancelCheck | None = None,
) -> LightsMapResult:
    """Write the map of ``request`` (module docstring); raises
    :class:`~..imagery.bundled_lights.OutsideCoverage` for a region the lights do not
    cover, :class:`~..errors.Canceled` when ``is_canceled`` says so (no file is left)."""
    progress, is_canceled = progress or (lambda _f: None), is_canceled or (lambda: False)
    model = request.model
    _check_model(model)
    out_path = Path(request.output_path)
    check_output_path(out_path)
    crs = CRS.from_user_input(request.crs)
    cell_m = request.cell_size_m or model.tile_size_m
    grid = lights_map_grid(request.bounds, crs, cell_m)
    check_memory(len(grid) * BYTES_PER_CELL, f"Mapping {grid.width:,} x {grid.height:,} cells",
                 "Choose larger cells or a smaller region.")
    cell_mask = _cell_mask(grid, request)
    reading = CellReading((model.domain.outcome_min, model.domain.outcome_max) if model.domain else None,
                          model.feature_domain, model.scores.interval_80)
    extractor, total = model.extractor, int(cell_mask.sum())
    with BundledLights() as lights, estimate_raster(out_path, crs, grid, cell_mask, reading) as writer:
        xs, ys = grid.transform * (np.array([0.5, grid.width - 0.5] * 2), np.array([0.5] * 2 + [grid.height - 0.5] * 2))
        extractor.features_at(lights, xs, ys, crs)  # the region's corners: refused at once where not covered
        done = 0
        for top in range(0, grid.height, ROWS_PER_BAND):
            if is_canceled():
                raise Canceled()
            rows, cols = np.nonzero(cell_mask[top:top + ROWS_PER_BAND])
            rows = rows + top
            if rows.size:
                cx, cy = grid.transform * (cols + 0.5, rows + 0.5)
                features = extractor.features_at(lights, cx, cy, crs)
                values = model.regressor.predict(features)[:, None]
                if model.feature_domain is not None:
                    values = np.column_stack([values, model.feature_domain.coordinates(features)])
                writer.add(list(zip(rows.tolist(), cols.tolist())), values)
            done += rows.size
            progress(done / max(1, total))
        summary = writer.finish(f"{model.target.name} ({model.target.unit})", _tags(model, cell_m))
    return LightsMapResult(str(out_path), len(grid), summary.n_estimated, summary.value_min, summary.value_max,
                           summary.value_mean, summary.n_outside_range, summary.n_out_of_domain,
                           extractor.lights_year)
