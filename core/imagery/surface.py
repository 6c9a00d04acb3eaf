"""Water and cloud, per map cell: places where a poverty estimate means nothing.

A model fitted on survey clusters has never been asked about a reservoir or a cloud,
and answers anyway (on a real Landsat scene reservoir cells got wealthier values than
the land around them; a bright cloud block the highest of the map). Before mapping, each
cell's pixels are sampled on a coarse raster (:data:`SAMPLES` x :data:`SAMPLES` per
cell) and tested with plain spectral rules on reflectance (the run's radiometry):

- water: NDWI = (GREEN - NIR) / (GREEN + NIR) > 0 (McFeeters 1996). Needs a green and a
  near-infrared band; imagery without NIR is not searched for water (the run says so).
- cloud: bright, white and hazy, the whiteness and haze tests of Fmask (Zhu & Woodcock
  2012) with a brightness floor: mean visible reflectance above :data:`CLOUD_BRIGHTNESS`,
  sum of |band - mean| / mean below 0.7, BLUE - 0.5 RED > 0.08. For 8-bit display imagery
  the floor is the scene's own: every visible band within :data:`TOP_TOLERANCE` levels of
  the highest level that band reaches in the whole image (:func:`eight_bit_cloud_floor`).
  A display render clips cloud at its top level whatever its stretch, while a fixed floor
  followed the stretch: a histogram equalization lifted bright roofs above it, a gain of
  0.8 put cloud below it.

A cell where at least :data:`MOSTLY` of the valid samples are water (cloud) gets no
estimate and the quality code for water (cloud). These are screening rules, not a
water or cloud product: thin cloud, haze, cloud shadow, turbid or narrow water pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioError
from rasterio.windows import Window, from_bounds

from ..errors import PovertyMapperError
from .bands import known_band
from .radiometry import EIGHT_BIT, Radiometry
from .tile_reader import band_descriptions
from .tiling import TileGrid

SAMPLES = 16  # samples per cell side
MOSTLY = 0.5  # share of a cell's valid samples that makes it water (cloud)
CLOUD_BRIGHTNESS = 0.3
TOP_TOLERANCE = 5  # 8-bit levels below a band's top level that still count as clipped
TOP_SHARE = 1e-4  # share of the sampled pixels a band's top level must hold (not a stray pixel)
TOP_WINDOWS = 8  # windows per side sampled over the whole image for the 8-bit top levels
TOP_WINDOW_PX = 64
CLOUD_WHITENESS = 0.7
HAZE_OFFSET = 0.08
# Cell rows per strip of the samples' layout: where a cell's samples fall on the raster
# depends on its strip (see :func:`surface_screen`); kept as the maps were first made.
ROWS_PER_READ = 32
CELLS_PER_READ = 64  # cells of a row screened in one read when the whole region is screened at once


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

    @property
    def wanted(self) -> list[int]:
        """The raster bands the tests read, in order."""
        return sorted({b for b in (self.blue, self.green, self.red, self.nir) if b is not None})


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


def surface_screen(
    ds: rasterio.io.DatasetReader,
    grid: TileGrid,
    cell_mask: np.ndarray,
    bands: SurfaceBands,
    radiometry: Radiometry,
    water_code: int,
    cloud_code: int,
) -> "SurfaceScreen | None":
    """How to screen the cells of ``cell_mask`` as their tiles are read; None where the
    imagery shows neither water nor cloud, or no cell is to be mapped.

    Each cell is sampled SAMPLES x SAMPLES times at the pixels a nearest-neighbour read
    of its strip of :data:`ROWS_PER_READ` cell rows picks (GDAL's choice for a boundless
    decimated read, :func:`_axis`): the codes do not depend on the order or the batches in
    which cells are screened, nor on where (a reader thread, a Dask worker)."""
    if not (bands.can_see_water or bands.can_see_cloud) or not cell_mask.any():
        return None
    rows_with_cells = np.flatnonzero(cell_mask.any(axis=1))
    ys = np.full(grid.height * SAMPLES, -1, np.int64)
    xs = None
    for r0 in range(int(rows_with_cells[0]), int(rows_with_cells[-1]) + 1, ROWS_PER_READ):
        r1 = min(r0 + ROWS_PER_READ, grid.height)
        window = _strip_window(ds, grid, r0, r1)
        ys[r0 * SAMPLES:r1 * SAMPLES] = _axis(window.row_off, window.height, (r1 - r0) * SAMPLES, ds.height)
        if xs is None:  # the same for every strip: the strips span the grid's columns
            xs = _axis(window.col_off, window.width, grid.width * SAMPLES, ds.width)
    fill = radiometry.fill_value if ds.nodata is None else None
    floor = None
    if radiometry.key == EIGHT_BIT.key and bands.can_see_cloud:
        floor = eight_bit_cloud_floor(ds, bands, radiometry, fill)
    all_valid = all(ds.mask_flag_enums[b - 1] == [MaskFlags.all_valid] for b in bands.wanted)
    return SurfaceScreen(bands, radiometry, floor, water_code, cloud_code, fill, all_valid, xs, ys)


def eight_bit_cloud_floor(
    ds: rasterio.io.DatasetReader, bands: SurfaceBands, radiometry: Radiometry, fill: float | None
) -> tuple[float, float, float]:
    """Per visible band (blue, green, red), in ``radiometry``'s units: the level
    :data:`TOP_TOLERANCE` below the highest level that at least :data:`TOP_SHARE` of the
    valid pixels reach, in :data:`TOP_WINDOWS` x :data:`TOP_WINDOWS` windows spread evenly
    over the whole image (the same for any region asked for; a cloud the windows miss only
    lowers the top, which the cloud still reaches)."""
    wanted = [bands.blue, bands.green, bands.red]
    values: list[np.ndarray] = []
    size_y, size_x = min(TOP_WINDOW_PX, ds.height), min(TOP_WINDOW_PX, ds.width)
    for y in np.linspace(0, ds.height - size_y, TOP_WINDOWS).round().astype(int):
        for x in np.linspace(0, ds.width - size_x, TOP_WINDOWS).round().astype(int):
            window = Window(int(x), int(y), size_x, size_y)
            try:
                dn = ds.read(wanted, window=window)
                valid = np.all(ds.read_masks(wanted, window=window) > 0, axis=0)
            except RasterioError as exc:
                raise _unreadable(ds, exc, "looking for cloud") from exc
            if fill is not None:
                valid &= ~np.all(dn == fill, axis=0)
            values.append(dn[:, valid])
    dn = np.concatenate(values, axis=1)
    if dn.shape[1] == 0:
        return (np.inf, np.inf, np.inf)  # nothing valid sampled: no cloud can be told
    tops = np.quantile(dn.astype(np.float64), 1.0 - TOP_SHARE, axis=1, method="inverted_cdf")
    return tuple(float(v) for v in radiometry.apply(tops - TOP_TOLERANCE))


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
    ``cell_mask`` that are mostly water or cloud, 0 elsewhere; all at once, cell row by
    cell row (memory: one row of samples)."""
    screen = surface_screen(ds, grid, cell_mask, bands, radiometry, water_code, cloud_code)
    return np.zeros(grid.shape, np.uint8) if screen is None else screen.region_codes(ds, cell_mask)


@dataclass(frozen=True, eq=False)
class SurfaceScreen:
    """The water and cloud tests of one run, for cells screened as they are read: plain
    data (sent to Dask workers with the job). ``xs`` and ``ys``: the raster column (row)
    of each sample, SAMPLES per grid column (row); -1 outside the raster."""

    bands: SurfaceBands
    radiometry: Radiometry
    cloud_floor: tuple[float, float, float] | None  # blue, green, red (8-bit imagery); None: CLOUD_BRIGHTNESS
    water_code: int
    cloud_code: int
    fill_value: float | None  # a DN that is fill in every band (the file declares no nodata)
    all_valid: bool  # the file masks none of the bands the tests read
    xs: np.ndarray
    ys: np.ndarray

    def samples(self, row: int, col: int) -> tuple[np.ndarray, np.ndarray]:
        """Raster rows and columns (SAMPLES each, -1 outside) of cell (row, col)'s samples."""
        return self.ys[row * SAMPLES:(row + 1) * SAMPLES], self.xs[col * SAMPLES:(col + 1) * SAMPLES]

    def codes(self, ds, cells, tiles: "TileSource | None" = None) -> np.ndarray:
        """Codes (uint8, 0: neither) of ``cells`` of the raster ``ds``. ``tiles``: the
        digital numbers just read for the same cells, whose samples are taken from them
        where they hold the pixels unchanged (else read again, from GDAL's cache)."""
        wanted = self.bands.wanted
        dn = np.zeros((len(wanted), len(cells), SAMPLES, SAMPLES), ds.dtypes[wanted[0] - 1])
        valid = np.zeros((len(cells), SAMPLES, SAMPLES), bool)
        for i, (row, col) in enumerate(cells):
            ys, xs = self.samples(row, col)
            if (ys < 0).all() or (xs < 0).all():
                continue
            if not (tiles is not None and tiles.take(i, ys, xs, wanted, dn[:, i], valid[i])):
                self._read(ds, ys, xs, dn[:, i], valid[i])
        return self._classify(dn, valid)

    def _classify(self, dn: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Codes of cells from their samples' digital numbers [bands, n, S, S] and validity [n, S, S]."""
        valid = valid.copy()
        if self.fill_value is not None:
            valid &= ~np.all(dn == self.fill_value, axis=0)
        refl = self.radiometry.apply(dn)
        valid &= np.all(np.isfinite(refl), axis=0)
        return self._decide(dict(zip(self.bands.wanted, refl)), valid)

    def region_codes(self, ds, cell_mask: np.ndarray) -> np.ndarray:
        """:meth:`codes` of every cell of ``cell_mask``, as a grid (0 elsewhere), cell row by
        cell row, :data:`CELLS_PER_READ` cells per read (memory flat in the raster's size)."""
        codes = np.zeros(cell_mask.shape, np.uint8)
        for row in np.flatnonzero(cell_mask.any(axis=1)):
            cols = np.flatnonzero(cell_mask[row])
            for start in range(0, len(cols), CELLS_PER_READ):
                chunk = cols[start:start + CELLS_PER_READ]
                codes[row, chunk] = self._row_codes(ds, int(row), chunk)
        return codes

    def _row_codes(self, ds, row: int, cols: np.ndarray) -> np.ndarray:
        """Codes of cells ``cols`` (ascending) of one cell row, read in one window."""
        ys = self.ys[row * SAMPLES:(row + 1) * SAMPLES]
        xs = self.xs[(cols[:, None] * SAMPLES + np.arange(SAMPLES)).ravel()]
        wanted = self.bands.wanted
        dn = np.zeros((len(wanted), SAMPLES, len(xs)), ds.dtypes[wanted[0] - 1])
        valid = np.zeros((SAMPLES, len(xs)), bool)
        if (ys >= 0).any() and (xs >= 0).any():
            self._read(ds, ys, xs, dn, valid)
        # [bands, S, cells x S] -> [bands, cells, S, S]
        dn = dn.reshape(len(wanted), SAMPLES, len(cols), SAMPLES).transpose(0, 2, 1, 3)
        valid = valid.reshape(SAMPLES, len(cols), SAMPLES).transpose(1, 0, 2)
        return self._classify(dn, valid)

    def _read(self, ds, ys: np.ndarray, xs: np.ndarray, dn: np.ndarray, valid: np.ndarray) -> None:
        """Samples at rows ``ys`` x columns ``xs`` (-1: outside, invalid; ascending where
        not -1) into ``dn`` [bands, len(ys), len(xs)] and ``valid``."""
        iny, inx = ys >= 0, xs >= 0
        y0, x0 = int(ys[iny].min()), int(xs[inx].min())
        window = Window(x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0)
        rows, cols = np.where(iny, ys - y0, 0)[:, None], np.where(inx, xs - x0, 0)[None, :]
        inside = iny[:, None] & inx[None, :]
        try:
            block = ds.read(self.bands.wanted, window=window)
            ok = inside
            if not self.all_valid:
                masks = ds.read_masks(self.bands.wanted, window=window)
                ok = inside & np.all(masks[:, rows, cols] > 0, axis=0)
        except RasterioError as exc:
            raise _unreadable(ds, exc, "looking for water and cloud") from exc
        dn[...] = np.where(inside, block[:, rows, cols], 0)
        valid[...] = ok

    def _decide(self, band: dict[int, np.ndarray], valid: np.ndarray) -> np.ndarray:
        """The codes of cells from their samples' reflectance per band [n, S, S] and validity."""
        bands = self.bands
        codes = np.zeros(len(valid), np.uint8)
        n_valid = valid.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            if bands.can_see_water:
                g, n = band[bands.green], band[bands.nir]
                water = valid & ((g - n) / (g + n) > 0.0)
                share = water.sum(axis=(1, 2)) / np.maximum(n_valid, 1)
                codes[(n_valid > 0) & (share >= MOSTLY)] = self.water_code
            if bands.can_see_cloud:
                b, g, r = band[bands.blue], band[bands.green], band[bands.red]
                mean = (b + g + r) / 3.0
                white = (np.abs(b - mean) + np.abs(g - mean) + np.abs(r - mean)) / mean < CLOUD_WHITENESS
                if self.cloud_floor is None:
                    bright = mean > CLOUD_BRIGHTNESS
                else:
                    bright = (b >= self.cloud_floor[0]) & (g >= self.cloud_floor[1]) & (r >= self.cloud_floor[2])
                cloud = valid & bright & white & (b - 0.5 * r > HAZE_OFFSET)
                share = cloud.sum(axis=(1, 2)) / np.maximum(n_valid, 1)
                codes[(n_valid > 0) & (share >= MOSTLY) & (codes == 0)] = self.cloud_code
        return codes


class TileSource:
    """Tiles just read for a batch of cells (digital numbers [N, bands, size, size] of the
    raster's ``band_indexes``), with which of them hold the raster's pixels unchanged
    (``raw``: inside the raster, at full resolution, nothing masked) and their windows."""

    def __init__(self, dn: np.ndarray, band_indexes, windows, raw: np.ndarray):
        self.dn, self.bands, self.windows, self.raw = dn, list(band_indexes), windows, raw

    def take(self, i: int, ys: np.ndarray, xs: np.ndarray, wanted, out: np.ndarray, valid: np.ndarray) -> bool:
        """Tile ``i``'s samples of the ``wanted`` bands into ``out`` [bands, S, S] (all valid);
        False where the tile does not hold them all unchanged."""
        if not self.raw[i] or self.dn.dtype.kind == "f" or not set(wanted) <= set(self.bands):
            return False
        w = self.windows[i]
        rows, cols = ys - w.row_off, xs - w.col_off
        if rows.min() < 0 or cols.min() < 0 or rows.max() >= w.height or cols.max() >= w.width:
            return False
        index = np.array([self.bands.index(b) for b in wanted])
        out[...] = self.dn[i][index[:, None, None], rows[None, :, None], cols[None, None, :]]
        valid[...] = True
        return True


def _unreadable(ds, exc: RasterioError, doing: str) -> PovertyMapperError:
    return PovertyMapperError(
        f"Cannot read the raster {ds.name} ({doing}): {exc.__cause__ or exc}. The file is damaged or incomplete "
        "(e.g. a copy or download cut short); copy or export it again."
    )


def _strip_window(ds, grid: TileGrid, r0: int, r1: int) -> Window:
    """The raster window (fractional pixels) of cell rows r0..r1 across the grid."""
    left, top = grid.transform * (0, r0)
    right, bottom = grid.transform * (grid.width, r1)
    return from_bounds(min(left, right), min(top, bottom), max(left, right), max(top, bottom), ds.transform)


def _axis(offset: float, size: float, n: int, limit: int) -> np.ndarray:
    """Along one axis, the pixel GDAL's nearest-neighbour read of ``size`` pixels from
    ``offset`` into ``n`` samples takes for each sample; -1 where the read is boundless and
    the sample lies off the raster's ``limit`` pixels. A sample whose footprint only
    touches the raster takes its edge pixel (what the boundless read does)."""
    step = size / n
    i = np.arange(n)
    pixel = np.floor(offset + (i + 0.5) * step + 1e-10).astype(np.int64)
    first = np.floor((0.0 - offset) / step + 0.001)
    end = np.ceil((limit - offset) / step - 0.001)
    return np.where((i >= first) & (i < end), np.clip(pixel, 0, limit - 1), -1)
