"""Mapping: run a model over every tile of a region and write the estimate raster."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import rasterio
from rasterio.features import rasterize

from ..imagery.bands import check_band_indexes, guess_band_indexes
from ..device import device_name, resolve_device
from ..errors import Canceled, PovertyMapperError
from ..models.model_file import PovertyModel
from ..imagery.radiometry import Radiometry, resolve_radiometry
from ..imagery.prefetch import PrefetchingReader
from ..imagery.tile_reader import open_raster
from ..imagery.tiling import TileGrid, region_window, tile_grid_for
from .estimate import estimate_batch
from .plan import RunPlan, plan_run, torch_threads
from .writer import RowWriter, check_output_path, estimate_raster, map_tags

log = logging.getLogger("poverty_mapper")

ProgressCallback = Callable[[float], None]
CancelCheck = Callable[[], bool]

# GDAL's block cache while mapping: tiles are read about once, so a small cache does
# (GDAL's default, 5% of RAM, made memory grow with the raster up to that size).
READ_CACHE_BYTES = 64 * 2**20


@dataclass(frozen=True)
class PredictRequest:
    """Everything one prediction run needs; geometry is in the raster's CRS."""

    raster_path: str
    output_path: str
    model: PovertyModel
    bounds: tuple[float, float, float, float] | None = None
    mask_geometries: tuple[dict, ...] | None = None  # GeoJSON-like polygons
    band_indexes: tuple[int, ...] | None = None  # 1-based, one per model band; None = guess
    radiometry: str = "auto"
    stride_m: float | None = None  # None = tile size
    device: str = "auto"
    batch_size: int = 0  # tiles per batch; 0 = automatic (auto_batch_size)
    min_valid_fraction: float = 0.5
    mixed_precision: bool = True  # bf16 for cnn/random features where the hardware is fast at it
    read_workers: int | None = None  # reader threads (0 = read in the calling thread; None = automatic)
    prefetch_batches: int = 4  # batches read ahead of the model


@dataclass(frozen=True)
class PredictResult:
    output_path: str
    n_cells: int
    n_estimated: int
    device: str
    band_indexes: tuple[int, ...]
    radiometry: Radiometry
    value_min: float | None
    value_max: float | None
    value_mean: float | None
    notes: tuple[str, ...] = field(default_factory=tuple)


def _mask_cells(grid: TileGrid, geometries: Iterable[dict] | None) -> np.ndarray:
    """True for output cells whose centre lies inside the mask polygons (all, without a mask)."""
    if geometries is None:
        return np.ones(grid.shape, bool)
    geometries = list(geometries)
    if not geometries:
        raise PovertyMapperError("The mask layer has no polygons (or none selected); choose polygons to map.")
    burned = rasterize(
        ((g, 1) for g in geometries), out_shape=grid.shape, transform=grid.transform, fill=0, dtype="uint8"
    )
    return burned.astype(bool)


def _check_image_holds_a_tile(
    width: int, height: int, grid: TileGrid, tile_size_m: float, min_valid_fraction: float
) -> None:
    """Refuse an image so small that no tile can reach the valid fraction an estimate
    needs: the largest share of a tile it can fill is min(1, width / tile) x min(1,
    height / tile), in x and y apart."""
    fill = min(1.0, width / grid.tile_x) * min(1.0, height / grid.tile_y)
    if fill >= min_valid_fraction:
        return
    km_x = width / grid.tile_x * tile_size_m / 1000
    km_y = height / grid.tile_y * tile_size_m / 1000
    digits = 1 if min(km_x, km_y) >= 1 else 2
    raise PovertyMapperError(
        f"The image covers {km_x:.{digits}f} x {km_y:.{digits}f} km, smaller than one {tile_size_m / 1000:g} km "
        f"tile of the model; no tile can have the {min_valid_fraction:.0%} of valid pixels an "
        "estimate needs. Use a larger image, or fit a model with smaller tiles "
        "('Fit poverty model on survey clusters', tile size)."
    )


def predict_poverty_map(
    request: PredictRequest,
    progress: ProgressCallback | None = None,
    is_canceled: CancelCheck | None = None,
) -> PredictResult:
    """Write the estimate raster for ``request``; returns what was done.

    The output is written to a temporary file beside the destination and renamed
    into place only when complete: a failed or canceled run leaves any earlier file
    of the same name untouched and no partial file behind.
    """
    progress = progress or (lambda _f: None)
    is_canceled = is_canceled or (lambda: False)
    model = request.model
    if not model.can_predict:
        raise PovertyMapperError(
            f"The model '{model.name}' holds only a feature extractor; fit it on survey clusters "
            "('Fit poverty model on survey clusters') and map with the model file that writes."
        )
    device = resolve_device(request.device)
    plan = plan_run(
        device, model.extractor.kind, request.batch_size, request.read_workers,
        request.prefetch_batches, request.mixed_precision,
    )
    out_path = Path(request.output_path)
    check_output_path(out_path)

    with open_raster(request.raster_path) as ds:
        if request.band_indexes is None:
            bands = guess_band_indexes(model.bands, ds.descriptions, [ci.name for ci in ds.colorinterp])
        else:
            bands = check_band_indexes(request.band_indexes, model.bands, ds.count)
        radiometry = resolve_radiometry(request.radiometry, ds.dtypes[bands[0] - 1], model.radiometry)
        region = region_window(ds.transform, ds.width, ds.height, request.bounds)
        grid = tile_grid_for(ds.transform, ds.crs, region, model.tile_size_m, request.stride_m)
        _check_image_holds_a_tile(ds.width, ds.height, grid, model.tile_size_m, request.min_valid_fraction)
        cell_mask = _mask_cells(grid, request.mask_geometries)
        notes = [radiometry.note] if radiometry.note else []
        log.info(
            "Mapping %s: %d x %d cells of %.0f m, bands %s, %s, on %s",
            request.raster_path, grid.width, grid.height, grid.step_x * abs(ds.transform.a),
            bands, radiometry.key, device_name(device),
        )

        prefetch = PrefetchingReader(
            request.raster_path, bands, model.tile_size_px, radiometry, plan.read_workers, plan.prefetch_batches
        )
        tags = map_tags(model, request.raster_path, bands, radiometry, request.stride_m or model.tile_size_m)
        with prefetch, torch_threads(plan.torch_threads), rasterio.Env(GDAL_CACHEMAX=READ_CACHE_BYTES), estimate_raster(out_path, ds.crs, grid, cell_mask) as writer:
            _run_tiles(grid, cell_mask, prefetch, model, plan, request, writer, progress, is_canceled)
            summary = writer.finish(f"{model.target.name} ({model.target.unit})", tags)

    if summary.n_estimated == 0:
        notes.append(
            "No tile had enough valid pixels: the output holds only nodata. Check the band "
            "mapping, the radiometry and that the region covers imagery."
        )
    return PredictResult(
        output_path=str(out_path),
        n_cells=len(grid),
        n_estimated=summary.n_estimated,
        device=device_name(device),
        band_indexes=bands,
        radiometry=radiometry,
        value_min=summary.value_min,
        value_max=summary.value_max,
        value_mean=summary.value_mean,
        notes=tuple(notes),
    )


def _cell_batches(cell_mask: np.ndarray, batch_size: int) -> Iterator[list[tuple[int, int]]]:
    """Cells inside the mask, row-major, in batches."""
    rows, cols = np.nonzero(cell_mask)
    for start in range(0, rows.size, batch_size):
        yield list(zip(rows[start : start + batch_size].tolist(), cols[start : start + batch_size].tolist()))


def _run_tiles(grid, cell_mask, prefetch, model, plan: RunPlan, request, writer: RowWriter, progress, is_canceled):
    """Estimate every cell in batches, read ahead in threads, written row by row."""
    total = max(1, int(cell_mask.sum()))
    done = 0
    min_valid = request.min_valid_fraction * model.tile_size_px**2
    batches = _cell_batches(cell_mask, plan.batch_size)
    for batch, dn, valid in prefetch.map(batches, lambda b: [grid.tile_window(r, c) for r, c in b]):
        if is_canceled():
            raise Canceled()
        values = estimate_batch(model, dn, valid, prefetch.radiometry, plan)
        enough = valid.reshape(len(batch), -1).sum(1) >= min_valid
        writer.add(batch, np.where(enough, values, np.nan))
        done += len(batch)
        progress(done / total)
    progress(1.0)
