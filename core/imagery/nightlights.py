"""Nighttime lights aggregated to the footprints of tiles or boxes, from a raster of
any CRS and resolution.

A single-band raster (VIIRS or DMSP radiance) is used as it is. A colour composite
(:func:`is_colour_composite`, e.g. NASA's Black Marble images) is not radiance: its
luminance ``0.2126 R + 0.7152 G + 0.0722 B`` (Rec. 709) serves as an ordinal intensity.
Anything else: band 1. Models that read radiance refuse a colour composite
(:mod:`.lights_layer`): one rule says what a layer is, for every reader.
"""
from __future__ import annotations

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.warp import reproject

from ..errors import PovertyMapperError
from .tile_reader import open_raster


LUMINANCE_WEIGHTS = (0.2126, 0.7152, 0.0722)  # Rec. 709, of red, green, blue
_RGB = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)


def is_colour_composite(src: rasterio.io.DatasetReader) -> bool:
    """Whether a night-lights raster is a colour rendering (e.g. a Black Marble RGB image)
    rather than radiance: three or more bands whose first three are marked red, green and blue."""
    return src.count >= 3 and tuple(src.colorinterp[:3]) == _RGB


def light_bands(src: rasterio.io.DatasetReader) -> dict[int, float]:
    """Band number -> weight of the nightlight intensity: the luminance of a colour
    composite, else band 1."""
    if is_colour_composite(src):
        return dict(zip((1, 2, 3), LUMINANCE_WEIGHTS))
    return {1: 1.0}


def describe_lights(path: str) -> str:
    """What the nightlight values of ``path`` are, in words (for reports and model cards)."""
    with open_raster(path, "nightlights raster") as src:
        if len(light_bands(src)) == 3:
            return f"luminance of an 8-bit colour composite ({src.dtypes[0]}), an ordinal intensity, not radiance"
        return f"band 1 as radiance ({src.dtypes[0]}, e.g. VIIRS nW/cm2/sr or DMSP digital numbers)"


def mean_lights_on_grid(path: str, transform: Affine, shape: tuple[int, int], crs: CRS) -> np.ndarray:
    """Mean nightlight value over each cell of a grid (NaN where the raster has no data)."""
    with open_raster(path, "nightlights raster") as src:
        if src.crs is None:
            raise PovertyMapperError(
                f"The nightlights raster {path} has no coordinate reference system; assign one first."
            )
        total = np.zeros(shape, np.float64)
        for band, weight in light_bands(src).items():
            out = np.full(shape, np.nan, np.float32)
            reproject(
                source=rasterio.band(src, band),
                destination=out,
                src_transform=src.transform,
                src_crs=src.crs,
                src_nodata=src.nodata,
                dst_transform=transform,
                dst_crs=crs,
                dst_nodata=np.nan,
                resampling=Resampling.average,
            )
            total += weight * out  # the mean of a weighted sum is the weighted sum of means
    total[~np.isfinite(total)] = np.nan
    return total.astype(np.float32)
