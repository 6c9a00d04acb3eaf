"""The bundled Africa night lights (NASA Black Marble 2016 luminance): the raster against
the shared Kinshasa crop of the same tiles, reads in other CRSs, places outside the
covered area, and the reference features of a box."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform as warp_points

from poverty_mapper.core.errors import PovertyMapperError
from poverty_mapper.core.imagery.bundled_lights import (
    BUNDLED_LIGHTS_PATH,
    FEATURE_NAMES,
    BundledLights,
    OutsideCoverage,
    luminance_features,
)

KINSHASA_CRUMB = ("kinshasa", "blackmarble2016_kinshasa_rgb_611m.tif")
GOMBE = (15.3136, -4.3033)  # lon, lat: Kinshasa's centre, lit
UTM_33S = "EPSG:32733"


@pytest.fixture(scope="module")
def lights():
    with BundledLights() as opened:
        yield opened


def crop_luminance(real_data):
    with rasterio.open(real_data.joinpath(*KINSHASA_CRUMB)) as ds:
        rgb = ds.read().astype(np.float64)
        return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2], ds.bounds, ds.transform


def test_the_raster_is_a_cog_on_the_tiles_grid(lights):
    with rasterio.open(BUNDLED_LIGHTS_PATH) as ds:
        assert ds.crs.to_epsg() == 3857 and ds.dtypes == ("uint8",) and ds.count == 1
        assert ds.overviews(1), "overviews"
        assert ds.profile["tiled"] and ds.tags()["YEAR"] == "2016"
        pixel = 2 * 20037508.342789244 / 2**16
        assert ds.res == pytest.approx((pixel, pixel), rel=1e-12)
        # The grid starts on a tile corner of zoom 8.
        columns = (ds.bounds.left + 20037508.342789244) / (256 * pixel)
        rows = (20037508.342789244 - ds.bounds.top) / (256 * pixel)
        assert columns == pytest.approx(round(columns), abs=1e-9) and rows == pytest.approx(round(rows), abs=1e-9)
    west, south, east, north = lights.coverage_lonlat()
    assert west <= -25.4 and east >= 63.5 and south <= -46.9 and north >= 37.4  # Cape Verde .. Rodrigues, Tunisia


def test_the_raster_matches_the_shared_kinshasa_crop(lights, real_data):
    expected, bounds, transform = crop_luminance(real_data)
    box = lights.read_box(bounds, "EPSG:3857")
    assert box.values.shape == expected.shape
    assert box.transform.almost_equals(transform, precision=1e-6)
    diff = np.abs(box.values.astype(np.float64) - expected)
    # Rounded to integers from the same JPEG tiles: at most half a level apart, plus
    # one level where another JPEG decoder made the crop.
    assert diff.max() <= 1.5 and diff.mean() < 0.55
    assert (box.values > 200).sum() > 100  # the city is lit: the crop is not just dark land


def test_points_in_other_crs_read_the_same_boxes(lights):
    lon = np.array([GOMBE[0], 15.0, 16.2])
    lat = np.array([GOMBE[1], -4.6, -3.9])
    wgs84 = lights.boxes_around(lon, lat, "EPSG:4326")
    x, y = warp_points("EPSG:4326", "EPSG:3857", lon, lat)
    mercator = lights.boxes_around(x, y, "EPSG:3857")
    ux, uy = warp_points("EPSG:4326", UTM_33S, lon, lat)
    utm = lights.boxes_around(ux, uy, UTM_33S)
    assert wgs84.shape == (3, 11, 11)
    np.testing.assert_array_equal(wgs84, mercator)
    np.testing.assert_array_equal(wgs84, utm)
    assert wgs84[0].mean() > 150 > wgs84[1].mean()  # the centre is lit, the countryside is not


def test_a_box_in_another_crs_covers_the_same_place(lights):
    ux, uy = warp_points("EPSG:4326", UTM_33S, [GOMBE[0]], [GOMBE[1]])
    utm_box = lights.read_box((ux[0] - 5000, uy[0] - 5000, ux[0] + 5000, uy[0] + 5000), UTM_33S)
    west, south, east, north = rasterio.warp.transform_bounds(
        UTM_33S, "EPSG:3857", ux[0] - 5000, uy[0] - 5000, ux[0] + 5000, uy[0] + 5000, densify_pts=21)
    mercator_box = lights.read_box((west, south, east, north), "EPSG:3857")
    np.testing.assert_array_equal(utm_box.values, mercator_box.values)
    assert utm_box.transform == mercator_box.transform
    # 10 km in UTM is a little more than 10 km of Web Mercator near the equator: 17 or 18 pixels.
    assert 16 <= utm_box.values.shape[0] <= 19 and 16 <= utm_box.values.shape[1] <= 19


@pytest.mark.parametrize("place, crs", [
    ((2.35, 48.86), "EPSG:4326"),  # Paris
    ((-74.0, 40.7), "EPSG:4326"),  # New York
    ((500000.0, 5000000.0), "EPSG:32633"),  # UTM 33N, 45 degrees north
])
def test_a_point_outside_africa_is_refused_with_a_message(lights, place, crs):
    inside_x, inside_y = warp_points("EPSG:4326", crs, [GOMBE[0]], [GOMBE[1]])  # Kinshasa, in that CRS
    with pytest.raises(OutsideCoverage) as info:
        lights.boxes_around([inside_x[0], place[0]], [inside_y[0], place[1]], crs)
    message = str(info.value)
    assert "outside the area the bundled night lights cover" in message and "1 of 2 points" in message
    assert "longitude -26" in message and "night-lights layer that covers" in message


def test_a_box_reaching_outside_africa_is_refused(lights):
    with pytest.raises(OutsideCoverage, match="Choose a region inside it"):
        lights.read_box((30.0, 35.0, 32.0, 40.0), "EPSG:4326")  # the Mediterranean to Turkey
    assert lights.read_box((30.0, 30.0, 32.0, 31.0), "EPSG:4326").values.size > 0  # the Nile delta is in


def test_a_missing_raster_says_how_to_rebuild_it(tmp_path):
    with pytest.raises(PovertyMapperError, match="build_africa_lights.py"):
        BundledLights(tmp_path / "absent.tif")


def test_features_of_a_known_box():
    box = np.zeros((11, 11), np.uint8)
    box[:, :] = 6  # dark land: bin 0
    box[5, 5] = 255  # the centre, bin 31
    box[0, :4] = 8  # four pixels in bin 1
    box[10, :10] = 100  # ten in bin 12 (96-103)
    f = luminance_features(box)
    assert f.shape == (35,) and len(FEATURE_NAMES) == 35
    assert f[0] == pytest.approx(np.sqrt(106 / 121))
    assert f[1] == pytest.approx(np.sqrt(4 / 121))
    assert f[12] == pytest.approx(np.sqrt(10 / 121))
    assert f[31] == pytest.approx(np.sqrt(1 / 121))
    assert np.count_nonzero(f[:32]) == 4 and np.sum(f[:32] ** 2) == pytest.approx(1.0)
    mean = (106 * 6 + 4 * 8 + 10 * 100 + 255) / 121
    assert f[32] == pytest.approx(np.log1p(mean))
    assert f[33] == pytest.approx(np.log1p(255)) and f[34] == pytest.approx(np.log1p(255))
    stacked = luminance_features(np.stack([box, np.full((11, 11), 40, np.uint8)]))
    np.testing.assert_allclose(stacked[0], f)
    assert stacked[1, 5] == 1.0 and stacked[1, 32] == pytest.approx(np.log1p(40))


def test_features_refuse_what_is_not_luminance():
    with pytest.raises(ValueError, match="uint8"):
        luminance_features(np.zeros((11, 11), np.float32))
    with pytest.raises(ValueError, match=r"\[h, w\]"):
        luminance_features(np.zeros(11, np.uint8))
