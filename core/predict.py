"""Mapping: run a model over every tile of a region and write the estimate raster."""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import rasterio
import torch
from rasterio.features import rasterize

from .atomic import atomic_output
from .bands import check_band_indexes, guess_band_indexes
from .device import device_name, resolve_device
from .errors import Canceled, PovertyMapperError
from .model_file import PovertyModel
from .radiometry import Radiometry, resolve_radiometry
from .tile_reader import TileReader, read_batch
from .tiling import TileGrid, region_window, tile_grid_for

log = logging.getLogger("poverty_mapper")

NODATA = -9999.0
ProgressCallback = Callable[[float], None]
CancelCheck = Callable[[], bool]


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
    batch_size: int = 64
    min_valid_fraction: float = 0.5


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


def _output_profile(ds: rasterio.io.DatasetReader, grid: TileGrid) -> dict:
    height, width = grid.shape
    profile = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": 1,
        "width": width,
        "height": height,
        "crs": ds.crs,
        "transform": grid.transform,
        "nodata": NODATA,
        "compress": "deflate",
        "predictor": 3,
    }
    if width >= 256 and height >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    return profile


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
    if request.batch_size < 1:
        raise PovertyMapperError("The batch size must be at least 1.")
    out_path = Path(request.output_path)
    if not out_path.parent.is_dir():
        raise PovertyMapperError(f"The output folder {out_path.parent} does not exist; choose an existing folder.")
    if not os.access(out_path.parent, os.W_OK):
        raise PovertyMapperError(f"The output folder {out_path.parent} is not writable; choose another output file.")

    try:
        ds = rasterio.open(request.raster_path)
    except rasterio.errors.RasterioIOError as exc:
        raise PovertyMapperError(f"Cannot open the raster {request.raster_path}: {exc}") from exc
    with ds:
        if request.band_indexes is None:
            bands = guess_band_indexes(model.bands, ds.descriptions, [ci.name for ci in ds.colorinterp])
        else:
            bands = check_band_indexes(request.band_indexes, model.bands, ds.count)
        radiometry = resolve_radiometry(request.radiometry, ds.dtypes[bands[0] - 1])
        region = region_window(ds.transform, ds.width, ds.height, request.bounds)
        grid = tile_grid_for(ds.transform, ds.crs, region, model.tile_size_m, request.stride_m)
        cell_mask = _mask_cells(grid, request.mask_geometries)
        reader = TileReader(ds, bands, model.tile_size_px, radiometry)
        weights, bias = model.regressor.folded()
        w = torch.as_tensor(weights, dtype=torch.float32, device=device)
        notes = [radiometry.note] if radiometry.note else []
        log.info(
            "Mapping %s: %d x %d cells of %.0f m, bands %s, %s, on %s",
            request.raster_path, grid.width, grid.height, grid.step_x * abs(ds.transform.a),
            bands, radiometry.key, device_name(device),
        )

        with atomic_output(out_path, ".tif") as tmp, rasterio.open(tmp, "w", **_output_profile(ds, grid)) as dst:
            stats = _run_tiles(grid, cell_mask, reader, model, w, bias, device, request, dst, progress, is_canceled)
            dst.set_band_description(1, f"{model.target.name} ({model.target.unit})")
            dst.update_tags(
                QUANTITY=model.target.name,
                UNIT=model.target.unit,
                MODEL=model.name,
                MODEL_EXTRACTOR=model.extractor.kind,
                SOURCE_RASTER=os.path.basename(request.raster_path),
                SOURCE_BANDS=",".join(map(str, bands)),
                RADIOMETRY=radiometry.key,
                TILE_SIZE_M=f"{model.tile_size_m:g}",
                CELL_SIZE_M=f"{(request.stride_m or model.tile_size_m):g}",
                SOFTWARE="QGIS plugin Poverty Mapper",
            )

    n_estimated, vmin, vmax, vmean = stats
    if n_estimated == 0:
        notes.append(
            "No tile had enough valid pixels: the output holds only nodata. Check the band "
            "mapping, the radiometry and that the region covers imagery."
        )
    return PredictResult(
        output_path=str(out_path),
        n_cells=len(grid),
        n_estimated=n_estimated,
        device=device_name(device),
        band_indexes=bands,
        radiometry=radiometry,
        value_min=vmin,
        value_max=vmax,
        value_mean=vmean,
        notes=tuple(notes),
    )


def _run_tiles(grid, cell_mask, reader, model, w, bias, device, request, dst, progress, is_canceled):
    """Estimate every cell in batches, writing each output row once it is complete."""
    height, width = grid.shape
    pending_rows: dict[int, np.ndarray] = {}
    next_row = 0
    total = len(grid)
    done = 0
    count, vsum, vmin, vmax = 0, 0.0, math.inf, -math.inf
    min_valid = request.min_valid_fraction * model.tile_size_px**2

    def flush(upto_row: int) -> None:
        nonlocal next_row
        while next_row < upto_row:
            values = pending_rows.pop(next_row)
            dst.write(values[None, :], 1, window=rasterio.windows.Window(0, next_row, width, 1))
            next_row += 1

    batch: list[tuple[int, int]] = []
    cells = iter(grid.cells())
    while True:
        cell = next(cells, None)
        if cell is not None:
            row, col = cell
            pending_rows.setdefault(row, np.full(width, NODATA, np.float32))
            if cell_mask[row, col]:
                batch.append(cell)
        if batch and (len(batch) >= request.batch_size or cell is None):
            if is_canceled():
                raise Canceled()
            pixels, valid = read_batch(reader, [grid.tile_window(r, c) for r, c in batch], device)
            with torch.inference_mode():
                feats = model.extractor.extract(pixels, valid)
                values = (feats.float() @ w + bias).cpu().numpy()
            enough = valid.flatten(1).sum(1).cpu().numpy() >= min_valid
            for (r, c), v, ok in zip(batch, values, enough):
                if ok and np.isfinite(v):
                    pending_rows[r][c] = v
                    count += 1
                    vsum += float(v)
                    vmin, vmax = min(vmin, float(v)), max(vmax, float(v))
            batch = []
        if cell is None:
            flush(height)
            break
        done += 1
        if done % width == 0:
            progress(done / total)
        # Rows before the first cell still waiting in the batch are complete.
        flush(batch[0][0] if batch else cell[0])
    progress(1.0)
    if count == 0:
        return 0, None, None, None
    return count, vmin, vmax, vsum / count
