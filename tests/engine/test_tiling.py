"""The tile grid: which raster pixels each output cell's tile reads, and where the
output raster lies. All rasters here are generated geometry only (no pixel data)."""
from __future__ import annotations

import math

import pytest
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS
from rasterio.transform import from_origin

from poverty_mapper.core.errors import PovertyMapperError
from poverty_mapper.core.imagery.tiling import (
    PixelWindow,
    TileGrid,
    pixel_size_m,
    region_window,
    tile_grid_for,
)
from helpers import assert_cells_cover_region, assert_centres_match

UTM21 = CRS.from_epsg(32621)
WGS84 = CRS.from_epsg(4326)
X0, Y0 = 500_000.0, 7_200_000.0
TRANSFORM = from_origin(X0, Y0, 30.0, 30.0)  # generated: 30 m pixels, north up


def _world(transform, col, row):
    return transform * (col, row)


# --- region_window ---------------------------------------------------------------------


def test_region_window_without_bounds_is_the_whole_raster():
    assert region_window(TRANSFORM, 100, 80) == PixelWindow(0, 0, 100, 80)


def test_region_window_of_an_extent_on_pixel_edges():
    bounds = (X0 + 30 * 10, Y0 - 30 * 50, X0 + 30 * 40, Y0 - 30 * 20)
    assert region_window(TRANSFORM, 100, 80, bounds) == PixelWindow(10, 20, 30, 30)


def test_region_window_rounds_outwards_to_whole_pixels():
    # Half a pixel in on every side: the window still takes the pixels partly covered.
    bounds = (X0 + 30 * 10.5, Y0 - 30 * 49.5, X0 + 30 * 39.5, Y0 - 30 * 20.5)
    assert region_window(TRANSFORM, 100, 80, bounds) == PixelWindow(10, 20, 30, 30)


def test_region_window_partly_outside_is_clipped_to_the_raster():
    bounds = (X0 - 3000, Y0 - 30 * 10, X0 + 30 * 5, Y0 + 3000)
    assert region_window(TRANSFORM, 100, 80, bounds) == PixelWindow(0, 0, 5, 10)
    bounds = (X0 + 30 * 90, Y0 - 30 * 200, X0 + 30 * 500, Y0 - 30 * 70)
    assert region_window(TRANSFORM, 100, 80, bounds) == PixelWindow(90, 70, 10, 10)


@pytest.mark.parametrize(
    "bounds",
    [
        (X0 - 9000, Y0 - 900, X0 - 3000, Y0 - 300),  # west of the raster
        (X0 + 30 * 100, Y0 - 900, X0 + 30 * 150, Y0 - 300),  # touches the east edge only
        (X0, Y0 + 30, X0 + 900, Y0 + 900),  # north of the raster
    ],
)
def test_region_window_fully_outside_raises(bounds):
    with pytest.raises(PovertyMapperError, match="does not overlap"):
        region_window(TRANSFORM, 100, 80, bounds)


def test_region_window_of_an_empty_extent_raises():
    with pytest.raises(PovertyMapperError, match="empty"):
        region_window(TRANSFORM, 100, 80, (X0 + 300, Y0 - 300, X0 + 300, Y0 - 30))


# --- TileGrid ----------------------------------------------------------------------------


def test_grid_covers_region_exactly_when_it_divides():
    grid = TileGrid(TRANSFORM, PixelWindow(10, 20, 40, 24), 8, 8, 8, 8)
    assert grid.shape == (3, 5)
    assert len(grid) == 15
    assert_cells_cover_region(grid)
    assert grid.transform * (grid.width, grid.height) == pytest.approx(_world(TRANSFORM, 50, 44))


def test_grid_covers_region_with_a_partial_last_cell():
    grid = TileGrid(TRANSFORM, PixelWindow(0, 0, 41, 17), 8, 8, 8, 8)
    assert grid.shape == (3, 6)
    assert_cells_cover_region(grid)


def test_stride_equal_to_tile_gives_adjacent_non_overlapping_tiles():
    grid = TileGrid(TRANSFORM, PixelWindow(3, 5, 40, 24), 8, 8, 8, 8)
    for row, col in grid.cells():
        win = grid.tile_window(row, col)
        assert (win.width, win.height) == (8, 8)
        assert win.col_off == 3 + 8 * col and win.row_off == 5 + 8 * row
        if col + 1 < grid.width:
            right = grid.tile_window(row, col + 1)
            assert right.col_off == win.col_off + win.width and right.row_off == win.row_off
        if row + 1 < grid.height:
            below = grid.tile_window(row + 1, col)
            assert below.row_off == win.row_off + win.height and below.col_off == win.col_off


def test_smaller_stride_gives_overlapping_tiles_and_a_finer_grid():
    coarse = TileGrid(TRANSFORM, PixelWindow(0, 0, 40, 24), 8, 8, 8, 8)
    fine = TileGrid(TRANSFORM, PixelWindow(0, 0, 40, 24), 8, 8, 4, 4)
    assert fine.shape == (2 * coarse.height, 2 * coarse.width)
    a, b = fine.tile_window(0, 1), fine.tile_window(0, 2)
    assert b.col_off - a.col_off == 4 and a.width == 8  # overlap of 4 pixels
    assert fine.transform.a == pytest.approx(4 * 30.0)
    assert_centres_match(fine)


def test_output_transform_maps_cell_centres_to_tile_centres():
    grid = TileGrid(TRANSFORM, PixelWindow(7, 2, 50, 33), 9, 9, 5, 5)
    assert grid.transform.a == pytest.approx(5 * 30.0) and grid.transform.e == pytest.approx(-5 * 30.0)
    assert_centres_match(grid)


def test_output_transform_cell_centres_for_a_fractional_tile_size():
    """A tile of 7.4 x 7.4 pixels is read as 7 x 7 whole pixels; the best placement of
    7 pixels puts their centre within half a pixel of the cell centre."""
    grid = TileGrid(TRANSFORM, PixelWindow(0, 0, 60, 60), 7.4, 7.4, 7.4, 7.4)
    assert_centres_match(grid)


# --- pixel_size_m and tile_grid_for -------------------------------------------------------


def test_pixel_size_in_a_projected_crs():
    assert pixel_size_m(TRANSFORM, UTM21, (X0, Y0)) == pytest.approx((30.0, 30.0))
    assert pixel_size_m(from_origin(X0, Y0, 5.0, 2.5), UTM21, (X0, Y0)) == pytest.approx((5.0, 2.5))


def test_pixel_size_in_a_projected_crs_in_feet():
    # EPSG:2263, NAD83 / New York Long Island (ftUS): one unit is about 0.3048 m.
    mx, my = pixel_size_m(from_origin(1e6, 2e5, 100.0, 100.0), CRS.from_epsg(2263), (1e6, 2e5))
    assert mx == pytest.approx(30.48, rel=1e-4) and my == pytest.approx(30.48, rel=1e-4)


def test_pixel_size_in_a_geographic_crs_at_latitude_60():
    deg = from_origin(10.0, 61.0, 0.001, 0.001)
    mx, my = pixel_size_m(deg, WGS84, (10.0, 60.0))
    # WGS 84 ellipsoid: 0.001 degree is 111.412 m of latitude and 55.800 m of longitude at 60°.
    assert my == pytest.approx(111.412, rel=1e-4)
    assert mx == pytest.approx(55.800, rel=1e-4)
    mx0, my0 = pixel_size_m(deg, WGS84, (10.0, 0.0))
    assert mx0 == pytest.approx(111.319, rel=1e-4) and my0 == pytest.approx(110.574, rel=1e-4)


def test_pixel_size_in_web_mercator_is_the_ground_size():
    """Web Mercator metres are stretched by 1/cos(latitude): at 60° a 30 'm' pixel is
    15 m on the ground. UTM's 0.04% scale error is ignored (nominal size kept)."""
    from rasterio.warp import transform as warp

    (x,), (y,) = warp("EPSG:4326", "EPSG:3857", [10.0], [60.0])
    mx, my = pixel_size_m(from_origin(x, y, 30.0, 30.0), CRS.from_epsg(3857), (x, y))
    assert mx == pytest.approx(15.0, rel=0.01) and my == pytest.approx(15.0, rel=0.01)


def test_pixel_size_refuses_rotated_rasters_and_missing_crs():
    rotated = TRANSFORM * Affine.rotation(10)
    with pytest.raises(PovertyMapperError, match="rotated"):
        pixel_size_m(rotated, UTM21, (X0, Y0))
    with pytest.raises(PovertyMapperError, match="coordinate reference system"):
        pixel_size_m(TRANSFORM, None, (X0, Y0))


def test_tile_grid_for_a_projected_raster():
    grid = tile_grid_for(TRANSFORM, UTM21, PixelWindow(0, 0, 500, 300), 6720.0)
    assert (grid.tile_x, grid.tile_y, grid.step_x, grid.step_y) == pytest.approx((224, 224, 224, 224))
    assert grid.shape == (2, 3)
    finer = tile_grid_for(TRANSFORM, UTM21, PixelWindow(0, 0, 500, 300), 6720.0, stride_m=1680.0)
    assert (finer.tile_x, finer.step_x) == pytest.approx((224, 56))
    assert finer.shape == (math.ceil(300 / 56), math.ceil(500 / 56))


def test_tile_grid_for_a_geographic_raster_at_latitude_60():
    deg = from_origin(10.0, 60.5, 0.001, 0.001)  # region centre at latitude 60
    grid = tile_grid_for(deg, WGS84, PixelWindow(0, 0, 1000, 1000), 6720.0)
    # A degree of longitude is half as long there: twice as many pixels across a tile.
    assert grid.tile_x / grid.tile_y == pytest.approx(2.0, rel=0.01)
    assert grid.tile_y == pytest.approx(6720.0 / 111.412, rel=1e-3)


def test_tile_grid_for_refuses_a_stride_larger_than_the_tile():
    with pytest.raises(PovertyMapperError, match="stride"):
        tile_grid_for(TRANSFORM, UTM21, PixelWindow(0, 0, 100, 100), 240.0, stride_m=480.0)


def test_tile_grid_rejects_non_positive_sizes():
    with pytest.raises(ValueError):
        TileGrid(TRANSFORM, PixelWindow(0, 0, 10, 10), 8, 8, 0, 8)


# --- properties over generated sizes -----------------------------------------------------

raster_sizes = st.tuples(st.integers(1, 300), st.integers(1, 300))


@st.composite
def region_in_raster(draw):
    width, height = draw(raster_sizes)
    c0 = draw(st.integers(0, width - 1))
    r0 = draw(st.integers(0, height - 1))
    w = draw(st.integers(1, width - c0))
    h = draw(st.integers(1, height - r0))
    return width, height, PixelWindow(c0, r0, w, h)


@settings(max_examples=150, deadline=None)
@given(
    region=region_in_raster(),
    tile=st.integers(1, 40),
    stride_fraction=st.floats(0.05, 1.0),
)
def test_property_cells_cover_the_region(region, tile, stride_fraction):
    width, height, window = region
    step = max(tile * stride_fraction, 0.5)
    grid = TileGrid(TRANSFORM, window, tile, tile, step, step)
    assert_cells_cover_region(grid)
    # A cell that overlaps the region by more than half a pixel reads part of it.
    for row, col in grid.cells():
        if col * step >= window.width - 0.5 or row * step >= window.height - 0.5:
            continue  # a sliver of a last cell: its tile may round to outside pixels
        win = grid.tile_window(row, col)
        shifted = PixelWindow(
            win.col_off - window.col_off, win.row_off - window.row_off, win.width, win.height
        )
        assert shifted.intersection(window.width, window.height) is not None, (row, col, win)


@settings(max_examples=150, deadline=None)
@given(region=region_in_raster(), tile=st.integers(1, 40), step_divisor=st.integers(1, 8))
def test_property_whole_pixel_tiles_are_centred_on_their_cells(region, tile, step_divisor):
    _, _, window = region
    step = tile / step_divisor
    grid = TileGrid(TRANSFORM, window, tile, tile, step, step)
    if len(grid) <= 400:
        assert_centres_match(grid)


@settings(max_examples=150, deadline=None)
@given(region=region_in_raster(), tile=st.integers(1, 40))
def test_property_plain_grid_tiles_the_region(region, tile):
    """Stride == tile: tiles of non-edge cells lie inside the region (so inside the
    raster), neighbours are adjacent, and the tiles together cover the region."""
    width, height, window = region
    grid = TileGrid(TRANSFORM, window, tile, tile, tile, tile)
    for row, col in grid.cells():
        win = grid.tile_window(row, col)
        assert win.col_off == window.col_off + col * tile
        assert win.row_off == window.row_off + row * tile
        if row < grid.height - 1 and col < grid.width - 1:
            assert win.intersection(width, height) == win
            assert win.col_off >= window.col_off and win.row_off >= window.row_off
            assert win.col_off + win.width <= window.col_off + window.width
            assert win.row_off + win.height <= window.row_off + window.height
    last = grid.tile_window(grid.height - 1, grid.width - 1)
    assert last.col_off + last.width >= window.col_off + window.width
    assert last.row_off + last.height >= window.row_off + window.height


@settings(max_examples=200, deadline=None)
@given(
    size=raster_sizes,
    pixel=st.sampled_from([0.5, 5.0, 28.5, 30.0]),
    corners=st.tuples(
        st.floats(-0.5, 1.5), st.floats(-0.5, 1.5), st.floats(-0.5, 1.5), st.floats(-0.5, 1.5)
    ),
)
def test_property_region_window_covers_the_extent_inside_the_raster(size, pixel, corners):
    width, height = size
    transform = from_origin(X0, Y0, pixel, pixel)
    fx0, fx1 = sorted(corners[:2])
    fy0, fy1 = sorted(corners[2:])
    minx, maxx = X0 + fx0 * width * pixel, X0 + fx1 * width * pixel
    miny, maxy = Y0 - fy1 * height * pixel, Y0 - fy0 * height * pixel
    # Overlap of the extent with the raster, in (fractional) pixel units.
    ic0, ic1 = max(fx0 * width, 0.0), min(fx1 * width, width)
    ir0, ir1 = max(fy0 * height, 0.0), min(fy1 * height, height)
    if not (maxx > minx and maxy > miny):
        with pytest.raises(PovertyMapperError):
            region_window(transform, width, height, (minx, miny, maxx, maxy))
        return
    if ic1 - ic0 <= 1e-6 or ir1 - ir0 <= 1e-6:
        if ic1 < ic0 or ir1 < ir0:  # clearly apart: must be refused
            with pytest.raises(PovertyMapperError, match="does not overlap"):
                region_window(transform, width, height, (minx, miny, maxx, maxy))
        return  # grazing an edge: either answer is acceptable
    win = region_window(transform, width, height, (minx, miny, maxx, maxy))
    assert win.intersection(width, height) == win  # inside the raster
    tol = 1e-6
    assert win.col_off <= ic0 + tol and win.col_off + win.width >= ic1 - tol
    assert win.row_off <= ir0 + tol and win.row_off + win.height >= ir1 - tol
    # ...and whole pixels only: less than one pixel more on each side.
    assert ic0 - win.col_off < 1 and (win.col_off + win.width) - ic1 < 1
    assert ir0 - win.row_off < 1 and (win.row_off + win.height) - ir1 < 1
