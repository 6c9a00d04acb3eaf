"""Networks that read every scene by the scene's own statistics (maps that stay right when
the imagery changes): each band standardized by the whole image's mean and spread
(``scene_moments``), the same at proxy training and at every map and survey fit, and
training's photometric augmentation that renders each tile with another gamma and
standardizes it as a map of that render would. Rasters and weights here are GENERATED."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import rasterio
import torch

from poverty_mapper.core.errors import PovertyMapperError
from poverty_mapper.core.extractors.cnn import SCENE_MOMENTS, CnnExtractor
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.models.model_file import load_model, save_model
from helpers import CNN_SCENE_SIZE, cnn_model, cnn_scene


def _reading(kind: str):
    model = cnn_model()
    e = model.extractor
    return replace(model, extractor=CnnExtractor(e.network, e.band_means, e.band_stds, input_reading=kind))


def _scene_dn(seed: int = 1) -> np.ndarray:
    """A generated 8-bit scene with structure at the tile scale (smooth fields plus noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:CNN_SCENE_SIZE, 0:CNN_SCENE_SIZE] / CNN_SCENE_SIZE
    base = 60 + 120 * (0.5 + 0.5 * np.sin(6 * xx) * np.cos(4 * yy))
    bands = [base + 30 * k * xx + rng.normal(0, 18, base.shape) for k in range(3)]
    return np.clip(np.stack(bands), 1, 254).astype(np.uint8)


def _lut_render(dn: np.ndarray, gamma: tuple[float, ...], gain: tuple[float, ...]) -> np.ndarray:
    """Each band through a monotone lookup table: gamma, then a gain, clipped to 8 bits."""
    out = np.empty_like(dn)
    levels = np.arange(256) / 255.0
    for b in range(dn.shape[0]):
        lut = np.clip(np.round(255 * gain[b] * levels ** gamma[b]), 0, 255).astype(np.uint8)
        out[b] = lut[dn[b]]
    return out


def _map(model, path, out, **kw):
    predict_poverty_map(PredictRequest(path, str(out), model, device="cpu", **kw))
    with rasterio.open(out) as ds:
        return ds.read(1, masked=True), ds.transform


def test_an_8_bit_render_with_other_gains_moves_the_moment_reading_little(tmp_path):
    model = _reading(SCENE_MOMENTS)
    dn = _scene_dn()
    original = cnn_scene(tmp_path / "original.tif", dn)
    render = cnn_scene(tmp_path / "render.tif", _lut_render(dn, (1.0, 1.0, 1.0), (0.8, 0.9, 0.7)))
    a, _ = _map(model, original, tmp_path / "a.tif")
    b, _ = _map(model, render, tmp_path / "b.tif")
    old, _ = _map(cnn_model(), original, tmp_path / "old_a.tif")
    old_render, _ = _map(cnn_model(), render, tmp_path / "old_b.tif")
    assert a.count() == b.count() > 10
    moved = np.abs(a.compressed() - b.compressed())
    old_moved = np.abs(old.compressed() - old_render.compressed())
    # only the rounding to 8 bits is left; the training-statistics network's map moves many times more
    assert moved.mean() < 0.05 * float(np.std(a.compressed()))
    assert old_moved.mean() > 10 * moved.mean()


def test_moment_reading_is_exact_for_per_band_linear_changes(tmp_path):
    model = _reading(SCENE_MOMENTS)
    dn = _scene_dn(2).astype(np.float32) / 1000  # reflectance up to 0.25: no cell screened as cloud
    gains, offsets = np.array([0.8, 1.0, 1.25]), np.array([0.05, 0.0, -0.02])
    a, _ = _map(model, cnn_scene(tmp_path / "original.tif", dn), tmp_path / "a.tif", radiometry="reflectance")
    stretched = dn * gains[:, None, None].astype(np.float32) + offsets[:, None, None].astype(np.float32)
    b, _ = _map(model, cnn_scene(tmp_path / "stretched.tif", stretched), tmp_path / "b.tif", radiometry="reflectance")
    spread = float(np.std(a.compressed()))
    moved = np.abs(a.compressed() - b.compressed())
    # equal but for rounding (bfloat16 where the CPU runs the network in it)
    assert a.count() == b.count() > 10 and moved.max() < 0.05 * spread and moved.mean() < 0.01 * spread


def test_a_cell_does_not_depend_on_the_region_asked(tmp_path):
    """The scene's statistics come from the whole image, whatever the extent mapped."""
    model = _reading(SCENE_MOMENTS)
    path = cnn_scene(tmp_path / "scene.tif", _scene_dn(3))
    whole, transform = _map(model, path, tmp_path / "whole.tif")
    with rasterio.open(path) as ds:
        left, bottom, right, top = ds.bounds
    part, part_transform = _map(model, path, tmp_path / "part.tif",
                                bounds=(left, bottom + (top - bottom) / 2, left + (right - left) / 2, top))
    row = int(round((part_transform.f - transform.f) / transform.e))
    col = int(round((part_transform.c - transform.c) / transform.a))
    h, w = part.shape
    assert part.count() > 4
    np.testing.assert_allclose(part.filled(np.nan), whole[row:row + h, col:col + w].filled(np.nan), atol=1e-5)


def test_the_reading_is_kept_by_the_model_file(tmp_path):
    loaded = load_model(save_model(_reading(SCENE_MOMENTS), tmp_path / "moments.povmodel"))
    assert loaded.extractor.input_reading == SCENE_MOMENTS and loaded.extractor.reads_scene_moments
    assert not loaded.extractor.standardizes_scenes
    old = load_model(save_model(cnn_model(), tmp_path / "old.povmodel"))
    assert old.extractor.input_reading == "training_statistics" and old.extractor.standardizes_scenes


def test_a_render_augmentation_at_gamma_1_is_the_mapping_standardization():
    """Training's augmented inputs and a map's inputs are one standardization: at gamma 1
    the render augmentation equals the scene-moment reading a map applies, and at another
    gamma it equals that reading of the gamma-rendered scene."""
    from poverty_mapper.core.training.render_augmentation import GAMMAS, SceneRenders

    rng = np.random.default_rng(4)
    values = [rng.beta(2, 5, 40_000), rng.beta(3, 3, 40_000), rng.beta(5, 2, 40_000)]
    e = _reading(SCENE_MOMENTS).extractor
    renders = SceneRenders(values, input_std=0.5)
    pixels = torch.as_tensor(np.stack([v[:1024].reshape(32, 32) for v in values])[None], dtype=torch.float32)
    valid = torch.ones(1, 32, 32, dtype=torch.bool)
    middle = int(np.argmin(np.abs(GAMMAS - 1.0)))
    assert GAMMAS[middle] == pytest.approx(1.0)
    mapped = CnnExtractor(e.network, e.band_means, e.band_stds, input_std=0.5, input_reading=SCENE_MOMENTS) \
        .standardized_by(np.array([v.mean() for v in values]), np.array([v.std() for v in values]))
    np.testing.assert_allclose(renders.standardize(pixels, valid, torch.full((1, 3), middle)),
                               mapped.standardize(pixels, valid), atol=1e-4)
    k = 0
    rendered = [v ** GAMMAS[k] for v in values]
    mapped_render = mapped.standardized_by(np.array([v.mean() for v in rendered]), np.array([v.std() for v in rendered]))
    np.testing.assert_allclose(renders.standardize(pixels, valid, torch.full((1, 3), k)),
                               mapped_render.standardize(pixels ** GAMMAS[k], valid), atol=1e-4)


def test_a_render_augmentation_can_equalize_the_histogram_as_a_map_of_that_render_reads_it():
    """The equalization curve of the augmentation is the scene's own distribution function
    (an "equalize" render maps each value to its rank), and its standardization is the
    mapping standardization of the equalized scene."""
    from poverty_mapper.core.training.render_augmentation import CURVE_BLENDS, SceneRenders

    rng = np.random.default_rng(5)
    values = [rng.beta(2, 5, 40_000), rng.beta(3, 3, 40_000), rng.beta(5, 2, 40_000)]
    renders = SceneRenders(values, input_std=0.5)
    full = int(np.flatnonzero(CURVE_BLENDS == 1.0)[0])
    pixels = torch.as_tensor(np.stack([v[:1024].reshape(32, 32) for v in values])[None], dtype=torch.float32)
    ranks = [np.searchsorted(np.sort(v), v, side="right") / v.size for v in values]
    rendered = renders.render(pixels, torch.full((1, 3), full))
    expected = np.stack([r[:1024].reshape(32, 32) for r in ranks])[None]
    np.testing.assert_allclose(rendered, expected, atol=2e-3)
    # equalized values spread evenly over [0, 1]: their moments are those of a uniform
    np.testing.assert_allclose(renders.means[full], 0.5, atol=0.01)
    np.testing.assert_allclose(renders.stds[full] * 0.5, 12 ** -0.5, atol=0.01)
    e = _reading(SCENE_MOMENTS).extractor
    mapped = CnnExtractor(e.network, e.band_means, e.band_stds, input_std=0.5, input_reading=SCENE_MOMENTS) \
        .standardized_by(np.array([r.mean() for r in ranks]), np.array([r.std() for r in ranks]))
    valid = torch.ones(1, 32, 32, dtype=torch.bool)
    np.testing.assert_allclose(renders.standardize(pixels, valid, torch.full((1, 3), full)),
                               mapped.standardize(torch.as_tensor(expected, dtype=torch.float32), valid), atol=0.03)


def test_proxy_training_reads_scenes_by_their_moments_and_says_so(tmp_path):
    from poverty_mapper.core.training.proxy import ProxyTrainingConfig, train_proxy
    from generated_world import make_world

    world = make_world(tmp_path / "world")
    result = train_proxy(ProxyTrainingConfig(str(world.image_path), str(world.lights_path), str(tmp_path / "m.povmodel"),
                                             tile_size_m=480.0, epochs=1, architecture="small_cnn",
                                             binning="quantiles", block_size_tiles=2, device="cpu"))
    assert result.report["input_reading"] == SCENE_MOMENTS and result.report["photometric_augmentation"] is True
    model = load_model(tmp_path / "m.povmodel")
    assert model.extractor.reads_scene_moments and model.provenance["input_reading"] == SCENE_MOMENTS
    with pytest.raises(PovertyMapperError, match="input reading"):
        train_proxy(ProxyTrainingConfig(str(world.image_path), str(world.lights_path), str(tmp_path / "x.povmodel"),
                                        input_reading="per_tile"))
