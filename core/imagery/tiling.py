"""The grid of tiles over a region of a raster.

Each output cell holds the estimate for the tile centred on it. With the stride equal
to the tile size the tiles are a plain non-overlapping grid; a smaller stride gives a
finer output from overlapping tiles. All sizes here are in the raster's own pixels,
which need not be square in metres (a geographic CRS): x and y are kept apart.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from ..errors import PovertyMapperError

# WGS 84 ellipsoid: semi-major axis (m) and first eccentricity squared.
_A = 6_378_137.0
_E2 = 6.694_379_990_14e-3


@dataclass(frozen=True)
class PixelWindow:
    """A rectangle of whole raster pixels (may reach outside the raster)."""

    col_off: int
    row_off: int
    width: int
    height: int

    def intersection(self, width: int, height: int) -> "PixelWindow | None":
        """The part inside a raster of ``width`` x ``height`` pixels, or None."""
        c0, r0 = max(self.col_off, 0), max(self.row_off, 0)
        c1 = min(self.col_off + self.width, width)
        r1 = min(self.row_off + self.height, height)
        if c1 <= c0 or r1 <= r0:
            return None
        return PixelWindow(c0, r0, c1 - c0, r1 - r0)

    def to_rasterio(self) -> Window:
        return Window(self.col_off, self.row_off, self.width, self.height)


def _metres_per_degree(lat: float) -> tuple[float, float]:
    """(east-west, north-south) metres per degree at latitude ``lat`` on the WGS 84 ellipsoid."""
    phi = math.radians(max(min(lat, 89.9), -89.9))
    w = 1.0 - _E2 * math.sin(phi) ** 2
    meridian = _A * (1.0 - _E2) / w**1.5  # radius of curvature north-south
    normal = _A / math.sqrt(w)  # radius of curvature east-west
    return math.radians(1.0) * normal * math.cos(phi), math.radians(1.0) * meridian


def pixel_size_m(transform: Affine, crs: CRS | None, centre: tuple[float, float]) -> tuple[float, float]:
    """Size of one raster pixel on the ground in metres (x, y), at ``centre`` (CRS units).

    Geographic CRSs: degrees converted at the centre's latitude (WGS 84 ellipsoid).
    Projected CRSs: the nominal size in the CRS's linear unit, unless the projection
    stretches distances there by more than 2% (Web Mercator away from the equator):
    then the ground size measured at the centre.
    """
    px, py = abs(transform.a), abs(transform.e)
    if not (math.isfinite(px) and math.isfinite(py) and px > 0 and py > 0):
        raise PovertyMapperError(
            f"The raster's georeferencing gives a pixel size of {px:g} x {py:g}; it is damaged. "
            "Georeference the raster again (Raster > Georeferencer or Assign Projection) or export it anew."
        )
    if transform.b or transform.d:
        raise PovertyMapperError(
            "The raster is rotated; warp it to a north-up grid (Raster > Projections > Warp) first."
        )
    if crs is None:
        raise PovertyMapperError(
            "The raster has no coordinate reference system; assign one "
            "(Layer Properties > Source) so tile sizes in metres can be computed."
        )
    x, y = centre
    if crs.is_geographic:
        mx, my = _metres_per_degree(y)
        return px * mx, py * my
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    nominal = (px * factor, py * factor)
    ground = _ground_size(crs, x, y, px, py)
    if ground is None or all(abs(g / n - 1.0) <= 0.02 for g, n in zip(ground, nominal)):
        return nominal
    return ground


def _ground_size(crs: CRS, x: float, y: float, px: float, py: float) -> tuple[float, float] | None:
    """Ground lengths (m) of one pixel step east and north at (x, y), or None if the
    point cannot be placed on the globe."""
    from rasterio.warp import transform as warp_points

    try:
        lons, lats = warp_points(crs, "EPSG:4326", [x, x + px, x], [y, y, y + py])
    except Exception:  # noqa: BLE001 (a CRS PROJ cannot invert: keep the nominal size)
        return None
    if not all(math.isfinite(v) for v in (*lons, *lats)):
        return None
    mx, my = _metres_per_degree(lats[0])

    def length(i: int) -> float:
        return math.hypot((lons[i] - lons[0]) * mx, (lats[i] - lats[0]) * my)

    return length(1), length(2)


def ground_positions_m(crs: CRS, xs: Sequence[float], ys: Sequence[float]) -> np.ndarray:
    """Earth-centred positions [n, 3] in metres (WGS 84 ellipsoid, height 0) of points
    given in ``crs``: the straight-line distance between two of them is their ground
    distance (shorter than along the surface by under a millionth at 10 km).

    A projected CRS that cannot be placed on the globe gives its own coordinates in
    metres (z = 0).
    """
    from rasterio.warp import transform as warp_points

    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    if crs.is_geographic:
        lons, lats = xs, ys
    else:
        try:
            lons, lats = (np.asarray(v) for v in warp_points(crs, "EPSG:4326", xs.tolist(), ys.tolist()))
        except Exception:  # noqa: BLE001 (a CRS PROJ cannot invert: keep its own metres)
            lons = lats = np.array([np.nan])
        if not np.all(np.isfinite(lons)) or not np.all(np.isfinite(lats)):
            factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
            return np.column_stack([xs * factor, ys * factor, np.zeros(xs.size)])
    phi, lam = np.radians(lats), np.radians(lons)
    normal = _A / np.sqrt(1.0 - _E2 * np.sin(phi) ** 2)
    return np.column_stack([
        normal * np.cos(phi) * np.cos(lam),
        normal * np.cos(phi) * np.sin(lam),
        normal * (1.0 - _E2) * np.sin(phi),
    ])


MAX_TILE_PX = 256


def new_model_tile_px(tile_size_m: float, pixel_m: float) -> int:
    """Pixels across the tile of a model made from imagery of ``pixel_m`` metres: the
    imagery's own resolution, coarsened so a tile is at most MAX_TILE_PX pixels across
    (and at least 8)."""
    return int(min(MAX_TILE_PX, max(8, round(tile_size_m / pixel_m))))


def bounds_window(transform: Affine, bounds: tuple[float, float, float, float]) -> PixelWindow:
    """Whole raster pixels covering ``bounds`` (minx, miny, maxx, maxy); may reach outside the raster."""
    minx, miny, maxx, maxy = bounds
    if not (maxx > minx and maxy > miny):
        raise PovertyMapperError("The requested extent is empty; draw or enter a larger one.")
    inv = ~transform
    cols, rows = zip(*(inv * (x, y) for x in (minx, maxx) for y in (miny, maxy)))
    c0, c1 = math.floor(min(cols) + 1e-9), math.ceil(max(cols) - 1e-9)
    r0, r1 = math.floor(min(rows) + 1e-9), math.ceil(max(rows) - 1e-9)
    return PixelWindow(c0, r0, c1 - c0, r1 - r0)


def region_window(
    transform: Affine,
    width: int,
    height: int,
    bounds: tuple[float, float, float, float] | None = None,
) -> PixelWindow:
    """Whole raster pixels covering ``bounds`` (minx, miny, maxx, maxy), clipped to the raster."""
    full = PixelWindow(0, 0, width, height)
    if bounds is None:
        return full
    minx, miny, maxx, maxy = bounds
    if not (maxx > minx and maxy > miny):
        raise PovertyMapperError(
            f"The requested extent ({minx:g}, {miny:g}, {maxx:g}, {maxy:g}) has no area; draw or choose "
            "an extent with a width and a height, or leave it empty to map the whole raster."
        )
    clipped = bounds_window(transform, bounds).intersection(width, height)
    if clipped is None:
        raise PovertyMapperError(
            "The requested extent does not overlap the raster; choose an extent inside the layer."
        )
    return clipped


@dataclass(frozen=True)
class TileGrid:
    """Output cells over ``region`` with the tile of each cell centred on it.

    ``tile_*`` and ``step_*`` are in raster pixels (floats: a tile of 6720 m is
    1344 pixels of 5 m or 224 of 30 m). One output cell is ``step`` pixels wide.
    """

    raster_transform: Affine
    region: PixelWindow
    tile_x: float
    tile_y: float
    step_x: float
    step_y: float
    # The grid's top-left corner in (fractional) raster pixels, at or above and left of the
    # region's; None: the region's own corner.
    origin: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if min(self.tile_x, self.tile_y, self.step_x, self.step_y) <= 0:
            raise ValueError("tile and step sizes must be positive")

    @property
    def corner(self) -> tuple[float, float]:
        """(column, row) of the grid's top-left corner in raster pixels."""
        return self.origin if self.origin is not None else (float(self.region.col_off), float(self.region.row_off))

    @property
    def width(self) -> int:
        extent = self.region.col_off + self.region.width - self.corner[0]
        return max(1, math.ceil(extent / self.step_x - 1e-9))

    @property
    def height(self) -> int:
        extent = self.region.row_off + self.region.height - self.corner[1]
        return max(1, math.ceil(extent / self.step_y - 1e-9))

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def __len__(self) -> int:
        return self.width * self.height

    @property
    def transform(self) -> Affine:
        """Georeferencing of the output raster (one pixel per cell)."""
        return (
            self.raster_transform
            * Affine.translation(*self.corner)
            * Affine.scale(self.step_x, self.step_y)
        )

    def tile_window(self, row: int, col: int) -> PixelWindow:
        """Raster pixels of the tile centred on output cell (row, col)."""
        c0, r0 = self.corner
        cx = c0 + (col + 0.5) * self.step_x
        cy = r0 + (row + 0.5) * self.step_y
        w, h = max(1, round(self.tile_x)), max(1, round(self.tile_y))
        # Centre the whole-pixel window (not the fractional tile) on the cell centre.
        return PixelWindow(round(cx - w / 2), round(cy - h / 2), w, h)

    def cells(self) -> Iterator[tuple[int, int]]:
        """Output cells in row-major order."""
        for row in range(self.height):
            for col in range(self.width):
                yield row, col


def tile_grid_for(
    transform: Affine,
    crs: CRS | None,
    region: PixelWindow,
    tile_size_m: float,
    stride_m: float | None = None,
    aligned: bool = False,
) -> TileGrid:
    """The grid for a model's tile size (and an optional finer stride) in metres.

    ``aligned``: the grid's corner lies on a whole number of steps from a fixed origin, up
    and left of the region's corner, so that maps of overlapping regions share their
    cells: in a projected CRS whose units are the ground's, the CRS's origin (maps of
    different rasters in that CRS line up cell for cell); otherwise the raster's first
    pixel (maps of one raster line up)."""
    centre = transform * (region.col_off + region.width / 2, region.row_off + region.height / 2)
    mx, my = pixel_size_m(transform, crs, centre)
    stride_m = tile_size_m if not stride_m else stride_m
    if stride_m > tile_size_m:
        raise PovertyMapperError(
            f"The stride ({stride_m:g} m) is larger than the tile ({tile_size_m:g} m); "
            "use a stride no larger than the tile so every place is covered."
        )
    origin = None
    if aligned:
        origin = _crs_aligned_corner(transform, crs, region, stride_m, (mx, my))
        if origin is None:
            region = _aligned(region, stride_m / mx, stride_m / my)
    return TileGrid(
        raster_transform=transform,
        region=region,
        tile_x=tile_size_m / mx,
        tile_y=tile_size_m / my,
        step_x=stride_m / mx,
        step_y=stride_m / my,
        origin=origin,
    )


def _crs_aligned_corner(
    transform: Affine, crs: CRS | None, region: PixelWindow, stride_m: float, pixel_m: tuple[float, float]
) -> tuple[float, float] | None:
    """The region's corner moved up and left to the nearest multiple of the stride in CRS
    coordinates, in raster pixels; None where CRS units are not the ground's metres
    (geographic, or a projection that stretches them there) or the raster is not north-up."""
    if crs is None or crs.is_geographic or transform.b or transform.d or transform.a <= 0 or transform.e >= 0:
        return None
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    if any(abs(m / (p * factor) - 1.0) > 1e-6 for m, p in zip(pixel_m, (transform.a, -transform.e))):
        return None
    step_x, step_y = stride_m / factor, stride_m / factor  # the stride in CRS units
    left, top = transform * (region.col_off, region.row_off)
    x0 = math.floor(left / step_x + 1e-9) * step_x
    y0 = math.ceil(top / step_y - 1e-9) * step_y
    return (x0 - transform.c) / transform.a, (y0 - transform.f) / transform.e


def _aligned(region: PixelWindow, step_x: float, step_y: float) -> PixelWindow:
    """``region`` widened up and left to start on a whole number of steps from pixel (0, 0)."""
    col = int(math.floor(math.floor(region.col_off / step_x + 1e-9) * step_x + 1e-9))
    row = int(math.floor(math.floor(region.row_off / step_y + 1e-9) * step_y + 1e-9))
    return PixelWindow(col, row, region.col_off + region.width - col, region.row_off + region.height - row)
