"""The features of the bundled lights around a place (core.extractors.lights_surroundings,
read by core.extractors.bundled_lights):
on real windows of the raster against a plain computation of each box, the same numbers
whether a place is read alone or in a block with others, lit and unlit places, and
places the lights do not cover."""
from __future__ import annotations

import numpy as np
import pytest
from rasterio.warp import transform as warp_points

from poverty_mapper.core.extractors.bundled_lights import LIGHTS_FILE, LIGHTS_YEAR, BundledLightsExtractor
from poverty_mapper.core.extractors.lights_surroundings import (
    LIT_THRESHOLDS,
    SURROUNDING_SIDES,
    surroundings_feature_names,
    surroundings_features,
)
from poverty_mapper.core.extractors.registry import extractor_from_spec
from poverty_mapper.core.imagery.bundled_lights import BUNDLED_LIGHTS_PATH, BundledLights, OutsideCoverage
from poverty_mapper.core.imagery.bundled_lights import LIGHTS_YEAR as RASTER_YEAR

GOMBE = (15.3136, -4.3033)  # lon, lat: Kinshasa's centre, lit
FOREST = (22.0, -1.0)  # the Cuvette centrale of DR Congo, far from any town
UTM_33S = "EPSG:32733"


@pytest.fixture(scope="module")
def lights():
    with BundledLights() as opened:
        yield opened


def plain_features(window: np.ndarray, sides=SURROUNDING_SIDES, thresholds=LIT_THRESHOLDS) -> np.ndarray:
    """Each box cut from a window centred on the place, and its statistics taken directly."""
    centre = window.shape[0] // 2
    out = []
    for side in sides:
        half = side // 2
        box = window[centre - half:centre + half + 1, centre - half:centre + half + 1].astype(np.float64)
        out += [np.log1p(box.mean()), np.log1p(box).mean()]
        for t in thresholds:
            out += [np.sqrt((box >= t).mean()), float((box >= t).any())]
    return np.array(out)


def test_real_windows_give_each_box_its_own_statistics(lights):
    lon, lat = np.array([GOMBE[0], FOREST[0], 3.38]), np.array([GOMBE[1], FOREST[1], 6.45])  # and Lagos
    windows = lights.boxes_around(lon, lat, "EPSG:4326", pixels=101)
    read = BundledLightsExtractor().features_at(lights, lon, lat, "EPSG:4326")
    names = surroundings_feature_names()
    assert read.shape == (3, len(names)) == (3, 80)
    for k, window in enumerate(windows):
        own = surroundings_features(window, [50], [50])[0]
        np.testing.assert_allclose(own, plain_features(window), rtol=0, atol=1e-6)  # log(1 + L) kept to 1e-6
        np.testing.assert_array_equal(read[k], own)
    lit, dark = read[0], read[1]
    assert lit[names.index("box1_any_ge_128")] == 1 and lit[names.index("box11_log1p_mean")] > np.log1p(150)
    assert dark[names.index("box101_any_ge_64")] == 0 and dark[names.index("box11_log1p_mean")] < np.log1p(30)


def test_a_place_gets_the_same_features_alone_or_in_a_block(lights):
    """Clusters scattered over a country and the dense cells of a map read the lights in
    blocks: a place's features do not depend on which others were read with it."""
    rng = np.random.default_rng(0)
    lon = np.concatenate([GOMBE[0] + rng.uniform(-1, 1, 60), rng.uniform(12, 30, 20)])
    lat = np.concatenate([GOMBE[1] + rng.uniform(-1, 1, 60), rng.uniform(-12, 3, 20)])
    extractor = BundledLightsExtractor()
    together = extractor.features_at(lights, lon, lat, "EPSG:4326")
    alone = np.vstack([extractor.features_at(lights, lon[k:k + 1], lat[k:k + 1], "EPSG:4326") for k in range(0, 80, 7)])
    np.testing.assert_array_equal(together[::7], alone)
    ux, uy = warp_points("EPSG:4326", UTM_33S, lon[:10], lat[:10])
    np.testing.assert_array_equal(extractor.features_at(lights, ux, uy, UTM_33S), together[:10])


def test_more_light_around_gives_larger_features():
    dark = np.full((101, 101), 10, np.uint8)
    town = dark.copy()
    town[40:45, 40:45] = 200  # a lit town 6-10 pixels up and left of the centre
    d, t = surroundings_features(dark, [50], [50])[0], surroundings_features(town, [50], [50])[0]
    names = surroundings_feature_names()
    assert t[names.index("box1_log1p_mean")] == d[names.index("box1_log1p_mean")]  # the centre itself is dark
    assert t[names.index("box11_any_ge_128")] == 0 and t[names.index("box21_any_ge_128")] == 1
    assert t[names.index("box21_sqrt_share_ge_128")] == pytest.approx(np.sqrt(25 / 441))
    assert t[names.index("box101_log1p_mean")] > d[names.index("box101_log1p_mean")]


def test_the_features_refuse_what_they_cannot_compute():
    with pytest.raises(ValueError, match="uint8"):
        surroundings_features(np.zeros((101, 101), np.float32), [50], [50])
    with pytest.raises(ValueError, match="50 pixels"):
        surroundings_features(np.zeros((101, 101), np.uint8), [49], [50])
    with pytest.raises(ValueError, match="odd"):
        surroundings_features(np.zeros((101, 101), np.uint8), [50], [50], sides=(4,))


def test_a_place_outside_africa_is_refused(lights):
    with pytest.raises(OutsideCoverage, match="1 of 2 points"):
        BundledLightsExtractor().features_at(lights, [GOMBE[0], 2.35], [GOMBE[1], 48.86], "EPSG:4326")  # Paris


def test_the_extractor_reads_no_image_and_round_trips(lights):
    extractor = BundledLightsExtractor()
    assert extractor.reads_imagery is False and extractor.n_features == 80
    assert (LIGHTS_FILE, LIGHTS_YEAR) == (BUNDLED_LIGHTS_PATH.name, RASTER_YEAR)  # the lights it names are the shipped ones
    spec, arrays = extractor.to_spec()
    assert arrays == {} and spec["lights_year"] == 2016
    again = extractor_from_spec(spec, arrays)
    assert (again.sides, again.thresholds) == (extractor.sides, extractor.thresholds)
    tiles = [(GOMBE[0] - 0.01, GOMBE[1] - 0.01, GOMBE[0] + 0.01, GOMBE[1] + 0.01)]
    np.testing.assert_array_equal(again.features_of_tiles(lights, tiles, "EPSG:4326"),
                                  extractor.features_at(lights, [GOMBE[0]], [GOMBE[1]], "EPSG:4326"))
    with pytest.raises(ValueError, match="features"):
        extractor_from_spec({**spec, "n_features": 35}, {})
    with pytest.raises(Exception, match="region and a CRS"):
        extractor.extract(None, None)
