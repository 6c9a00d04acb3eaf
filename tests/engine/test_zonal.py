"""Estimate rasters over polygons with exact cell coverage (core/maps/zonal.py).

The maps and population rasters are GENERATED GeoTIFFs written into tmp_path (cells of
6.72 km, as the bundled default model maps); one test reads the real Haiti scene."""
from __future__ import annotations

from dataclasses import astuple

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from conftest import SCENES_DIR
from poverty_mapper.core.errors import PovertyMapperError
from poverty_mapper.core.maps.zonal import EstimateMap, check_poverty_map, is_index, polygon_area

X0, Y0, CELL = 400_000.0, 2_000_000.0, 6720.0
NODATA = -9999.0
# A generated 3 x 3 map: the centre's estimate is 5; the cell of 9 is flagged as an
# extrapolation (quality 1), the cell of 7 has a value but quality 2 (no estimate).
VALUES = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], np.float32)
QUALITY = np.array([[0, 0, 0], [0, 0, 0], [2, 0, 1]], np.float32)


def _map(tmp_path, values=VALUES, quality=QUALITY, tags=None) -> str:
    path = tmp_path / "generated_map.tif"
    with rasterio.open(path, "w", driver="GTiff", width=3, height=3, count=2, dtype="float32", crs="EPSG:32618",
                       transform=from_origin(X0, Y0, CELL, CELL), nodata=NODATA) as dst:
        dst.write(values, 1)
        dst.write(quality, 2)
        dst.set_band_description(1, "generated consumption (USD per person per day)")
        dst.set_band_description(2, "quality: 0 = within the range of the survey outcomes, 1 = outside it, 2 = none")
        dst.update_tags(**(tags or {"QUANTITY": "generated consumption", "UNIT": "USD per person per day"}))
    return str(path)


def _population(tmp_path, people) -> str:
    """People on a grid of half cells (2 x 2 pixels per map cell), ``people`` per map cell."""
    pixels = np.repeat(np.repeat(np.asarray(people, np.float32) / 4, 2, 0), 2, 1)
    path = tmp_path / "generated_population.tif"
    with rasterio.open(path, "w", driver="GTiff", width=6, height=6, count=1, dtype="float32", crs="EPSG:32618",
                       transform=from_origin(X0, Y0, CELL / 2, CELL / 2), nodata=-1) as dst:
        dst.write(pixels, 1)
    return str(path)


def _box(west: float, north: float, east: float, south: float) -> dict:
    """A rectangle given in cells from the map's top-left corner, as a GeoJSON polygon."""
    x0, x1, y0, y1 = X0 + west * CELL, X0 + east * CELL, Y0 - south * CELL, Y0 - north * CELL
    return {"type": "Polygon", "coordinates": [[(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]]}


def test_a_district_smaller_than_a_cell_gets_the_cell_it_lies_on(tmp_path):
    """A 2 km district in a 6.72 km cell, off the cell's centre: not empty, but that cell's estimate."""
    two_km = 2000 / CELL
    with EstimateMap(_map(tmp_path)) as estimates:
        stats = estimates.stats(_box(1.05, 1.05, 1.05 + two_km, 1.05 + two_km))
    assert (stats.cells, stats.mean) == (1, 5.0)
    assert stats.coverage == pytest.approx(1.0)


def test_a_district_mostly_outside_the_map_says_how_little_is_covered(tmp_path):
    """Two-thirds of it west of the map: the mean of the column it covers, and coverage 1/3."""
    with EstimateMap(_map(tmp_path)) as estimates:
        stats = estimates.stats(_box(-2, 0, 1, 2))
    assert stats.coverage == pytest.approx(1 / 3, abs=1e-6)
    assert stats.mean == pytest.approx((1 + 4) / 2, abs=1e-5)
    assert stats.cells == 2


def test_cells_count_with_the_share_inside(tmp_path):
    """Half of the cells of 2 and 3 and all of 5 and 6 minus a quarter: weighted by the share inside."""
    with EstimateMap(_map(tmp_path)) as estimates:
        stats = estimates.stats(_box(1, 0.5, 3, 2))
    shares, values = np.array([0.5, 0.5, 1, 1]), np.array([2, 3, 5, 6])
    assert stats.mean == pytest.approx((shares * values).sum() / shares.sum(), abs=1e-5)
    assert stats.coverage == pytest.approx(1.0)


def test_no_estimate_cells_are_left_out_and_extrapolations_are_counted(tmp_path):
    """The bottom row: 7 has no estimate (quality 2), 9 is an extrapolation (quality 1)."""
    with EstimateMap(_map(tmp_path)) as estimates:
        stats = estimates.stats(_box(0, 2, 3, 3))
    assert stats.mean == pytest.approx((8 + 9) / 2, abs=1e-5)
    assert stats.coverage == pytest.approx(2 / 3, abs=1e-6)
    assert stats.extrapolated == pytest.approx(0.5, abs=1e-6)
    assert stats.cells == 2


def test_water_and_cloud_are_left_out_and_out_of_domain_counted(tmp_path):
    """The top row: 1 water (4), 2 cloud (5), 3 out of the model's domain (3, an estimate to distrust)."""
    quality = QUALITY.copy()
    quality[0] = [4, 5, 3]
    with EstimateMap(_map(tmp_path, quality=quality)) as estimates:
        stats = estimates.stats(_box(0, 0, 3, 1))
    assert (stats.mean, stats.cells) == (3.0, 1)
    assert stats.coverage == pytest.approx(1 / 3, abs=1e-6)
    assert stats.out_of_domain == pytest.approx(1.0) and stats.extrapolated == 0.0


def test_population_weighted_mean_total_and_share_below_a_line(tmp_path):
    people = [[10, 0, 0], [30, 60, 0], [0, 0, 0]]
    with EstimateMap(_map(tmp_path), _population(tmp_path, people)) as estimates:
        stats = estimates.stats(_box(0, 0, 2, 2), poverty_line=4.5)  # cells 1 2 4 5
    assert stats.population == pytest.approx(100, abs=1e-3)
    assert stats.weighted_mean == pytest.approx((1 * 10 + 4 * 30 + 5 * 60) / 100, abs=1e-5)
    assert stats.below_line == pytest.approx(0.4, abs=1e-6)  # the 40 people on the cells of 1 and 4


def test_reading_block_by_block_gives_the_same_numbers(tmp_path):
    """Memory stays flat in the map's size: a polygon is read a block of rows at a time."""
    path = _map(tmp_path)
    people = _population(tmp_path, [[10, 20, 30], [40, 50, 60], [70, 80, 90]])
    polygon = _box(0.3, 0.2, 2.7, 2.9)
    with EstimateMap(path, people, block_rows=1) as by_row, EstimateMap(path, people) as whole:
        rows, at_once = astuple(by_row.stats(polygon, 5.5)), astuple(whole.stats(polygon, 5.5))
    assert rows == pytest.approx(at_once, rel=1e-12)
    assert None not in at_once and at_once[0] == 8  # every number there to compare


def test_outside_the_map_there_is_nothing_to_say(tmp_path):
    with EstimateMap(_map(tmp_path)) as estimates:
        stats = estimates.stats(_box(5, 0, 6, 1))
    assert (stats.cells, stats.coverage, stats.mean) == (0, 0.0, None)


def test_a_satellite_image_is_not_a_poverty_map(real_data):
    with pytest.raises(PovertyMapperError, match="is not a poverty map.*Predict poverty map"):
        check_poverty_map(str(SCENES_DIR / "haiti_rgbn_5m.tif"))


def test_population_without_crs_is_refused(tmp_path):
    path = tmp_path / "generated_population_without_crs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=2, height=2, count=1, dtype="float32") as dst:
        dst.write(np.ones((1, 2, 2), np.float32))
    with pytest.raises(PovertyMapperError, match="no coordinate reference system"):
        EstimateMap(_map(tmp_path), str(path))


def test_polygon_area_takes_holes_out():
    outer = [(0, 0), (10, 0), (10, 10), (0, 10), (0, 0)]
    hole = [(2, 2), (2, 4), (4, 4), (4, 2), (2, 2)]
    assert polygon_area({"type": "Polygon", "coordinates": [outer, hole]}) == pytest.approx(96)
    assert polygon_area({"type": "MultiPolygon", "coordinates": [[outer], [hole]]}) == pytest.approx(104)


def test_the_quality_codes_are_the_writers():
    from poverty_mapper.core.inference import writer
    from poverty_mapper.core.maps import zonal

    codes = np.arange(10)
    assert codes[np.isin(codes, zonal.QUALITY_WITH_ESTIMATE)].tolist() == codes[writer.has_estimate(codes)].tolist()
    assert (zonal.QUALITY_EXTRAPOLATED, zonal.QUALITY_OUT_OF_DOMAIN) == (
        writer.QUALITY_EXTRAPOLATED, writer.QUALITY_OUT_OF_DOMAIN)


def test_an_index_has_no_poverty_line():
    assert is_index("LSMS asset wealth index", "index (survey standard deviations)")
    assert not is_index("consumption", "USD per person per day")
