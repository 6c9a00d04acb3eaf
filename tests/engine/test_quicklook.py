"""The PNG quicklook shows which cells to read with care (GENERATED map)."""
from __future__ import annotations

import numpy as np
import rasterio
from rasterio.transform import from_origin

from poverty_mapper.core.inference.writer import INTERVAL_DESCRIPTION, QUALITY_DESCRIPTION
from poverty_mapper.core.maps.quicklook import _flagged_cells, quicklook_figure, write_quicklook


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


def _cells_of_one_colour(path, png: np.ndarray) -> np.ndarray:
    """Per map cell: whether the inside of its square in ``png`` (the quicklook of
    ``path``) is of one colour. The squares are placed with the axes of the same figure,
    drawn again; that drawing is checked to be the PNG."""
    import matplotlib.pyplot as plt

    fig, ax = quicklook_figure(path)
    fig.canvas.draw()
    drawn = np.asarray(fig.canvas.buffer_rgba(), dtype=np.float64) / 255.0
    assert drawn.shape == png.shape and np.abs(drawn - png).max() < 1e-6  # what was written is what is measured
    with rasterio.open(path) as ds:
        b, (rows, cols) = ds.bounds, ds.shape
    w, h = (b.right - b.left) / cols, (b.top - b.bottom) / rows
    one_colour = np.zeros((rows, cols), bool)
    for r in range(rows):
        for c in range(cols):
            (x0, y0), (x1, y1) = ax.transData.transform([(b.left + c * w, b.top - (r + 1) * h), (b.left + (c + 1) * w, b.top - r * h)])
            inside = png[png.shape[0] - int(y1) + 3 : png.shape[0] - int(y0) - 3, int(x0) + 3 : int(x1) - 3]
            assert inside.shape[0] > 10 and inside.shape[1] > 10
            one_colour[r, c] = bool(np.all(inside == inside[0, 0]))
    plt.close(fig)
    return one_colour


def test_extrapolated_and_out_of_domain_cells_are_hatched(tmp_path):
    quality = np.zeros((6, 8), np.int64)
    quality[0, :3] = 1  # extrapolations
    quality[5, 5:] = 3  # imagery unlike the model's
    quality[2, 2] = 4  # water: no estimate, grey, not hatched
    flagged = _map(tmp_path / "flagged.tif", quality)
    plain = _map(tmp_path / "plain.tif", np.where(np.isin(quality, (1, 3)), 0, quality))
    with rasterio.open(flagged) as ds:
        np.testing.assert_array_equal(_flagged_cells(ds), np.isin(quality, (1, 3)))
    import matplotlib.image as mpimg

    for path, hatched in ((flagged, np.isin(quality, (1, 3))), (plain, np.zeros(quality.shape, bool))):
        png = mpimg.imread(write_quicklook(path, tmp_path / f"{path.stem}.png"))
        # Where the PNG's hatching falls: a cell's inside is of one colour unless hatched.
        np.testing.assert_array_equal(_cells_of_one_colour(path, png), ~hatched, err_msg=path.stem)


def test_a_raster_without_a_quality_band_has_nothing_to_hatch(tmp_path):
    path = tmp_path / "plain.tif"
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32", crs="EPSG:32636",
                       transform=from_origin(480_000, 998_400, 960, 960)) as dst:
        dst.write(np.ones((1, 4, 4), np.float32))
    with rasterio.open(path) as ds:
        assert _flagged_cells(ds) is None
    assert write_quicklook(path, tmp_path / "plain.png").is_file()
