"""A CNN model mapping imagery of another radiometry than its training imagery's: each
band is standardized with the scene's own statistics, so a per-band linear change of the
pixel values (another stretch, reflectance instead of an 8-bit render) leaves the map
unchanged. Rasters and weights here are GENERATED."""
from __future__ import annotations

import numpy as np
import rasterio
import torch
from affine import Affine

from poverty_mapper.core.extractors.cnn import CnnExtractor, ProxyCNN
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.models.model_file import PovertyModel, Target
from poverty_mapper.core.regression.ridge import RidgeRegressor

SIZE = 192
TILE_PX = 32


def _model() -> PovertyModel:
    torch.manual_seed(0)
    network = ProxyCNN(3, 3).eval()
    extractor = CnnExtractor(network, np.array([0.4, 0.35, 0.3]), np.array([0.2, 0.15, 0.1]))
    coef = np.random.default_rng(0).normal(size=extractor.n_features)
    regressor = RidgeRegressor(coef, 0.0, np.zeros(coef.size), np.ones(coef.size), 1.0)
    return PovertyModel(name="generated CNN", target=Target("generated wealth", "index"), bands=("red", "green", "blue"),
                        input_scaling="8-bit render", pixel_size_m=30.0, tile_size_px=TILE_PX,
                        extractor=extractor, regressor=regressor, radiometry="eight_bit", band_indexes=(1, 2, 3))


def _raster(path, data) -> str:
    profile = dict(driver="GTiff", width=SIZE, height=SIZE, count=3, dtype=data.dtype.name, crs="EPSG:32636",
                   transform=Affine(30.0, 0, 480_000.0, 0, -30.0, 998_400.0))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return str(path)


def _map(path, radiometry, out):
    result = predict_poverty_map(PredictRequest(path, str(out), _model(), radiometry=radiometry, device="cpu"))
    with rasterio.open(out) as ds:
        return ds.read(1, masked=True), result


def test_another_radiometry_is_standardized_by_the_scene(tmp_path):
    rng = np.random.default_rng(1)
    dn = np.clip(rng.normal(110, 40, (3, SIZE, SIZE)), 1, 255).astype(np.uint8)
    render = _raster(tmp_path / "render.tif", dn)
    a, b = np.array([8e-4, 9e-4, 1.1e-3]), np.array([0.02, 0.03, 0.01])
    values = dn.astype(np.float64)
    reflectance = _raster(tmp_path / "refl.tif", (values * a[:, None, None] + b[:, None, None]).astype(np.float32))
    brighter = _raster(tmp_path / "bright.tif", (values * 2 * a[:, None, None] + 0.1).astype(np.float32))

    own, own_result = _map(render, "auto", tmp_path / "own.tif")
    assert not any("standardized" in n for n in own_result.notes)  # its own radiometry: training statistics
    first, result = _map(reflectance, "reflectance", tmp_path / "first.tif")
    second, _ = _map(brighter, "reflectance", tmp_path / "second.tif")
    assert any("standardized with this scene's own mean and spread" in n for n in result.notes)
    assert first.count() == second.count() == own.count() > 0
    np.testing.assert_allclose(first.compressed(), second.compressed(), rtol=1e-3, atol=1e-3)
