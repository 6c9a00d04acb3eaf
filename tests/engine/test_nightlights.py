"""Nightlights averaged onto a grid from a colour composite (NASA Black Marble images
are RGB renderings, not radiance): their luminance is the intensity. GENERATED rasters."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin

from poverty_mapper.core.imagery.nightlights import LUMINANCE_WEIGHTS, mean_lights_on_grid


def _lights(path, data, colours):
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype, crs="EPSG:3857", transform=from_origin(1_500_000, -400_000, 600, 600)) as dst:
        dst.write(data)
        dst.colorinterp = colours
    return str(path)


@pytest.fixture()
def composite():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (3, 40, 40)).astype(np.uint8)


def test_an_rgb_composite_gives_its_luminance(tmp_path, composite):
    path = _lights(tmp_path / "generated_rgb_lights.tif", composite, [ColorInterp.red, ColorInterp.green, ColorInterp.blue])
    grid = from_origin(1_500_000, -400_000, 6000, 6000)  # 10 x 10 source pixels per cell
    means = mean_lights_on_grid(path, grid, (4, 4), rasterio.crs.CRS.from_epsg(3857))
    luminance = np.tensordot(LUMINANCE_WEIGHTS, composite.astype(np.float64), axes=1)
    expected = luminance.reshape(4, 10, 4, 10).mean((1, 3))
    np.testing.assert_allclose(means, expected, rtol=1e-5)
    assert not np.allclose(means, composite[0].reshape(4, 10, 4, 10).mean((1, 3)), rtol=1e-2)  # not the red band


def test_other_rasters_give_their_first_band(tmp_path, composite):
    path = _lights(tmp_path / "generated_three_bands.tif", composite, [ColorInterp.gray, ColorInterp.undefined, ColorInterp.undefined])
    grid = from_origin(1_500_000, -400_000, 6000, 6000)
    means = mean_lights_on_grid(path, grid, (4, 4), rasterio.crs.CRS.from_epsg(3857))
    np.testing.assert_allclose(means, composite[0].astype(np.float64).reshape(4, 10, 4, 10).mean((1, 3)), rtol=1e-5)
