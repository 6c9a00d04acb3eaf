"""The PNG quicklook shows which cells to read with care (GENERATED map)."""
from __future__ import annotations

import numpy as np
import rasterio
from rasterio.transform import from_origin

from poverty_mapper.core.inference.writer import INTERVAL_DESCRIPTION, QUALITY_DESCRIPTION
from poverty_mapper.core.maps.quicklook import _flagged_cells, write_quicklook


def _map(path, quality):
    values = np.linspace(-1, 2, quality.size, dtype=np.float32).reshape(quality.shape)
    with rasterio.open(path, "w", driver="GTiff", width=quality.shape[1], height=quality.shape[0], count=3,
                       dtype="float32", crs="EPSG:32636", transform=from_origin(480_000, 998_400, 960, 960),
                       nodata=-9999.0) as dst:
        dst.write(np.stack([np.where(np.isin(quality, (2, 4, 5)), -9999.0, values), quality.astype(np.float32),
                            np.full(quality.shape, 0.5, np.float32)]))
        dst.descriptions = ("generated index (units)", QUALITY_DESCRIPTION, INTERVAL_DESCRIPTION)
        dst.update_tags(QUANTITY="generated index", MODEL="generated", LEGEND_MIN="-1", LEGEND_MAX="2", SURVEY_MEAN="0.5")
    return path


def test_extrapolated_and_out_of_domain_cells_are_hatched(tmp_path):
    quality = np.zeros((6, 8), np.int64)
    quality[0, :3] = 1  # extrapolations
    quality[5, 5:] = 3  # imagery unlike the model's
    quality[2, 2] = 4  # water: no estimate, grey, not hatched
    flagged = _map(tmp_path / "flagged.tif", quality)
    plain = _map(tmp_path / "plain.tif", np.where(np.isin(quality, (1, 3)), 0, quality))
    with rasterio.open(flagged) as ds:
        np.testing.assert_array_equal(_flagged_cells(ds), np.isin(quality, (1, 3)))
    write_quicklook(flagged, tmp_path / "flagged.png")
    write_quicklook(plain, tmp_path / "plain.png")
    import matplotlib.image as mpimg

    a, b = mpimg.imread(tmp_path / "flagged.png"), mpimg.imread(tmp_path / "plain.png")
    assert a.shape == b.shape and not np.array_equal(a, b)  # the hatching (and its caption) are drawn


def test_a_raster_without_a_quality_band_has_nothing_to_hatch(tmp_path):
    path = tmp_path / "plain.tif"
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32", crs="EPSG:32636",
                       transform=from_origin(480_000, 998_400, 960, 960)) as dst:
        dst.write(np.ones((1, 4, 4), np.float32))
    with rasterio.open(path) as ds:
        assert _flagged_cells(ds) is None
    assert write_quicklook(path, tmp_path / "plain.png").is_file()
