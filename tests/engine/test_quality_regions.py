"""The flagged cells of a map as regions with their meaning (GENERATED map)."""
from __future__ import annotations

import numpy as np
import rasterio
from rasterio.transform import from_origin

from poverty_mapper.core.inference.writer import (
    INTERVAL_DESCRIPTION, NODATA, QUALITY_CLOUD, QUALITY_DESCRIPTION, QUALITY_EXTRAPOLATED, QUALITY_OUT_OF_DOMAIN,
    QUALITY_WATER,
)
from poverty_mapper.core.maps.quality_regions import MEANINGS, quality_regions

CELL = 1000.0


def _map(path, codes: np.ndarray, descriptions=("generated index (generated units)", QUALITY_DESCRIPTION,
                                                 INTERVAL_DESCRIPTION)):
    with rasterio.open(path, "w", driver="GTiff", width=codes.shape[1], height=codes.shape[0], count=3,
                       dtype="float32", crs="EPSG:32721", transform=from_origin(700_000, 7_200_000, CELL, CELL),
                       nodata=NODATA) as dst:
        dst.write(np.stack([np.full(codes.shape, 0.5), codes, np.full(codes.shape, 0.3)]).astype(np.float32))
        for band, text in enumerate(descriptions, 1):
            dst.set_band_description(band, text)
    return str(path)


def test_the_meanings_are_those_of_the_writers_codes():
    assert set(MEANINGS) == {QUALITY_EXTRAPOLATED, QUALITY_OUT_OF_DOMAIN, QUALITY_WATER, QUALITY_CLOUD}
    assert all(text.startswith(f"{code} = ") for code, text in MEANINGS.items())


def test_each_connected_region_of_a_flagged_code_is_one_region_with_its_meaning(tmp_path):
    codes = np.array([
        [0, 1, 1, 0, 3],
        [0, 1, 0, 0, 3],
        [3, 0, 0, 2, 0],
        [3, 3, 0, 4, 5],
    ], np.float32)
    crs, regions = quality_regions(_map(tmp_path / "generated_map.tif", codes))
    assert "32721" in crs or "UTM zone 21S" in crs
    found = sorted((r.code, r.n_cells) for r in regions)
    assert found == [(1, 3), (3, 2), (3, 3), (4, 1), (5, 1)]  # codes 0 and 2 are not flagged
    out_of_domain = next(r for r in regions if r.code == 3)
    assert out_of_domain.meaning.startswith("3 = out of the model's domain")
    west = next(r for r in regions if r.code == 3 and r.n_cells == 3)
    xs, ys = zip(*west.rings[0])
    assert (min(xs), max(xs), min(ys), max(ys)) == (700_000, 702_000, 7_196_000, 7_198_000)


def test_a_raster_without_a_quality_band_has_no_regions(tmp_path):
    path = _map(tmp_path / "generated_other.tif", np.ones((2, 2), np.float32), descriptions=("a", "b", "c"))
    assert quality_regions(path)[1] == []
