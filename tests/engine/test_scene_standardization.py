"""A CNN model mapping imagery of another radiometry than its training imagery's: each
band is standardized with the scene's own statistics, so a per-band linear change of the
pixel values (another stretch, reflectance instead of an 8-bit render) leaves the map
unchanged. Rasters and weights here are GENERATED."""
from __future__ import annotations

import numpy as np
import rasterio

from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from helpers import CNN_SCENE_SIZE, cnn_model, cnn_scene


def _map(path, radiometry, out):
    result = predict_poverty_map(PredictRequest(path, str(out), cnn_model(), radiometry=radiometry, device="cpu"))
    with rasterio.open(out) as ds:
        return ds.read(1, masked=True), result


def test_another_radiometry_is_standardized_by_the_scene(tmp_path):
    rng = np.random.default_rng(1)
    dn = np.clip(rng.normal(110, 40, (3, CNN_SCENE_SIZE, CNN_SCENE_SIZE)), 1, 255).astype(np.uint8)
    render = cnn_scene(tmp_path / "render.tif", dn)
    a, b = np.array([8e-4, 9e-4, 1.1e-3]), np.array([0.02, 0.03, 0.01])
    values = dn.astype(np.float64)
    reflectance = cnn_scene(tmp_path / "refl.tif", (values * a[:, None, None] + b[:, None, None]).astype(np.float32))
    brighter = cnn_scene(tmp_path / "bright.tif", (values * 2 * a[:, None, None] + 0.1).astype(np.float32))

    own, own_result = _map(render, "auto", tmp_path / "own.tif")
    assert not any("standardized" in n for n in own_result.notes)  # its own radiometry: training statistics
    first, result = _map(reflectance, "reflectance", tmp_path / "first.tif")
    second, _ = _map(brighter, "reflectance", tmp_path / "second.tif")
    assert any("standardized with this scene's own mean and spread" in n for n in result.notes)
    assert first.count() == second.count() == own.count() > 0
    np.testing.assert_allclose(first.compressed(), second.compressed(), rtol=1e-3, atol=1e-3)
