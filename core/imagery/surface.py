"""Water and cloud, per map cell: places where a poverty estimate means nothing.

A model fitted on survey clusters has never been asked about a reservoir or a cloud,
and answers anyway (on a real Landsat scene reservoir cells got wealthier values than
the land around them; a bright cloud block the highest of the map). Before mapping, each
cell's pixels are sampled on a coarse raster (:data:`SAMPLES` x :data:`SAMPLES` per
cell) and tested with plain spectral rules on reflectance (the run's radiometry):

- water: NDWI = (GREEN - NIR) / (GREEN + NIR) > 0 (McFeeters 1996). Needs a green and a
  near-infrared band; imagery without NIR is not searched for water (the run says so).
- cloud: bright, white and hazy, the whiteness and haze tests of Fmask (Zhu & Woodcock
  2012) with a brightness floor: mean visible reflectance above :data:`CLOUD_BRIGHTNESS`
  (:data:`CLOUD_BRIGHTNESS_8BIT` for 8-bit display imagery, whose stretch makes ordinary
  roofs bright), sum of |band - mean| / mean below 0.7, BLUE - 0.5 RED > 0.08.

A cell where at least :data:`MOSTLY` of the valid samples are water (cloud) gets no
estimate and the quality code for water (cloud). These are screening rules, not a
water or cloud product: thin cloud, haze, cloud shadow, turbid or narrow water pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import from_bounds

from ..errors import PovertyMapperError
from .bands import known_band
from .radiometry import EIGHT_BIT, Radiometry
from .tile_reader import band_descriptions
from .tiling import TileGrid

SAMPLES = 16  # samples per cell side
MOSTLY = 0.5  # share of a cell's valid samples that makes it water (cloud)
CLOUD_BRIGHTNESS = 0.3
CLOUD_BRIGHTNESS_8BIT = 0.8
CLOUD_WHITENESS = 0.7
HAZE_OFFSET = 0.08
ROWS_PER_READ = 32  # cell rows sampled at a time (memory: rows x width x SAMPLES² x bands)


@dataclass(frozen=True)
class SurfaceBands:
    """1-based raster band numbers of the bands the tests need (None where missing)."""

    blue: int | None = None
    green: int | None = None
    red: int | None = None
    nir: int | None = None

    @property
    def can_see_water(self) -> bool:
        return self.green is not None and self.nir is not None

    @property
    def can_see_cloud(self) -> bool:
        return None not in (self.blue, self.green, self.red)


def surface_bands(ds, model_bands: tuple[str, ...], band_indexes: tuple[int, ...]) -> SurfaceBands:
    """The raster's blue, green, red and NIR bands: from the run's band mapping for the
    model's own bands, else from the raster's band descriptions and colour interpretation."""
    found: dict[str, int] = {}
    for name, index in zip(model_bands, band_indexes):
        found.setdefault(name.upper(), index)
    for i, desc in enumerate(band_descriptions(ds)):
        kind = known_band(desc)
        if kind:
            found.setdefault(kind, i + 1)
    for i, ci in enumerate(ds.colorinterp):
        if ci.name.upper() in ("RED", "GREEN", "BLUE"):
            found.setdefault(ci.name.upper(), i + 1)
    return SurfaceBands(found.get("BLUE"), found.get("GREEN"), found.get("RED"), found.get("NIR"))


def surface_codes(
    ds: rasterio.io.DatasetReader,
    grid: TileGrid,
    cell_mask: np.ndarray,
    bands: SurfaceBands,
    radiometry: Radiometry,
    water_code: int,
    cloud_code: int,
) -> np.ndarray:
    """Per cell of ``grid`` (uint8): ``water_code`` or ``cloud_code`` for the cells of
    ``cell_mask`` that are mostly water or cloud, 0 elsewhere."""
    codes = np.zeros(grid.shape, np.uint8)
    if not (bands.can_see_water or bands.can_see_cloud) or not cell_mask.any():
        return codes
    wanted = sorted({b for b in (bands.blue, bands.green, bands.red, bands.nir) if b is not None})
    brightness = CLOUD_BRIGHTNESS_8BIT if radiometry.key == EIGHT_BIT.key else CLOUD_BRIGHTNESS
    rows_with_cells = np.flatnonzero(cell_mask.any(axis=1))
    for r0 in range(int(rows_with_cells[0]), int(rows_with_cells[-1]) + 1, ROWS_PER_READ):
        r1 = min(r0 + ROWS_PER_READ, grid.height)
        refl, valid = _sample(ds, grid, r0, r1, wanted, radiometry)
        band = {b: refl[wanted.index(b)] for b in wanted}
        shape = (r1 - r0, SAMPLES, grid.width, SAMPLES)
        n_valid = valid.reshape(shape).sum(axis=(1, 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            if bands.can_see_water:
                g, n = band[bands.green], band[bands.nir]
                water = valid & ((g - n) / (g + n) > 0.0)
                share = water.reshape(shape).sum(axis=(1, 3)) / np.maximum(n_valid, 1)
                codes[r0:r1][(n_valid > 0) & (share >= MOSTLY)] = water_code
            if bands.can_see_cloud:
                b, g, r = band[bands.blue], band[bands.green], band[bands.red]
                mean = (b + g + r) / 3.0
                white = (np.abs(b - mean) + np.abs(g - mean) + np.abs(r - mean)) / mean < CLOUD_WHITENESS
                cloud = valid & (mean > brightness) & white & (b - 0.5 * r > HAZE_OFFSET)
                share = cloud.reshape(shape).sum(axis=(1, 3)) / np.maximum(n_valid, 1)
                cloudy = (n_valid > 0) & (share >= MOSTLY) & (codes[r0:r1] == 0)
                codes[r0:r1][cloudy] = cloud_code
    return np.where(cell_mask, codes, 0).astype(np.uint8)


def _sample(
    ds, grid: TileGrid, r0: int, r1: int, bands: list[int], radiometry: Radiometry
) -> tuple[np.ndarray, np.ndarray]:
    """Reflectance [bands, rows, cols] and validity of the cells of rows r0..r1 sampled
    SAMPLES x SAMPLES per cell (nearest pixel)."""
    left, top = grid.transform * (0, r0)
    right, bottom = grid.transform * (grid.width, r1)
    window = from_bounds(min(left, right), min(top, bottom), max(left, right), max(top, bottom), ds.transform)
    shape = ((r1 - r0) * SAMPLES, grid.width * SAMPLES)
    try:
        dn = ds.read(bands, window=window, out_shape=(len(bands), *shape), boundless=True, fill_value=0,
                     resampling=Resampling.nearest)
        masks = ds.read_masks(bands, window=window, out_shape=(len(bands), *shape), boundless=True,
                              resampling=Resampling.nearest)
    except RasterioError as exc:
        raise PovertyMapperError(
            f"Cannot read the raster {ds.name} (looking for water and cloud): {exc.__cause__ or exc}. The file "
            "is damaged or incomplete (e.g. a copy or download cut short); copy or export it again."
        ) from exc
    valid = np.all(masks > 0, axis=0)
    if ds.nodata is None and radiometry.fill_value is not None:
        valid &= ~np.all(dn == radiometry.fill_value, axis=0)
    refl = radiometry.apply(dn)
    valid &= np.all(np.isfinite(refl), axis=0)
    return refl, valid
