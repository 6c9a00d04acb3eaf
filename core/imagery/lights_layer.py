"""A night-lights layer read beside the imagery, for models with a NIGHTLIGHTS band.

A model band named ``NIGHTLIGHTS`` is not a band of the imagery: it is read from a
separate night-lights raster (e.g. a VIIRS annual composite in EPSG:4326), warped on
the fly onto the imagery's pixel grid with nearest-neighbour resampling (as Earth
Engine upsampled the lights of the LSMS training tiles), so that the same tile window
reads both. The imagery still defines the grid, the region and the cells. The lights
are read as they are, in the product's units (times the file's own scale and offset,
where it declares them); the model's feature extractor standardizes them.
A pixel is valid where both the imagery and the lights are.

Such a model reads radiance: a colour composite (a rendering for display) is refused, and
so is a layer without a single non-negative value over the imagery.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

from ..errors import PovertyMapperError
from .nightlights import is_colour_composite
from .radiometry import Radiometry
from .tile_reader import TileReader, open_raster
from .tiling import PixelWindow

NIGHTLIGHTS_BAND = "NIGHTLIGHTS"


def uses_nightlights(bands: Sequence[str]) -> bool:
    """Whether a model with ``bands`` reads a night-lights layer."""
    return NIGHTLIGHTS_BAND in bands


def image_bands(bands: Sequence[str]) -> tuple[str, ...]:
    """The model's bands that come from the imagery (all but NIGHTLIGHTS)."""
    return tuple(b for b in bands if b != NIGHTLIGHTS_BAND)


@dataclass(frozen=True)
class LightsInput:
    """The night-lights layer of a run: its file, and where its band goes among the model's bands."""

    path: str
    position: int


def open_lights(path: str) -> rasterio.io.DatasetReader:
    ds = open_raster(path, "night-lights layer")
    if ds.crs is None:
        ds.close()
        raise PovertyMapperError(
            f"The night-lights layer {path} has no coordinate reference system; assign one first "
            "(VIIRS composites are usually EPSG:4326)."
        )
    return ds


def check_lights_overlap(lights: rasterio.io.DatasetReader, imagery: rasterio.io.DatasetReader) -> None:
    """Refuse a night-lights layer that does not overlap the imagery (compared in the lights' CRS)."""
    west, south, east, north = transform_bounds(imagery.crs, lights.crs, *imagery.bounds, densify_pts=21)
    lw, ls, le, ln = lights.bounds
    if min(east, le) <= max(west, lw) or min(north, ln) <= max(south, ls):
        raise PovertyMapperError(
            f"The night-lights layer {lights.name} does not overlap the satellite image {imagery.name}: "
            "choose a night-lights raster that covers the image's area."
        )


SAMPLE_PX = 256  # the lights over the imagery are checked on at most this many pixels a side


def check_lights_are_radiance(lights: rasterio.io.DatasetReader, imagery: rasterio.io.DatasetReader,
                              expected: str) -> None:
    """Refuse a night-lights layer that cannot be radiance: a colour composite (its band 1 is a
    display colour, not nW/cm²/sr), or one whose values over the imagery are all negative.
    ``expected``: what the model reads, in words (the product and its units)."""
    name = lights.name
    if is_colour_composite(lights):
        raise PovertyMapperError(
            f"The night-lights layer {name} is a colour composite ({lights.count} bands of "
            f"{lights.dtypes[0]}, e.g. a Black Marble RGB image rendered for display), not radiance: its "
            f"colours are not the values the model reads. Give a single-band radiance raster instead: {expected}."
        )
    values = _lights_over(lights, imagery)
    if values.size and float(values.max()) < 0:
        raise PovertyMapperError(
            f"The night-lights layer {name} holds only negative values over the image (at most "
            f"{float(values.max()):.3g}): radiance cannot be negative everywhere (a logarithm, an anomaly "
            f"or a standardized product?). Give {expected} instead."
        )


def _lights_over(lights: rasterio.io.DatasetReader, imagery: rasterio.io.DatasetReader) -> np.ndarray:
    """The valid values of band 1 (in the product's units) over the imagery, read on at most
    :data:`SAMPLE_PX` x :data:`SAMPLE_PX` pixels."""
    bounds = transform_bounds(imagery.crs, lights.crs, *imagery.bounds, densify_pts=21)
    try:
        window = from_bounds(*bounds, transform=lights.transform)
        window = window.intersection(Window(0, 0, lights.width, lights.height))
    except rasterio.errors.WindowError:
        return np.empty(0, np.float32)
    window = window.round_offsets().round_lengths()
    shape = (max(1, min(int(window.height), SAMPLE_PX)), max(1, min(int(window.width), SAMPLE_PX)))
    data = lights.read(1, window=window, out_shape=shape, masked=True, resampling=Resampling.nearest)
    values = lights_radiometry(lights).apply(np.ma.filled(data.astype(np.float64), np.nan))
    return values[np.isfinite(values)]


def lights_on_grid(lights: rasterio.io.DatasetReader, imagery: rasterio.io.DatasetReader) -> WarpedVRT:
    """The lights on the imagery's pixel grid (float32, NaN where the lights have no data)."""
    return WarpedVRT(
        lights, crs=imagery.crs, transform=imagery.transform, width=imagery.width, height=imagery.height,
        resampling=Resampling.nearest, src_nodata=lights.nodata, nodata=np.nan, dtype="float32",
        tolerance=1e-6,  # about the exact transformation: each pixel takes the light of the place at its centre
    )


# The lights are sampled on at most this many points a side of the imagery's grid to
# tell, before mapping, where they have data and whether they vary.
_SAMPLE_SIDE = 256


def lights_over_imagery(lights: rasterio.io.DatasetReader, imagery: rasterio.io.DatasetReader) -> tuple[float, float | None]:
    """The share of the imagery's area where the lights have data, and their one value
    there when they do not vary (else None); sampled on a grid of the imagery's extent."""
    with lights_on_grid(lights, imagery) as vrt:
        shape = (min(imagery.height, _SAMPLE_SIDE), min(imagery.width, _SAMPLE_SIDE))
        values = vrt.read(1, out_shape=shape, resampling=Resampling.nearest)
    found = values[np.isfinite(values)]
    covered = found.size / values.size
    return covered, (float(found[0]) if found.size and np.ptp(found) == 0 else None)


def lights_notes(lights: rasterio.io.DatasetReader, imagery: rasterio.io.DatasetReader) -> tuple[str, ...]:
    """Refuse lights without data over the imagery; notes for lights over part of it, or
    lights of one value (a layer of 1 x 1 pixels, say), which tell no place from another."""
    covered, constant = lights_over_imagery(lights, imagery)
    size = f"{lights.width} x {lights.height} pixels"
    if covered == 0:
        raise PovertyMapperError(
            f"The night-lights layer {lights.name} ({size}) has no data over the image: every pixel there is nodata. "
            "Choose a night-lights raster with values over this area."
        )
    notes = []
    if covered < 0.99:
        notes.append(f"The night-lights layer has data over only about {covered:.0%} of the image: cells elsewhere "
                     "get no estimate. Choose a night-lights raster that covers the whole image to map it all.")
    if constant is not None:
        notes.append(f"The night-lights layer holds one value ({constant:g}) over the whole image ({size}): the "
                     "lights tell no place from another, so estimates differ only by the imagery.")
    return tuple(notes)


def lights_radiometry(lights: rasterio.io.DatasetReader) -> Radiometry:
    """Band 1's values in the product's units: the file's own scale and offset, where it declares them."""
    scale = float(lights.scales[0]) if lights.scales and lights.scales[0] else 1.0
    offset = float(lights.offsets[0]) if lights.offsets else 0.0
    return Radiometry("nightlights", "night-light values as read", scale, offset)


class ImageryWithLights:
    """Tiles of the imagery's bands (as reflectance) with the lights band at its place among
    the model's bands, as float32; a pixel is valid where both sources are.

    A lights-only model reads the imagery's band 1 for its validity alone."""

    dtype = np.dtype(np.float32)

    def __init__(
        self, imagery: rasterio.io.DatasetReader, lights_on_grid: WarpedVRT, band_indexes: Sequence[int],
        size: int, radiometry: Radiometry, lights_scaling: Radiometry, position: int,
    ):
        self.image = TileReader(imagery, band_indexes or (1,), size, radiometry)
        self.lights = TileReader(lights_on_grid, (1,), size, lights_scaling)
        self.keep_image = bool(band_indexes)
        self.position = position

    def read_dn_into(self, window: PixelWindow, out: np.ndarray, valid: np.ndarray) -> None:
        """Values [model bands, size, size] and valid [size, size] into ``out`` and ``valid``; 0 where invalid."""
        reflectance, ok = self.image.read(window)
        lights, lit = self.lights.read(window)
        ok &= lit
        if self.keep_image:
            out[[i for i in range(out.shape[0]) if i != self.position]] = reflectance
        out[self.position] = lights[0]
        out[:, ~ok] = 0.0
        valid[...] = ok
