"""Nighttime lights aggregated to the footprints of tiles or boxes, from a raster of
any CRS and resolution."""
from __future__ import annotations

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject

from ..errors import PovertyMapperError
from .tile_reader import open_raster


def mean_lights_on_grid(path: str, transform: Affine, shape: tuple[int, int], crs: CRS) -> np.ndarray:
    """Mean nightlight value over each cell of a grid (NaN where the raster has no data)."""
    with open_raster(path, "nightlights raster") as src:
        if src.crs is None:
            raise PovertyMapperError(
                f"The nightlights raster {path} has no coordinate reference system; assign one first."
            )
        out = np.full(shape, np.nan, np.float32)
        reproject(
            source=rasterio.band(src, 1),
            destination=out,
            src_transform=src.transform,
            src_crs=src.crs,
            src_nodata=src.nodata,
            dst_transform=transform,
            dst_crs=crs,
            dst_nodata=np.nan,
            resampling=Resampling.average,
        )
    out[~np.isfinite(out)] = np.nan
    return out
